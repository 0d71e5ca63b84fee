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
    tree = chooser.tree
    listed = {}
    for i in range(tree.topLevelItemCount()):
        head = tree.topLevelItem(i)
        listed[head.text(0)] = [head.child(j).text(0) for j in range(head.childCount())]
    want = {GROUPS[g]: [m.name for m in ms] for g, ms in methods_by_group().items() if ms}
    assert listed == want
    assert sorted(chooser.items) == sorted(method_names()) and len(listed) == 4
    for name, item in chooser.items.items():
        assert item.text(3) == get_method(name).summary  # the one-line explanation
    assert chooser.items["lora"].text(2).startswith("merge -> GGUF/ONNX")
    assert chooser.items["prompt"].text(2).startswith("no — a soft prompt")
    assert chooser.items["adapter_serial"].text(2).startswith("no — a bottleneck adapter")
    assert chooser.items["full"].text(2) == "GGUF/ONNX"


def test_choosing_a_method_updates_the_state_and_shows_its_options(qtbot, chooser, state):
    chooser.tree.setCurrentItem(chooser.items["ia3"])  # a click in the list
    assert state.get("method") == "ia3" and chooser.combo.currentText() == "ia3"
    assert "method=ia3" in state.overrides()
    assert chooser.shown_options() == [] and "(IA)^3" in chooser.explanation.text()
    chooser.combo.setCurrentText("prompt")  # the combo
    assert state.get("method") == "prompt" and chooser.tree.currentItem() is chooser.items["prompt"]
    assert chooser.shown_options() == ["prompt.num_virtual_tokens", "prompt.init_text"]
    assert "exports: no — a soft prompt" in chooser.explanation.text()
    editor = chooser.option_editors["prompt.num_virtual_tokens"]
    assert "trainable tokens" in editor.toolTip()  # the config's help text
    editor.widget.setValue(32)
    assert state.get("prompt.num_virtual_tokens") == "32"
    state.set("method", "dora")  # the state drives the chooser (a preset, a reopened run)
    assert chooser.tree.currentItem() is chooser.items["dora"]
    assert "lora.r" in chooser.shown_options() and "prompt.num_virtual_tokens" not in chooser.shown_options()
    assert chooser.option_labels["lora.r"].text() == "LoRA rank:"


def test_trainable_share_is_the_planners_count_on_the_chosen_model(qtbot, chooser, state):
    from engine.plan.shape import shape_from_config

    shape = shape_from_config(TINY, "tiny")
    chooser.set_shape(shape)
    cfg = state.resolved_config()
    for name in ("lora", "ia3", "prompt", "full"):
        n = get_method(name).trainable(shape, cfg)
        assert chooser.items[name].text(1) == f"{100 * n / shape.total_params:.3g}%", name
    assert chooser.items["full"].text(1) == "100%"
    state.set("lora.r", "32")  # a bigger rank: a bigger share
    n = get_method("lora").trainable(shape, state.resolved_config())
    assert chooser.items["lora"].text(1) == f"{100 * n / shape.total_params:.3g}%"
    assert chooser.items["bitfit"].text(1) == "n/a"  # llama has no biases: the trainer's refusal, before any run
    state.set("method", "bitfit")
    assert "no bias parameters" in chooser.explanation.text()


def test_the_method_page_uses_the_chooser(qtbot, state, settings, fake_engine):
    from app.method_page import MethodPage

    page = MethodPage(state, settings)
    qtbot.addWidget(page)
    assert page.editors["method"] is page.method_chooser.editor
    assert "method" not in page.advanced.editors
    page.editors["method"].widget.setCurrentText("vera")
    assert state.get("method") == "vera" and page.method_chooser.tree.currentItem().text(0) == "vera"
