"""The Data page with image + text records: thumbnails with their sizes and image-token cost."""

from __future__ import annotations

import pytest

from tests.engine.vision_fixtures import *  # noqa: F401,F403  (session fixtures)


@pytest.fixture
def page(qtbot, state, settings, tiny_vlm_dir):
    from app.data_page import DataPage

    state.set("model.name_or_path", str(tiny_vlm_dir))
    p = DataPage(state, settings)
    qtbot.addWidget(p)
    p.show()
    return p


def test_sample_record_shows_its_image_thumbnails(qtbot, page, state, shapes_dir):
    with qtbot.waitSignal(state.data_report_changed, timeout=60000) as blocker:
        page.set_path(str(shapes_dir / "train.jsonl"))
    report = blocker.args[0]
    assert report.records == 16 and report.stages == ["sft"]
    assert page.images.isVisible() and len(page.images.thumbs) == 1
    assert not page.images.thumbs[0].pixmap().isNull() and page.images.thumbs[0].pixmap().width() == 96
    assert "4 tokens per image" in page.stats["lengths"].text()
    trained = [text for is_trained, text in page.sample.segments if is_trained]
    assert trained and trained[0].startswith(("red", "green", "blue", "yellow", "square", "circle", "triangle"))
