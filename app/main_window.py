"""The main window: a step list (Runs, then the wizard Model -> ... -> Chat) beside the pages.

Back / Next walk the wizard; the Runs page reopens, resumes, exports or chats
with any past run. Window geometry, the last page and the theme persist with
QSettings (app_settings.py).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (QApplication, QFileDialog, QHBoxLayout, QListWidget, QListWidgetItem, QMainWindow,
                               QMessageBox, QPushButton, QStackedWidget, QVBoxLayout, QWidget)

from app.app_settings import THEMES, AppSettings
from app.chat_page import ChatPage
from app.data_page import DataPage
from app.export_page import ExportPage
from app.method_page import MethodPage
from app.model_page import ModelPage
from app.run_folder import looks_like_run
from app.runs_page import RunsPage
from app.theme import apply_theme
from app.train_page import TrainPage
from app.wizard_state import WizardState
from engine import __version__
from engine.paths import PRESETS_DIR

DEFAULT_PRESET = PRESETS_DIR / "cpu_quickstart.yaml"


class MainWindow(QMainWindow):
    """Navigation list + stacked pages + Back/Next; owns the WizardState."""

    def __init__(self, settings: AppSettings | None = None):
        super().__init__()
        self.settings = settings or AppSettings()
        self.setWindowTitle("edgetune — fine-tune, export, chat")
        self.state = WizardState(self)
        if DEFAULT_PRESET.is_file():
            # the one preset that runs anywhere; the Method page offers the GPU ones
            self.state.set_preset(str(DEFAULT_PRESET))
        s, st = self.settings, self.state
        self.runs_page = RunsPage(st, s)
        self.model_page = ModelPage(st, s)
        self.data_page = DataPage(st, s)
        self.method_page = MethodPage(st, s)
        self.train_page = TrainPage(st, s)
        self.export_page = ExportPage(st, s)
        self.chat_page = ChatPage(st, s)
        self.pages = [self.runs_page, self.model_page, self.data_page, self.method_page, self.train_page,
                      self.export_page, self.chat_page]

        central = QWidget()
        outer = QHBoxLayout(central)
        self.nav = QListWidget()
        self.nav.setFixedWidth(170)
        self.nav.setObjectName("nav")
        self.nav.setStyleSheet("#nav::item { padding: 7px 6px; }")
        for i, page in enumerate(self.pages):
            label = page.title if i == 0 else f"{i}  {page.title}"
            QListWidgetItem(label, self.nav)
        outer.addWidget(self.nav)
        right = QVBoxLayout()
        self.stack = QStackedWidget()
        for page in self.pages:
            self.stack.addWidget(page)
        right.addWidget(self.stack, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.back_button = QPushButton("← Back")
        self.next_button = QPushButton("Next →")
        buttons.addWidget(self.back_button)
        buttons.addWidget(self.next_button)
        right.addLayout(buttons)
        outer.addLayout(right, 1)
        self.setCentralWidget(central)
        self._build_menu()
        self.statusBar().showMessage(f"edgetune {__version__} · runs are saved in {s.runs_dir}")

        self.nav.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.nav.currentRowChanged.connect(self._page_shown)
        self.back_button.clicked.connect(lambda: self.go(self.nav.currentRow() - 1))
        self.next_button.clicked.connect(lambda: self.go(self.nav.currentRow() + 1))
        self.runs_page.open_run.connect(lambda p: self.open_run(p, page=self.train_page))
        self.runs_page.resume_run.connect(self.resume_run)
        self.runs_page.export_run.connect(lambda p: self.open_run(p, page=self.export_page))
        self.runs_page.chat_run.connect(lambda p: self.open_run(p, page=self.chat_page))
        self.train_page.run_finished.connect(self._run_finished)
        self.export_page.exported.connect(lambda *_: (self.chat_page.refresh_choices(), self.runs_page.refresh()))

        geometry = s.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 860)
        start = int(s.value("window/page", 1) or 1)
        self.go(start if 0 <= start < len(self.pages) else 1)

    # navigation -------------------------------------------------------------------------
    def go(self, index: int) -> None:
        if 0 <= index < len(self.pages):
            self.nav.setCurrentRow(index)

    def show_page(self, page: QWidget) -> None:
        self.go(self.pages.index(page))

    def _page_shown(self, index: int) -> None:
        self.back_button.setEnabled(index > 1)
        self.next_button.setEnabled(0 < index < len(self.pages) - 1)
        self.next_button.setText("Start the wizard →" if index == 0 else "Next →")
        if index == 0:
            self.next_button.setEnabled(True)
            self.runs_page.refresh()
        self.settings.set_value("window/page", index)

    # runs ---------------------------------------------------------------------------------
    def open_run(self, path: str, page: QWidget | None = None) -> None:
        """Load a run's config into the wizard, replay its curve, and show `page`."""
        run = Path(path)
        try:
            self.state.set_preset(str(run / "config.yaml"))
            # the run's own model/data/output, not what the wizard had before
            for key in ("model.name_or_path", "data.path", "output_dir"):
                self.state.set(key, self.state.base[key])
        except Exception as e:  # a run folder from an older engine may not load; say so, do not crash
            QMessageBox.warning(self, "Cannot open run", f"{run}: {e}")
            return
        self.state.set_run_dir(str(run))
        self.train_page.load_run(run)
        self.export_page.set_source(str(run))
        self.chat_page.refresh_choices()
        self.show_page(page or self.train_page)

    def resume_run(self, path: str) -> None:
        self.open_run(path, page=self.train_page)
        self.train_page.resume()

    def _run_finished(self, run_dir: str, status: str) -> None:
        self.runs_page.refresh()
        self.state.set_run_dir(run_dir)
        self.export_page.set_source(run_dir)
        self.chat_page.refresh_choices()
        self.statusBar().showMessage(f"run {Path(run_dir).name}: {status}")

    # menu -----------------------------------------------------------------------------------
    def _build_menu(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_action = QAction("&Open run folder…", self)
        open_action.setShortcut(QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self._open_run_dialog)
        file_menu.addAction(open_action)
        out_action = QAction("Default &output folder…", self)
        out_action.triggered.connect(self._choose_runs_dir)
        file_menu.addAction(out_action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        view = self.menuBar().addMenu("&View")
        group = QActionGroup(self)
        self.theme_actions = {}
        for name in THEMES:
            a = QAction(f"{name.capitalize()} theme", self, checkable=True)
            a.setChecked(name == self.settings.theme)
            a.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            group.addAction(a)
            view.addAction(a)
            self.theme_actions[name] = a

    def set_theme(self, name: str) -> None:
        self.settings.theme = name
        apply_theme(QApplication.instance(), name)
        self.theme_actions[name].setChecked(True)
        if self.train_page._plot is not None:
            self.train_page.plot.redraw()
        if self.data_page._histogram is not None:
            self.data_page.histogram.plot(self.data_page.histogram.lengths, self.data_page.histogram.max_len)

    def _open_run_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Run folder", self.settings.last_folder("run"))
        if not path:
            return
        self.settings.set_last_folder("run", path)
        if not looks_like_run(Path(path)):
            QMessageBox.information(self, "Not a run folder", f"{path} has no config.yaml with events or checkpoints.")
            return
        self.settings.add_run_folder(str(Path(path).parent))
        self.open_run(path)

    def _choose_runs_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Default output folder for runs", str(self.settings.runs_dir))
        if path:
            self.settings.runs_dir = path
            self.runs_page.refresh()
            self.statusBar().showMessage(f"runs are saved in {path}")

    # closing ----------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        if self.train_page.process.is_running():
            answer = QMessageBox.question(
                self, "Training is running",
                "A training run is in progress. Stop it (a checkpoint is saved first, so you can resume) and quit?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.train_page.process.cancel()
            self.train_page.process.wait(self.train_page.process.grace_ms)
            self.train_page.process.kill()
        if self.export_page.process.is_running():
            self.export_page.process.kill()
        if self.method_page.query is not None:
            self.method_page.query.cancel()
        self.chat_page.shutdown()
        self.settings.set_geometry(self.saveGeometry())
        self.settings.sync()
        event.accept()
