from pathlib import Path

import pytest
import yaml

from engine.config import FIELDS, iter_fields, load_config, save_config
from engine.errors import ConfigError
from engine.paths import PRESETS_DIR


def test_defaults_are_valid_and_every_field_has_help():
    cfg = load_config()
    assert cfg.method == "qlora"
    for f in iter_fields():
        assert len(f.help) > 10, f"{f.key} has no help text"


def test_yaml_then_overrides_with_aliases(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("method: lora\nlr: 5e-4\nlora:\n  r: 4\ndata: x.jsonl\n")
    cfg = load_config(p, ["lr=1e-3", "epochs=12", "lora.alpha=8", "batch_size=auto", "max_len=128", "seed=7"])
    assert cfg.method == "lora" and cfg.optim.lr == pytest.approx(1e-3)
    assert cfg.optim.epochs == 12.0 and cfg.lora.r == 4 and cfg.lora.alpha == 8
    assert cfg.optim.batch_size == "auto" and cfg.sequence.max_len == 128 and cfg.seed == 7
    assert cfg.data.path == "x.jsonl"


def test_lists_dicts_and_bools_from_the_command_line():
    cfg = load_config(None, ["lora.target_modules=[q_proj,v_proj]", "data.columns={instruction: q, output: a}",
                             "sequence.packing=true", "export.targets=gguf,onnx"])
    assert cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.data.columns == {"instruction": "q", "output": "a"}
    assert cfg.sequence.packing is True and cfg.export.targets == ["gguf", "onnx"]


def test_unknown_key_names_it_and_suggests():
    with pytest.raises(ConfigError, match=r"'optim.lrr'.*optim.lr"):
        load_config(None, ["optim.lrr=1"])


def test_wrong_type_names_key_and_expected_type():
    with pytest.raises(ConfigError, match=r"'lora.r'.*'many'.*int"):
        load_config(None, ["lora_r=many"])


def test_bad_choice_lists_allowed_values():
    with pytest.raises(ConfigError, match=r"'method'.*allowed values: lora, qlora, dora, .*ia3, .*prefix, .*bitfit"):
        load_config(None, ["method=magic"])


@pytest.mark.parametrize("overrides, match", [
    (["method=full", "quant.load_in=4bit"], "method=full"),
    (["method=qlora", "quant.load_in=none"], "qlora"),
    (["train.early_stopping_patience=2"], "eval_split"),
    (["export.targets=[tflite]"], "tflite"),
    (["export.gguf_quant=q9"], "gguf_quant"),
    (["epochs=0"], "epochs"),
    (["data.eval_split=1.5"], "eval_split"),
    (["method=qlora", "quant.load_in=8bit"], "method=lora quant.load_in=8bit"),
    (["export.onnx_device=mobile", "export.onnx_precision=fp32"], r"onnx_device=mobile \(it takes int4\)"),
    (["train.save_steps=-5"], r"train.save_steps must be an integer >= 0"),
    (["train.keep_checkpoints=0"], r"train.keep_checkpoints must be an integer >= 1"),
    (["train.freeze_layers=-3"], r"train.freeze_layers"),
    (["data.columns={instruction:q}"], r"space after the colon.*\{instruction: q\}"),
    (["data.columns={question: q}"], r"unknown field 'question'; the fields are: chosen, completion, conversations"),
    (["max_len=8"], r"at least 16"),
    (["model.chat_template=chatmal"], r"not a built-in name \(plain, chatml, llama3, gemma, phi3\)"),
])
def test_impossible_combinations_are_rejected(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("lora:\n  rank: 4\n")
    with pytest.raises(ConfigError, match=r"lora.rank.*wrong.yaml"):
        load_config(wrong)


def test_yaml_sections_and_duplicate_keys_are_explained(tmp_path):
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("lora: 5\n")
    with pytest.raises(ConfigError, match=r"'lora' .* is a section, not a value.*r, alpha, dropout"):
        load_config(scalar)
    twice = tmp_path / "twice.yaml"
    twice.write_text("lr: 1e-3\noptim:\n  lr: 2e-4\n")
    with pytest.raises(ConfigError, match=r"sets optim.lr twice, as 'lr' and as 'optim.lr'"):
        load_config(twice)


def test_onnx_choices_come_from_the_exporter_registry():
    from engine.formats.onnx_targets import PRECISIONS, TARGETS

    assert FIELDS["export.onnx_precision"].choices == tuple(PRECISIONS)
    assert FIELDS["export.onnx_device"].choices == tuple(TARGETS)
    assert load_config(None, ["export.onnx_precision=int8"]).export.onnx_precision == "int8"


def test_bad_yaml_in_a_mapping_value_is_a_config_error():
    with pytest.raises(ConfigError, match=r"'data.columns'.*'\{a:'.*expected dict"):
        load_config(None, ["data.columns={a:"])


def test_save_and_reload_round_trip(tmp_path):
    cfg = load_config(None, ["lr=3e-4", "lora.target_modules=[q_proj]", "batch_size=auto"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg


@pytest.mark.parametrize("preset", sorted(PRESETS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_preset_loads_and_validates(preset):
    cfg = load_config(preset)
    header = preset.read_text().splitlines()[:4]
    assert any("engine train" in line for line in header), "preset header should show its command"
    assert cfg.model.name_or_path


def test_presets_cover_cpu_and_gaming_gpus():
    names = {p.stem for p in PRESETS_DIR.glob("*.yaml")}
    assert {"cpu_quickstart", "gpu_1b_qlora", "gpu_3b_qlora", "gpu_8b_qlora"} <= names
