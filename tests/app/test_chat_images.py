"""Images on the Chat page: "Image…" shows only for a model that reads images, the chosen (or dropped)
image waits in a chip, goes with the next message and shows in the user's turn; end to end, a column
backed by a real `engine serve` child on the tiny trained VLM answers a message with an image."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.app.test_chat_page import EchoSession
from tests.engine.vision_fixtures import *  # noqa: F401,F403  (session fixtures: tiny VLM, shapes data, a trained run)


class ImageEchoSession(EchoSession):
    """EchoSession whose models named '*vlm*' read images; it says how many came with each message."""

    def __init__(self, spec, system=None, **sampling):
        super().__init__(spec, system)
        self.accepts_images = "vlm" in spec
        self.pending, self.received = [], []

    def attach_image(self, path):
        self.pending.append(path)

    def send(self, text):
        self.received.append(list(self.pending))
        self.pending = []
        yield from super().send(f"{text} +{len(self.received[-1])} image(s)")


@pytest.fixture
def page(qtbot, state, settings, monkeypatch):
    import app.chat_worker
    from app.chat_page import ChatPage

    monkeypatch.setattr(app.chat_worker, "open_session",
                        lambda spec, system, sampling, **kw: ImageEchoSession(spec, system))
    p = ChatPage(state, settings)
    qtbot.addWidget(p)
    yield p
    p.shutdown()


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (220, 20, 20)).save(path)
    return str(path)


def load(qtbot, column, spec):
    column.set_choices([spec])
    column.load()
    qtbot.waitUntil(lambda: column.loaded_spec == spec and not column.busy, timeout=10000)


def test_image_button_only_for_image_models_and_the_image_goes_with_the_next_message(qtbot, page, picture, tmp_path):
    page.exported.enabled.setChecked(False)
    assert page.base.attach_button.isHidden()  # nothing loaded yet
    assert not page.base.attach_image(picture) and "Load a vision-language model" in page.base.status.text()
    load(qtbot, page.base, "text-model")
    load(qtbot, page.tuned, "tiny-vlm")
    assert page.base.attach_button.isHidden() and not page.tuned.attach_button.isHidden()
    assert not page.base.attach_image(picture) and "reads text only" in page.base.status.text()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert not page.tuned.attach_image(str(broken)) and "cannot be read" in page.tuned.status.text()
    assert page.tuned.attach_image(picture)
    assert not page.tuned.image_chip.isHidden() and page.tuned.image_chip.name.text() == "red.png"
    page.input.setText("What colour?")
    assert page.send() == 2
    assert page.tuned.image_chip.isHidden() and not page.tuned.image_chip.path  # cleared once sent
    qtbot.waitUntil(lambda: not any(c.busy for c in page.columns), timeout=10000)
    tuned, base = page.tuned.worker.session, page.base.worker.session
    assert tuned.received == [[picture]] and base.received == [[]]
    assert page.tuned.last_reply.strip() == "tiny-vlm heard: What colour? +1 image(s)"
    assert "<img" in page.tuned.transcript.toHtml() and "<img" not in page.base.transcript.toHtml()
    page.input.setText("And now?")  # the next message goes alone
    assert page.send() == 2
    qtbot.waitUntil(lambda: not any(c.busy for c in page.columns), timeout=10000)
    assert tuned.received[-1] == []
    load(qtbot, page.tuned, "text-model-2")  # a text model replaces the VLM: the button goes
    assert page.tuned.attach_button.isHidden()


def test_dropping_an_image_on_a_column_attaches_it(qtbot, page, picture):
    from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    load(qtbot, page.base, "tiny-vlm")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(picture)])
    target = page.base.transcript.viewport()  # where a drop lands: the read-only transcript passes it up
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(target, QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                                              Qt.KeyboardModifier.NoModifier))
    assert page.base.image_chip.path == picture
    assert page.base.transcript.toPlainText() == ""  # not pasted into the transcript as text


@pytest.mark.slow
def test_a_column_on_a_served_tiny_vlm_answers_a_message_with_an_image(qtbot, state, settings, vlm_run, shapes_dir):
    """No monkeypatching: the column starts `engine serve` on the trained tiny VLM, learns from it that the
    model reads images, and the attached image travels as an image_url data: URI part."""
    pytest.importorskip("fastapi")
    from app.chat_page import ChatPage
    from engine.chat import ChatSession

    run, _ = vlm_run
    image = str(shapes_dir / "images" / "held_out-0.png")
    p = ChatPage(state, settings)
    qtbot.addWidget(p)
    try:
        p.tuned.enabled.setChecked(False)
        p.exported.enabled.setChecked(False)
        p.base.set_choices([str(run)])
        p.sampling.editors["max_tokens"].setValue(4)
        p.sampling.editors["temperature"].setValue(0)
        p.load_all_columns()
        qtbot.waitUntil(lambda: not p.base.busy, timeout=180_000)
        assert p.base.loaded_spec, p.base.status.text()
        assert "vlm:" in p.base.status.text() and not p.base.attach_button.isHidden()
        assert p.base.attach_image(image)
        p.input.setText("What colour is the shape?")
        assert p.send() == 1
        qtbot.waitUntil(lambda: not p.base.busy, timeout=120_000)
        session = p.base.worker.session
        assert "tokens in" in p.base.status.text(), p.base.status.text()
        user = session.history[0]
        assert user["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
        local = ChatSession(str(run))
        local.attach_image(image)
        # the served prompt is engine chat's, image tokens included
        assert session.last_stats["prompt_tokens"] == len(local.prompt_ids("What colour is the shape?"))
        assert session.history[-1]["content"] == p.base.last_reply and "<img" in p.base.transcript.toHtml()
        p.input.setText("And its shape?")  # the next turn: the server keeps no conversation, the image goes again
        assert p.send() == 1
        qtbot.waitUntil(lambda: not p.base.busy, timeout=120_000)
        assert "tokens in" in p.base.status.text(), p.base.status.text()
        assert len(session.history) == 4 and session.history[2] == {"role": "user", "content": "And its shape?"}
        local.pending_images = []
        local.history = [{"role": "user", "content": "What colour is the shape?", "images": [image]},
                         {"role": "assistant", "content": session.history[1]["content"]}]
        assert session.last_stats["prompt_tokens"] == len(local.prompt_ids("And its shape?"))  # image tokens included
    finally:
        p.shutdown()
    assert not session.running
