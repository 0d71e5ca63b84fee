"""The main window: wizard navigation, Runs list actions, settings that persist."""

from __future__ import annotations

import pytest

from app.app_settings import AppSettings


@pytest.fixture
def window(qtbot, settings, fake_engine, bundled_model_dir):
    """The whole app on the bundled model (materialised once per session by the shared fixture)."""
    from app.main_window import MainWindow

    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def train_once(qtbot, w, tmp_path, mode="normal", steps="4"):
    w.data_page.set_path(str(tmp_path / "data.jsonl"))
    w.train_page.process.grace_ms = 2000
    with qtbot.waitSignal(w.train_page.run_finished, timeout=30000) as blocker:
        assert w.train_page.start()
    return blocker.args


def test_back_next_walk_the_wizard(qtbot, window):
    window.go(1)
    assert window.stack.currentWidget() is window.model_page and not window.back_button.isEnabled()
    for page in (window.data_page, window.method_page, window.train_page, window.export_page, window.chat_page):
        window.next_button.click()
        assert window.stack.currentWidget() is page
    assert not window.next_button.isEnabled()
    window.back_button.click()
    assert window.stack.currentWidget() is window.export_page


def test_runs_list_shows_finished_runs_and_reopens_them(qtbot, window, tmp_path):
    run_dir, status = train_once(qtbot, window, tmp_path)
    assert status == "completed"
    window.go(0)
    page = window.runs_page
    assert [r.name for r in page.runs] == [run_dir.rsplit("/", 1)[-1]]
    cells = [page.table.item(0, c).text() for c in range(page.table.columnCount())]
    assert cells[1] == "completed" and cells[2] == "sft" and cells[3] == "6 / 6" and cells[4] == "0.5000"
    page.table.selectRow(0)
    assert page.export_button.isEnabled() and page.chat_button.isEnabled() and not page.resume_button.isEnabled()
    window.train_page.plot.clear()
    page.open_button.click()
    assert window.stack.currentWidget() is window.train_page
    assert window.train_page.plot.steps == [1, 2, 3, 4, 5, 6]
    assert window.state.run_dir == run_dir and window.export_page.source.currentText() == run_dir
    page.chat_button.click()
    assert window.stack.currentWidget() is window.chat_page
    assert window.chat_page.tuned.model.currentText() == run_dir


def test_interrupted_run_resumes_from_the_runs_list(qtbot, window, tmp_path, fake_engine):
    fake_engine.setenv("FAKE_ENGINE_STEPS", "40")
    fake_engine.setenv("FAKE_ENGINE_DELAY", "0.1")
    window.data_page.set_path(str(tmp_path / "data.jsonl"))
    window.train_page.start()
    qtbot.waitUntil(lambda: window.train_page.plot.point_count() >= 3, timeout=20000)
    with qtbot.waitSignal(window.train_page.run_finished, timeout=20000):
        window.train_page.cancel()
    window.go(0)
    page = window.runs_page
    page.table.selectRow(0)
    assert page.runs[0].status == "interrupted" and page.resume_button.isEnabled()
    assert "resumable" in page.table.item(0, 1).text()
    fake_engine.setenv("FAKE_ENGINE_DELAY", "0.01")
    with qtbot.waitSignal(window.train_page.run_finished, timeout=30000) as blocker:
        page.resume_button.click()
    assert blocker.args[1] == "completed" and "--resume" in window.train_page.process.args
    assert page.runs[0].status == "completed"


def test_settings_persist_between_sessions(qtbot, settings, fake_engine, bundled_model_dir):
    from app.main_window import MainWindow

    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.set_theme("dark")
    w.go(3)
    w.resize(1111, 777)
    w.close()
    again = AppSettings(settings.qs.fileName())
    assert again.theme == "dark" and int(again.value("window/page")) == 3 and again.geometry() is not None
    w2 = MainWindow(again)
    qtbot.addWidget(w2)
    assert w2.stack.currentWidget() is w2.method_page and w2.theme_actions["dark"].isChecked()
    w2.close()
    from PySide6.QtWidgets import QApplication

    from app.theme import apply_theme

    apply_theme(QApplication.instance(), "light")
