"""The Chat page: one message to every loaded column, replies streamed from worker threads."""

from __future__ import annotations

import threading

import pytest

from engine.errors import ModelSourceError


class EchoSession:
    """Stands in for engine.chat.ChatSession: streams the reply word by word from its own thread."""

    def __init__(self, spec, system=None, **sampling):
        if spec == "missing":
            raise ModelSourceError("Model 'missing' is not a folder, a .gguf file or a hub id.")
        self.spec, self.history, self.label = spec, [], f"{spec} (echo backend)"

    def send(self, text):
        assert threading.current_thread() is not threading.main_thread()
        self.history.append(text)
        for word in f"{self.spec} heard: {text}".split(" "):
            yield word + " "

    def reset(self):
        self.history.clear()


@pytest.fixture
def page(qtbot, state, settings, monkeypatch):
    import app.chat_worker
    from app.chat_page import ChatPage

    monkeypatch.setattr(app.chat_worker, "open_session", lambda spec, system, sampling: EchoSession(spec, system))
    p = ChatPage(state, settings)
    qtbot.addWidget(p)
    yield p
    p.shutdown()


def test_one_message_streams_into_every_loaded_column(qtbot, page, state, tmp_path):
    run = tmp_path / "run1"
    (run / "exports").mkdir(parents=True)
    (run / "exports" / "model-q8_0.gguf").write_bytes(b"GGUF")
    state.set_run_dir(str(run))
    assert page.tuned.model.currentText() == str(run)
    assert page.exported.model.currentText() == str(run / "exports" / "model-q8_0.gguf")
    page.load_all_columns()
    qtbot.waitUntil(lambda: all(bool(c.loaded_spec) for c in page.columns), timeout=10000)
    page.input.setText("Who makes the Quillon Q7?")
    assert page.send() == 3
    qtbot.waitUntil(lambda: not any(c.busy for c in page.columns), timeout=10000)
    for c in page.columns:
        assert c.last_reply.strip() == f"{c.loaded_spec} heard: Who makes the Quillon Q7?"
        assert "Quillon Q7" in c.transcript.toPlainText() and "tokens/s" in c.status.text()
    assert page.input.text() == ""


def test_a_column_that_cannot_load_says_why_and_the_others_still_answer(qtbot, page):
    page.exported.set_choices(["missing"])
    page.tuned.enabled.setChecked(False)
    page.load_all_columns()
    qtbot.waitUntil(lambda: bool(page.base.loaded_spec) and not page.exported.busy, timeout=10000)
    assert "not a folder" in page.exported.status.text() and not page.exported.loaded_spec
    page.input.setText("hi")
    assert page.send() == 1
