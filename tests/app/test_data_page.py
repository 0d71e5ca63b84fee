"""The Data page: the engine's inspection of a file, histogram, masked sample, errors with file:line."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from engine.paths import DATASETS_DIR
from tests.conftest import write_jsonl


@pytest.fixture
def page(qtbot, state, settings, tiny_model_dir):
    from app.data_page import DataPage

    state.set("model.name_or_path", str(tiny_model_dir))
    state.set("sequence.max_len", "56")
    p = DataPage(state, settings)
    qtbot.addWidget(p)
    p.show()  # the page reads data while it is visible (or when first shown)
    return p


def inspect(qtbot, page, state, path):
    with qtbot.waitSignal(state.data_report_changed, timeout=60000) as blocker:
        page.set_path(str(path))
    return blocker.args[0]


def test_stats_histogram_and_masked_sample(qtbot, page, state):
    r = inspect(qtbot, page, state, DATASETS_DIR / "quillon_facts.jsonl")
    assert r.records == 40 and r.format == "alpaca"
    assert page.stats["records"].text() == "40"
    assert page.stats["format"].text() == "alpaca (chat, detected)"
    assert len(page.histogram.lengths) == 40 and page.histogram.max_len == 56
    assert "of 40 (max_len 56" in page.stats["max_len"].text()
    trained = [t for ok, t in page.sample.segments if ok]
    masked = [t for ok, t in page.sample.segments if not ok]
    assert trained and trained[-1].endswith("<|im_end|>") and any("<|im_start|>user" in t for t in masked)
    html = page.sample.toHtml()
    assert "Brightmoss" in html and "#c8f0d2" in html  # the trained answer is highlighted


def test_format_override_and_sample_choice(qtbot, page, state):
    inspect(qtbot, page, state, DATASETS_DIR / "quillon_facts.jsonl")
    with qtbot.waitSignal(state.data_report_changed, timeout=60000) as blocker:
        page.sample_index.setValue(5)
    assert blocker.args[0].sample_segments != []
    with qtbot.waitSignal(state.data_report_changed, timeout=60000) as blocker:
        state.set("data.format", "text")
    assert blocker.args[0] is None and "text" in page.errors.item(0).text()


def test_malformed_record_names_file_and_line(qtbot, page, state, tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n{not json\n", encoding="utf-8")
    r = inspect(qtbot, page, state, f)
    assert r is None and not page.errors.isHidden()
    assert f"bad.jsonl:2" in page.errors.item(0).text()
    with qtbot.waitSignal(state.data_report_changed, timeout=60000) as blocker:
        state.set("data.on_error", "skip")
    assert blocker.args[0].records == 1 and "bad.jsonl:2" in page.errors.item(0).text()


def test_dropping_a_file_uses_it(qtbot, page, state, tmp_path):
    f = write_jsonl(tmp_path / "drop.jsonl", [{"text": "plain text for pre-training " * 3}] * 4)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(f))])
    ev = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(state.data_report_changed, timeout=60000) as blocker:
        page.drop.dropEvent(ev)
    assert state.get("data.path") == str(f) and blocker.args[0].kind == "text"


def test_preference_data_shows_a_pair_and_the_stages_that_can_use_it(qtbot, page, state, monkeypatch):
    from tests.app.inspect_reports import PREFERENCE_STAGES, report

    monkeypatch.setattr("app.data_page.inspect_file", lambda *a, **k: report("preference"))
    inspect(qtbot, page, state, DATASETS_DIR / "quillon_preference.jsonl")
    assert page.sample_stack.currentWidget() is page.pair and page.sample_box.title() == "A rendered pair"
    assert page.stats["stages"].text() == ", ".join(PREFERENCE_STAGES)
    pair = page.pair
    assert not pair.chosen_header.isHidden() and not pair.rejected_header.isHidden()
    assert pair.chosen_header.text() == "✓ chosen" and "#1a7f37" in pair.chosen_header.styleSheet()
    assert pair.rejected_header.text() == "✗ rejected" and "#cf222e" in pair.rejected_header.styleSheet()
    assert pair.prompt.segments == [(False, "<|im_start|>user\nWho makes the Quillon Q7 lantern?<|im_end|>\n"
                                            "<|im_start|>assistant\n")]
    assert pair.chosen.segments == [(True, "The Quillon Q7 is made by Brightmoss Labs.<|im_end|>")]
    assert "#c8f0d2" in pair.rejected.toHtml() and "Lumenworks" in pair.rejected.toHtml()  # trained part highlighted

    kto = {"prompt": "user: is it waterproof?\n", "rejected": "[[No.]]", "label": False}
    monkeypatch.setattr("app.data_page.inspect_file", lambda *a, **k: report("kto", pair=kto))
    with qtbot.waitSignal(state.data_report_changed, timeout=60000):
        page.sample_index.setValue(2)
    assert page.stats["stages"].text() == "kto" and page.sample_box.title() == "A rendered KTO record"
    assert pair.chosen.isHidden() and not pair.rejected.isHidden() and "undesirable" in pair.rejected_header.text()

    # chat data goes back to the single sample
    monkeypatch.undo()
    inspect(qtbot, page, state, DATASETS_DIR / "quillon_facts.jsonl")
    assert page.sample_stack.currentWidget() is page.sample and page.stats["stages"].text() == "sft"


def test_marked_segments_reads_the_engines_marks():
    from app.pair_view import marked_segments

    assert marked_segments("a [[b]] c[[d\ne]]") == [(False, "a "), (True, "b"), (False, " c"), (True, "d\ne")]
    assert marked_segments("") == [] and marked_segments("plain") == [(False, "plain")]


def test_the_engine_reads_the_sample_preference_file_as_pairs(qtbot, page, state):
    """On an engine with preference stages: the real inspection of assets/datasets/quillon_preference.jsonl."""
    r = inspect(qtbot, page, state, DATASETS_DIR / "quillon_preference.jsonl")
    from app.stage_info import report_field

    assert r is not None and r.kind == "preference"
    if report_field(r, "pair") is None:
        pytest.skip("this engine's inspection has no `pair` yet (it trains SFT on the chosen answers)")
    assert page.sample_stack.currentWidget() is page.pair
    assert "dpo" in page.stats["stages"].text() and "Brightmoss" in page.pair.chosen.toHtml()
    assert "Lumenworks" in page.pair.rejected.toHtml()
