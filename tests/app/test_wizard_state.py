"""The wizard state: config as text per field, presets, and the key=value overrides it passes on."""

from __future__ import annotations

from pathlib import Path

from app.stage_info import stage_of_key
from app.wizard_state import WizardState, config_texts, override_text
from engine.config import FIELDS, load_config
from engine.paths import PRESETS_DIR


def test_every_field_round_trips_through_key_equals_text(qapp):
    for preset in [None, *sorted(PRESETS_DIR.glob("*.yaml"))]:
        base = config_texts(load_config(preset))
        stage = base.get("stage", "sft")
        for key in FIELDS:
            if stage_of_key(key) not in (None, stage):
                continue  # another stage's option: the engine refuses it while this stage is chosen
            again = config_texts(load_config(preset, [override_text(key, base[key])]))
            assert again[key] == base[key], (preset, key)


def test_strings_yaml_would_misread_are_quoted():
    assert override_text("output_dir", "yes") == 'output_dir="yes"'
    assert override_text("output_dir", "/runs/a") == "output_dir=/runs/a"
    assert load_config(None, [override_text("output_dir", "1e-3")]).output_dir == "1e-3"


def test_overrides_are_only_what_differs_from_the_preset(qapp):
    st = WizardState()
    st.set_preset(str(PRESETS_DIR / "cpu_quickstart.yaml"))
    assert st.overrides() == [f"data.path={(PRESETS_DIR.parent.parent / 'assets/datasets/quillon_facts.jsonl').resolve()}"]
    st.set("optim.lr", "0.0005")
    st.set("lora.target_modules", "[q_proj, v_proj]")
    cfg = st.resolved_config()
    assert cfg.optim.lr == 5e-4 and cfg.lora.target_modules == ["q_proj", "v_proj"] and cfg.method == "lora"


def test_choosing_a_preset_keeps_the_users_data_and_model(qapp, tmp_path):
    st = WizardState()
    st.set("data.path", str(tmp_path / "mine.jsonl"))
    st.set("model.name_or_path", "/models/my-llama")
    st.set("optim.lr", "0.5")
    changed = []
    st.value_changed.connect(changed.append)
    st.set_preset(str(PRESETS_DIR / "gpu_1b_qlora.yaml"))
    assert st.get("data.path") == str(tmp_path / "mine.jsonl") and st.get("model.name_or_path") == "/models/my-llama"
    assert st.get("optim.lr") == st.base["optim.lr"] != "0.5"
    assert "optim.lr" in changed and Path(st.preset).name == "gpu_1b_qlora.yaml"


def test_other_stages_options_are_not_passed_on(stage_state):
    st = stage_state
    st.set("stage", "dpo")
    st.set("dpo.beta", "0.3")
    st.set("kto.desirable_weight", "2")  # set while dpo is chosen: kept in the form, not passed on
    assert "dpo.beta=0.3" in st.overrides() and not any(o.startswith("kto.") for o in st.overrides())
    st.set("stage", "kto")
    assert "kto.desirable_weight=2" in st.overrides() and not any(o.startswith("dpo.") for o in st.overrides())
    assert st.resolved_config().kto.desirable_weight == 2.0


def test_a_preset_with_another_stages_options_is_replaced_by_its_values(stage_state, tmp_path):
    st = stage_state
    preset = tmp_path / "dpo.yaml"
    preset.write_text("stage: dpo\nlr: 5.0e-5\ndpo:\n  beta: 0.2\n", encoding="utf-8")
    st.set_preset(str(preset))
    assert st.get("stage") == "dpo" and st.config_args() == [str(preset)]  # the preset as it is
    st.set("stage", "orpo")  # its dpo.beta would be refused under orpo: every value goes as key=value instead
    args = st.config_args()
    assert str(preset) not in args and "stage=orpo" in args and "optim.lr=5e-05" in args
    assert not any(a.startswith("dpo.") for a in args)
    cfg = st.resolved_config()
    assert cfg.stage == "orpo" and cfg.optim.lr == 5e-5
    st.set("stage", "dpo")
    assert st.config_args() == [str(preset)]
