"""One model policy everywhere: every command resolves a model through engine.models.resolve_model and
its checks, so a folder that cannot be used gets the same clear message (exit 2, no traceback) from
train, chat, eval, merge, export and plan, and nothing ever loads a pickle or runs a folder's code."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.cli.main import main
from engine.errors import ModelSourceError
from engine.models import resolve_model
from engine.models.checks import check_model_folder, run_stage
from engine.paths import DATASETS_DIR

DATA = str(DATASETS_DIR / "quillon_facts.jsonl")


def commands(model: str, tmp_path) -> dict[str, list[str]]:
    """Every command that takes a model, pointed at `model`."""
    return {
        "train": ["train", f"model={model}", f"data={DATA}", f"output_dir={tmp_path / 'run'}", "optim.max_steps=1",
                  "--no-progress"],
        "chat": ["chat", model],
        "eval": ["eval", model, "--data", DATA],
        "export gguf": ["export", "gguf", model, "--out", str(tmp_path / "gguf")],
        "export onnx": ["export", "onnx", model, "--out", str(tmp_path / "onnx")],
        "plan": ["plan", f"model={model}"],
    }


def run_cli(argv, capsys) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err
    return rc, err


def copy_model(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.fixture
def pickle_model(tiny_model_dir, tmp_path):
    """The tiny model with its weights as a pickle (pytorch_model.bin), as older hub repos ship them."""
    import torch
    from safetensors.torch import load_file

    folder = copy_model(tiny_model_dir, tmp_path / "pickled")
    # transformers 5 always saves safetensors (safe_serialization=False is ignored): write the pickle ourselves
    for f in folder.glob("*.safetensors"):
        torch.save(load_file(str(f)), folder / "pytorch_model.bin")
        f.unlink()
    assert (folder / "pytorch_model.bin").is_file() and not list(folder.glob("*.safetensors"))
    return folder


def test_pickle_weights_give_one_message_in_every_command(pickle_model, tmp_path, capsys):
    messages = {}
    for name, argv in commands(str(pickle_model), tmp_path).items():
        rc, err = run_cli(argv, capsys)
        assert rc == 2, (name, err)
        assert "Traceback" not in err, (name, err)
        assert "pytorch_model.bin" in err and "loading a pickle can run any code" in err, (name, err)
        assert "save_pretrained" in err and "safetensors" in err, (name, err)
        messages[name] = next(line for line in err.splitlines() if line.startswith("error:"))
    assert len(set(messages.values())) == 1, messages
    assert not (tmp_path / "run" / "config.yaml").exists()  # train refused before it started a run


def test_safetensors_beside_a_pickle_is_fine(pickle_model, tiny_model_dir):
    for f in tiny_model_dir.glob("*.safetensors"):
        shutil.copy(f, pickle_model / f.name)
    assert resolve_model(str(pickle_model)).path == pickle_model.resolve()


def test_missing_tokenizer(tiny_model_dir, tmp_path, capsys):
    folder = copy_model(tiny_model_dir, tmp_path / "no-tok")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    for name in ("chat", "export gguf", "eval", "train"):
        rc, err = run_cli(commands(str(folder), tmp_path)[name], capsys)
        assert rc == 2 and "has no tokenizer" in err and "AutoTokenizer" in err and "Traceback" not in err, (name, err)


def test_remote_code_needs_trust(tiny_model_dir, tmp_path, capsys):
    folder = copy_model(tiny_model_dir, tmp_path / "remote")
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="quillon", auto_map={"AutoConfig": "configuration_quillon.QuillonConfig",
                                                  "AutoModelForCausalLM": "modeling_quillon.QuillonForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_quillon.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(ModelSourceError, match=r"modeling_quillon\.py.*model\.trust_remote_code=true"):
        resolve_model(str(folder))
    check_model_folder(folder, trust_remote_code=True)  # the user said yes: the folder passes the policy
    for name in ("chat", "plan", "train"):
        rc, err = run_cli(commands(str(folder), tmp_path)[name], capsys)
        assert rc == 2 and "model.trust_remote_code=true" in err and "Traceback" not in err, (name, err)


def test_auto_map_on_an_architecture_transformers_implements_is_not_remote_code(tiny_model_dir, tmp_path):
    folder = copy_model(tiny_model_dir, tmp_path / "llama-with-auto-map")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_llama.LlamaForCausalLM"}  # like Phi-3 repos
    (folder / "config.json").write_text(json.dumps(config))
    resolve_model(str(folder))


@pytest.fixture
def rm_run(tmp_path):
    """A reward-model run folder as the rm recipe leaves it (only what the checks read)."""
    run = tmp_path / "rm-run"
    (run / "adapter").mkdir(parents=True)
    (run / "config.yaml").write_text("stage: rm\nmodel:\n  name_or_path: smollm2-135m-instruct\n")
    (run / "adapter" / "adapter_config.json").write_text(json.dumps({"task_type": "SEQ_CLS", "peft_type": "LORA"}))
    return run


def test_reward_model_run_is_refused_where_a_chat_model_is_needed(rm_run, tmp_path, capsys):
    # (`engine eval` on an rm run is valid: it reports reward accuracy, tests/engine/test_recipes.py)
    for name in ("chat", "export gguf", "export onnx", "plan", "train"):
        rc, err = run_cli(commands(str(rm_run), tmp_path)[name], capsys)
        assert rc == 2 and "is a reward model (stage=rm)" in err and "engine score" in err, (name, err)
        assert "Traceback" not in err
    rc, err = run_cli(["merge", str(rm_run)], capsys)
    assert rc == 2 and "is a reward model (stage=rm)" in err
    import torch
    from safetensors.torch import save_file

    save_file({"score.weight": torch.zeros(1, 4)}, str(rm_run / "adapter" / "adapter_model.safetensors"))
    (rm_run / "adapter" / "tokenizer.json").write_text("{}")
    resolved = resolve_model(str(rm_run), purpose="reward")  # what `engine score` asks for
    assert (resolved.stage, resolved.path) == ("rm", rm_run.resolve() / "adapter")


def test_stage_absent_in_old_runs_means_sft(tmp_path):
    (tmp_path / "config.yaml").write_text("model:\n  name_or_path: x\n")
    assert run_stage(tmp_path) == "sft"


@pytest.fixture
def lora_run(tiny_model_dir, tmp_path):
    """A finished LoRA run folder: config.yaml naming the tiny base, and a saved peft adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.config import load_config, save_config

    run = tmp_path / "sft-run"
    run.mkdir()
    cfg = load_config(None, [f"model={tiny_model_dir}", f"data={DATA}", f"output_dir={run}"])
    save_config(cfg, run / "config.yaml")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(str(run / "adapter"))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(run / "adapter"))
    return run


def test_a_run_folder_as_model_resolves_to_its_merged_model(lora_run):
    resolved = resolve_model(str(lora_run))
    assert resolved.source == "run" and resolved.stage == "sft"
    assert resolved.path == lora_run.resolve() / "merged"  # merged on demand
    assert (resolved.path / "config.json").is_file() and list(resolved.path.glob("*.safetensors"))
    mtime = next(resolved.path.glob("*.safetensors")).stat().st_mtime
    assert resolve_model(str(lora_run)).path == resolved.path  # merged once, then reused
    assert next(resolved.path.glob("*.safetensors")).stat().st_mtime == mtime


def test_plan_of_an_unmerged_run_reads_its_base_shape_without_torch(lora_run, tiny_model_dir):
    import subprocess
    import sys

    code = ("import sys; from engine.plan.model_lookup import find_shape; "
            f"s = find_shape({str(lora_run)!r}); print(s.num_layers, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "False"]
    assert not (lora_run / "merged").exists()
