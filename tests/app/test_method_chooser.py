"""The Method page's method chooser: every registered method under its group, its share and export, bound to `method`."""

from __future__ import annotations

import pytest

from engine.train.methods import GROUPS, get_method, method_names, methods_by_group

TINY = {"model_type": "llama", "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True}


@pytest.fixture
def chooser(qtbot, state):
    from app.method_chooser import MethodChooser

    c = MethodChooser(state)
    qtbot.addWidget(c)
    qtbot.waitUntil(lambda: c.shape is not None or bool(c.shape_error), timeout=30000)  # the default model's shape
    return c


def test_every_registered_method_is_listed_under_its_group(chooser):
    from PySide6.QtCore import Qt

    model = chooser.catalogue  # the combo's list: headings (not choosable), then their methods
    listed, heading = {}, None
    for row in range(model.rowCount()):
        item = model.item(row, 0)
        if item.flags() == Qt.ItemFlag.NoItemFlags:
            heading = listed.setdefault(item.text(), [])
        else:
            heading.append(item.text())
            assert model.item(row, 3).text() == get_method(item.text()).summary  # the one-line explanation
    want = {GROUPS[g]: [m.name for m in ms] for g, ms in methods_by_group().items() if ms}
    assert listed == want and len(listed) == 4
    assert sorted(chooser.rows) == sorted(method_names())
    assert chooser.combo.view().isFirstColumnSpanned(0, chooser.combo.rootModelIndex())
    assert chooser.exports_cell("lora").startswith("merge -> GGUF/ONNX")
    assert chooser.exports_cell("prompt").startswith("no — a soft prompt")
    assert chooser.exports_cell("adapter_serial").startswith("no — a bottleneck adapter")
    assert chooser.exports_cell("full") == "GGUF/ONNX"


def test_choosing_a_method_updates_the_state_and_shows_its_options(qtbot, chooser, state):
    chooser.combo.setCurrentIndex(chooser.rows["ia3"])  # a click in the list
    assert state.get("method") == "ia3" and chooser.editor.text() == "ia3"
    assert "method=ia3" in state.overrides()
    assert chooser.shown_options() == [] and "(IA)^3" in chooser.explanation.text()
    chooser.combo.setCurrentText("prompt")  # the combo
    assert state.get("method") == "prompt" and chooser.combo.currentIndex() == chooser.rows["prompt"]
    assert chooser.shown_options() == ["prompt.num_virtual_tokens", "prompt.init_text"]
    assert "exports: no — a soft prompt" in chooser.explanation.text()
    editor = chooser.option_editors["prompt.num_virtual_tokens"]
    assert "trainable tokens" in editor.toolTip()  # the config's help text
    editor.widget.setValue(32)
    assert state.get("prompt.num_virtual_tokens") == "32"
    state.set("method", "dora")  # the state drives the chooser (a preset, a reopened run)
    assert chooser.combo.currentIndex() == chooser.rows["dora"] and chooser.combo.currentText() == "dora"
    assert "lora.r" in chooser.shown_options() and "prompt.num_virtual_tokens" not in chooser.shown_options()
    assert chooser.option_labels["lora.r"].text() == "LoRA rank:"


def test_trainable_share_is_the_planners_count_on_the_chosen_model(qtbot, chooser, state):
    from engine.plan.shape import shape_from_config

    shape = shape_from_config(TINY, "tiny")
    chooser.set_shape(shape)
    cfg = state.resolved_config()
    for name in ("lora", "ia3", "prompt", "full"):
        n = get_method(name).trainable(shape, cfg)
        assert chooser.share_cell(name) == f"{100 * n / shape.total_params:.3g}%", name
    assert chooser.share_cell("full") == "100%"
    state.set("lora.r", "32")  # a bigger rank: a bigger share
    n = get_method("lora").trainable(shape, state.resolved_config())
    assert chooser.share_cell("lora") == f"{100 * n / shape.total_params:.3g}%"
    assert chooser.share_cell("bitfit") == "n/a"  # llama has no biases: the trainer's refusal, before any run
    state.set("method", "bitfit")
    assert "no bias parameters" in chooser.explanation.text()


def test_the_method_page_uses_the_chooser(qtbot, state, settings, fake_engine):
    from app.method_page import MethodPage

    page = MethodPage(state, settings)
    qtbot.addWidget(page)
    assert page.editors["method"] is page.method_chooser.editor
    assert "method" not in page.advanced.editors
    page.editors["method"].widget.setCurrentText("vera")
    assert state.get("method") == "vera" and "VeRA" in page.method_chooser.explanation.text()


def test_each_option_has_one_editor_and_only_the_chosen_methods_are_shown(qtbot, chooser, state):
    from engine.train.methods import METHODS

    wanted = {k for m in METHODS.values() for k in m.options}
    assert set(chooser.option_editors) == wanted
    assert len(chooser.options.findChildren(type(chooser.editor))) == len(wanted)  # no orphan editors
    chooser.show()
    for name in ("lora", "qlora", "ia3", "adapter_serial", "freeze"):
        state.set("method", name)
        visible = {k for k, ed in chooser.option_editors.items() if ed.isVisible()}
        assert visible == set(get_method(name).options), name
        layout = chooser.options.layout()  # laid out two to a row, in the method's order, from the top
        places = [layout.getItemPosition(layout.indexOf(chooser.option_editors[k]))[:2] for k in get_method(name).options]
        assert places == [(i // 2, (i % 2) * 2 + 1) for i in range(len(places))], name
