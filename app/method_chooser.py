"""The Method page's method chooser: every registered fine-tuning method, grouped, with what it costs and gives.

    chooser = MethodChooser(state, settings, skip=("optim.lr", ...))
    chooser.editor           # the `method` combo (a FieldEditor bound to the run config)
    chooser.catalogue        # the combo's list: reparametrisation / additive / soft prompts / selective headings,
                             # one row per method with its trainable share on the chosen model, whether it
                             # exports, and its one-line summary (chooser.explanation: the same for the chosen one)
    chooser.option_editors   # the chosen method's own options (its `.options`), help text as tooltip

Everything shown comes from the method registry (engine/train/methods, no torch) and the
planner's model shape (engine/plan/model_lookup.find_shape, no torch, no network), so a
method added to the registry appears here without touching the app. "Compare methods…"
opens the Compare view (app/compare_page.py), which runs `engine compare` on the same settings.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QTreeView, QWidget

from app.field_editor import FieldEditor, short_label
from app.worker import run_in_thread
from engine.config import FIELDS, load_config
from engine.errors import EdgetuneError
from engine.train.methods import GROUPS, get_method, methods_by_group

# Group titles as the explanation shows them (GROUPS holds the one-line description after the colon).
GROUP_TITLES = {g: text.split(":", 1)[0] for g, text in GROUPS.items()}
NAME, SHARE, EXPORTS, SUMMARY = range(4)
POPUP_WIDTH = 1000  # the catalogue's columns, wider than the combo
COLUMN_WIDTHS = {NAME: 120, SHARE: 80, EXPORTS: 300}


def export_text(method) -> str:
    """'exports: merge -> GGUF/ONNX', or 'exports: no — a soft prompt; chat/serve the run'."""
    e = method.export
    if not e.merge:
        what = e.why_not.split(" is ", 1)[0] if " is " in e.why_not[:60] else "cannot be folded into the weights"
        return f"exports: no — {what}; chat/serve the run"
    if not method.is_adapter:
        return "exports: GGUF/ONNX"
    return "exports: merge -> GGUF/ONNX" + (" + LoRA GGUF" if e.gguf_adapter else "")


def share_text(trainable: int | None, total: int | None) -> str:
    """'0.84% trainable' ('?' when the model's shape or the count is unknown)."""
    if trainable is None or not total:
        return "? trainable"
    pct = 100.0 * trainable / total
    if pct == 0:
        return "0% trainable"
    return f"{pct:.3g}% trainable" if pct >= 0.001 else f"{pct:.1e}% trainable"


def count_text(n: int) -> str:
    """1234567 -> '1.23M'."""
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def trainable_params(method, shape, cfg) -> int | None:
    """The planner's trainable count of `method` on `shape`, or None when it cannot say (e.g. no biases)."""
    if shape is None or cfg is None:
        return None
    try:
        return int(method.trainable(shape, cfg))
    except Exception:  # a method the planner cannot count on this shape: shown as '?', not an app error
        return None


def refusal(method, shape, cfg) -> str:
    """Why `method` cannot apply to a model of `shape` (the trainer's own check, before loading), or ''."""
    if shape is None or cfg is None:
        return ""
    from engine.train.methods import ModelFacts, bias_params

    try:
        return method.refusal(ModelFacts(shape.model_type, bias_params(shape) * shape.num_layers, shape.num_layers), cfg) or ""
    except Exception:  # the check itself failed: let the engine say it when the run starts
        return ""


def option_label(key: str) -> str:
    """A short label from the option's help text ('LoRA rank: size of ...' -> 'LoRA rank'), else from its key."""
    head = FIELDS[key].help.split(":", 1)[0]
    return head if 0 < len(head) <= 24 and head != FIELDS[key].help else short_label(key)


class MethodChooser(QWidget):
    """Method combo + grouped catalogue + the chosen method's options, bound to a WizardState."""

    def __init__(self, state, settings=None, skip: tuple = (), parent=None):
        super().__init__(parent)
        self.state, self.settings = state, settings
        self.shape = None  # the chosen model's shape (None until found, or when it cannot be)
        self.shape_error = ""
        self.compare_dialog = None
        lay = QGridLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setVerticalSpacing(3)

        self.editor = FieldEditor(FIELDS["method"]).bind(state)
        self.combo = self.editor.widget
        label = QLabel("Method:")
        label.setToolTip(self.editor.toolTip())
        top = QHBoxLayout()
        top.addWidget(self.editor, 1)
        self.compare_button = QPushButton("Compare methods…")
        self.compare_button.setToolTip("Train several methods on this model and data, one after another, and compare "
                                       "trainable parameters, memory, speed and losses (engine compare).")
        self.compare_button.clicked.connect(self.open_compare)
        top.addWidget(self.compare_button)
        lay.addWidget(label, 0, 0)
        lay.addLayout(top, 0, 1)
        lay.setColumnStretch(1, 1)

        self.explanation = QLabel("")
        self.explanation.setWordWrap(True)
        self.explanation.setStyleSheet("color: palette(placeholder-text);")
        lay.addWidget(self.explanation, 1, 0, 1, 2)

        # the combo's list is the catalogue: a table grouped under headings, one row per method with its
        # trainable share and export support (the page has no height to spare for a second list)
        self.catalogue = QStandardItemModel(0, 4, self)
        self.catalogue.setHorizontalHeaderLabels(["Method", "Trainable", "Exports", "What it does"])
        self.rows: dict[str, int] = {}  # method -> its row in the catalogue
        headings = []
        for group, methods in methods_by_group().items():
            if not methods:
                continue
            head = QStandardItem(GROUPS[group])
            head.setFlags(Qt.ItemFlag.NoItemFlags)  # a heading, not a choice (the combo's keys skip it)
            font = head.font()
            font.setBold(True)
            head.setFont(font)
            headings.append(self.catalogue.rowCount())
            self.catalogue.appendRow([head])
            for m in methods:
                cells = [QStandardItem(t) for t in (m.name, "", export_text(m).removeprefix("exports: "), m.summary)]
                cells[NAME].setToolTip(f"<b>{m.name}</b> ({GROUP_TITLES[group].lower()})<br>{html.escape(m.summary)}")
                cells[EXPORTS].setToolTip(m.export.why_not or export_text(m))
                cells[SUMMARY].setToolTip(m.summary)
                self.rows[m.name] = self.catalogue.rowCount()
                self.catalogue.appendRow(cells)
        self.view = QTreeView()
        self.view.setRootIsDecorated(False)
        self.view.setItemsExpandable(False)
        self.view.setAlternatingRowColors(True)
        self.view.setMinimumWidth(POPUP_WIDTH)
        self.combo.blockSignals(True)
        self.combo.setModel(self.catalogue)
        self.combo.setView(self.view)
        self.combo.setMaxVisibleItems(self.catalogue.rowCount())
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(16)  # the headings are long; the popup is wide instead
        self.editor.set_text(state.get("method"))
        self.combo.blockSignals(False)
        for row in headings:
            self.view.setFirstColumnSpanned(row, QModelIndex(), True)
        for col, width in COLUMN_WIDTHS.items():
            self.view.header().resizeSection(col, width)
        # every method's options, built once and shown for the chosen method only (editors bound to the
        # state must live as long as it: a deleted editor would still receive its value_changed)
        self.options = QWidget()
        ol = QGridLayout(self.options)
        ol.setContentsMargins(0, 0, 0, 0)
        ol.setVerticalSpacing(2)
        self.option_editors: dict[str, FieldEditor] = {}
        self.option_labels: dict[str, QLabel] = {}
        keys: list[str] = []
        for methods in methods_by_group().values():
            for m in methods:
                keys += [k for k in m.options if k in FIELDS and k not in skip and k not in keys]
        for key in keys:
            ed = FieldEditor(FIELDS[key], self.options).bind(state)  # parented: out of the grid they stay hidden here
            lab = QLabel(option_label(key) + ":", self.options)
            lab.setToolTip(ed.toolTip())
            self.option_editors[key], self.option_labels[key] = ed, lab
        self._options_layout = ol
        ol.setColumnStretch(1, 1)
        ol.setColumnStretch(3, 1)
        lay.addWidget(self.options, 2, 0, 1, 2)
        self._relevant = set(keys) | {"method", "quant.load_in", "lora.target_modules"}

        state.value_changed.connect(self._value_changed)
        self._find_shape()
        self.refresh()

    # model shape -------------------------------------------------------------------------
    def _value_changed(self, key: str) -> None:
        if key in ("model.name_or_path", "model.trust_remote_code"):
            self._find_shape()
        elif key in self._relevant or key.startswith(("lora.", "prompt.", "adapter.")):
            self.refresh()

    def _find_shape(self) -> None:
        from engine.plan.model_lookup import find_shape

        spec = self.state.get("model.name_or_path")
        trust = self.state.get("model.trust_remote_code") == "true"
        run_in_thread(find_shape, spec, trust, on_done=self._shape_found, on_failed=self._shape_failed, context=self)

    def _shape_found(self, shape) -> None:
        self.shape, self.shape_error = shape, ""
        self.refresh()

    def _shape_failed(self, message: str) -> None:
        self.shape, self.shape_error = None, message
        self.refresh()

    def set_shape(self, shape) -> None:
        """Use this model shape for the trainable shares (tests, or a caller that already has it)."""
        self._shape_found(shape)

    # display ------------------------------------------------------------------------------
    def config(self):
        """The run config the shares are computed on (the engine's defaults while a setting is invalid)."""
        try:
            return self.state.resolved_config()
        except EdgetuneError:
            try:
                return load_config(None, [f"method={self.state.get('method')}"])
            except EdgetuneError:
                return load_config(None)

    def share_of(self, name: str) -> str:
        """'0.84% trainable' for method `name` on the chosen model."""
        total = self.shape.total_params if self.shape is not None else None
        return share_text(trainable_params(get_method(name), self.shape, self.config()), total)

    def refresh(self) -> None:
        """Shares, selection, explanation and option fields for the current settings."""
        cfg = self.config() if self.shape is not None else None
        total = self.shape.total_params if self.shape is not None else None
        note = (f"Trainable share on {self.shape.name} ({count_text(total)} parameters)" if total
                else f"Trainable share unknown: {self.shape_error}" if self.shape_error else "Reading the model's shape…")
        for name, row in self.rows.items():
            n = trainable_params(get_method(name), self.shape, cfg)
            why = refusal(get_method(name), self.shape, cfg)
            item = self.catalogue.item(row, SHARE)
            item.setText("n/a" if why else share_text(n, total).removesuffix(" trainable"))
            item.setToolTip(f"Cannot apply to this model: {why}" if why else
                            f"{note}: {count_text(n)} trainable parameters." if n is not None else note)
        name = self.state.get("method")
        try:
            method = get_method(name)
        except EdgetuneError as e:
            self.explanation.setText(html.escape(str(e)))
            return
        share = share_text(trainable_params(method, self.shape, cfg), total)
        why = refusal(method, self.shape, cfg)
        self.explanation.setText(f"<i>{html.escape(GROUP_TITLES[method.group])}.</i> {html.escape(method.summary)} "
                                 f"<b>{html.escape(share)}</b> · {html.escape(export_text(method))}"
                                 + (f"<br><span style='color:#9a6700'>⚠ Cannot apply to this model: {html.escape(why)}</span>"
                                    if why else ""))
        self.explanation.setToolTip(method.export.why_not)
        self._show_options(method.options)

    def _show_options(self, keys) -> None:
        """Lay out the editors of `keys` two to a row (the others hidden, out of the grid)."""
        ol, i = self._options_layout, 0
        for key, ed in self.option_editors.items():
            lab = self.option_labels[key]
            ol.removeWidget(lab)
            ol.removeWidget(ed)
            shown = key in keys
            ed.setVisible(shown)
            lab.setVisible(shown)
            if shown:
                ol.addWidget(lab, i // 2, (i % 2) * 2)
                ol.addWidget(ed, i // 2, (i % 2) * 2 + 1)
                i += 1

    def share_cell(self, name: str) -> str:
        """The catalogue's 'Trainable' cell of method `name`."""
        return self.catalogue.item(self.rows[name], SHARE).text()

    def exports_cell(self, name: str) -> str:
        """The catalogue's 'Exports' cell of method `name`."""
        return self.catalogue.item(self.rows[name], EXPORTS).text()

    def shown_options(self) -> list[str]:
        """The option keys shown now (the chosen method's, minus those the page shows elsewhere)."""
        return [k for k, ed in self.option_editors.items() if not ed.isHidden()]

    # compare -------------------------------------------------------------------------------
    def open_compare(self) -> None:
        """Show the Compare view (one per chooser: it keeps running while hidden)."""
        from app.compare_page import CompareDialog

        if self.compare_dialog is None:
            self.compare_dialog = CompareDialog(self.state, self.settings, self)
        self.compare_dialog.show()
        self.compare_dialog.raise_()
        self.compare_dialog.activateWindow()
