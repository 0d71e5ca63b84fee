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
