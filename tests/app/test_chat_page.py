"""The Chat page: one message to every loaded column, replies streamed from worker threads; each
column's model lives in an `engine serve` child that closing the column stops."""

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

    def snippets(self):
        return {"url": "http://127.0.0.1:1234/v1", "api_key": "k" * 12, "model": self.spec,
                "curl": f"curl http://127.0.0.1:1234/v1/chat/completions -H 'Authorization: Bearer {'k' * 12}'",
                "python": "from openai import OpenAI"}


@pytest.fixture
def page(qtbot, state, settings, monkeypatch):
    import app.chat_worker
    from app.chat_page import ChatPage

    monkeypatch.setattr(app.chat_worker, "open_session", lambda spec, system, sampling, **kw: EchoSession(spec, system))
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


def test_serve_button_shows_url_key_and_snippets(qtbot, page):
    assert not page.base.serve_button.isEnabled()
    page.base.set_choices(["smollm2-135m-instruct"])
    page.base.load()
    qtbot.waitUntil(lambda: page.base.serve_button.isEnabled(), timeout=10000)
    dialog = page.base.show_serve_dialog()
    qtbot.addWidget(dialog)
    assert dialog.fields["url"].text() == "http://127.0.0.1:1234/v1" and dialog.fields["api_key"].text() == "k" * 12
    assert "Bearer kkkk" in dialog.fields["curl"].toPlainText() and "OpenAI" in dialog.fields["python"].toPlainText()
    page.base.shutdown()
    assert not page.base.serve_button.isEnabled()


def test_a_column_chats_through_its_own_server_child_and_closing_stops_it(qtbot, state, settings, tiny_model_dir):
    """No monkeypatching: the column starts `engine serve` for the tiny model, streams a reply over HTTP,
    and shutting the page down ends the child process (its memory goes back)."""
    pytest.importorskip("fastapi")
    from app.chat_page import ChatPage

    p = ChatPage(state, settings)
    qtbot.addWidget(p)
    try:
        p.tuned.enabled.setChecked(False)
        p.exported.enabled.setChecked(False)
        p.base.set_choices([str(tiny_model_dir)])
        p.sampling.editors["max_tokens"].setValue(4)
        p.sampling.editors["temperature"].setValue(0)
        p.load_all_columns()
        qtbot.waitUntil(lambda: not p.base.busy, timeout=180_000)
        assert p.base.loaded_spec, p.base.status.text()
        session = p.base.worker.session
        assert session.running and session.url.startswith("http://127.0.0.1:") and "hf:" in p.base.status.text()
        p.input.setText("hello")
        assert p.send() == 1
        qtbot.waitUntil(lambda: not p.base.busy, timeout=60_000)
        assert "4 tokens" in p.base.status.text() and p.base.last_reply
        assert session.history[-1] == {"role": "assistant", "content": p.base.last_reply}
    finally:
        p.shutdown()
    assert not session.running


def test_a_model_that_cannot_load_reports_the_servers_error(qtbot, state, settings, tmp_path):
    pytest.importorskip("fastapi")
    from app.chat_page import ChatPage

    p = ChatPage(state, settings)
    qtbot.addWidget(p)
    try:
        p.base.set_choices([str(tmp_path / "missing.gguf")])
        p.base.load()
        qtbot.waitUntil(lambda: not p.base.busy, timeout=120_000)
        assert "missing.gguf' not found" in p.base.status.text() and not p.base.loaded_spec
    finally:
        p.shutdown()


def test_closing_a_column_while_its_model_loads_stops_the_child(qtbot, state, settings, tiny_model_dir):
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("fastapi")
    from app.chat_page import ChatPage

    def servers():
        return [c for c in psutil.Process().children(recursive=True)
                if c.is_running() and c.status() != psutil.STATUS_ZOMBIE and "serve" in c.cmdline()]

    p = ChatPage(state, settings)
    qtbot.addWidget(p)
    p.base.set_choices([str(tiny_model_dir)])
    p.base.load()
    qtbot.waitUntil(lambda: bool(servers()), timeout=10_000)
    p.shutdown()  # while the child is still importing and loading
    qtbot.waitUntil(lambda: not servers(), timeout=15_000)
    assert not p.base.loaded_spec
