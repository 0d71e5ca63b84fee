"""The Model page resolves a model through the engine and shows what it is."""

from __future__ import annotations

import pytest


@pytest.fixture
def page(qtbot, state, settings):
    from app.model_page import ModelPage

    p = ModelPage(state, settings)
    qtbot.addWidget(p)
    return p


def test_bundled_model_facts(qtbot, page, state, bundled_model_dir):
    with qtbot.waitSignal(state.model_info_changed, timeout=60000) as blocker:
        page.check()
    info = blocker.args[0]
    assert info.architecture == "LlamaForCausalLM" and info.parameters == 134_515_008
    assert page.facts["parameters"].text().startswith("134.5 M")
    assert page.facts["context"].text() == "8,192 tokens"
    assert page.facts["template"].text().startswith("yes")
    assert page.facts["gguf"].text().startswith("✔")


def test_local_folder_and_a_bad_path(qtbot, page, state, tiny_model_dir, tmp_path):
    page.local_path.setText(str(tiny_model_dir))
    page.radio_local.setChecked(True)
    with qtbot.waitSignal(state.model_info_changed, timeout=60000) as blocker:
        page.check()
    assert blocker.args[0].layers == 2 and state.get("model.name_or_path") == str(tiny_model_dir)
    (tmp_path / "empty").mkdir()
    page.local_path.setText(str(tmp_path / "empty"))
    with qtbot.waitSignal(state.model_info_changed, timeout=60000) as blocker:
        page.check()
    assert blocker.args[0] is None
    assert "no config.json" in page.status.text() and page.facts["architecture"].text() == "—"


def test_offline_hub_id_says_how_to_fix_it(qtbot, page, state):
    page.hub_id.setText("nobody/not-a-model-xyz")
    page.radio_hub.setChecked(True)
    with qtbot.waitSignal(state.model_info_changed, timeout=60000):
        page.check()
    assert "offline" in page.status.text() and "smollm2-135m-instruct" in page.status.text()
