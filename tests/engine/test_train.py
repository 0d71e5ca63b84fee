"""Training on a tiny random Llama: real steps, real checkpoints, real failures."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError, EdgetuneError
from engine.events import SCHEMA, SCHEMA_VERSION, read_events
from tests.engine.run_helpers import train
from tests.conftest import REPO, write_jsonl

# A learnable toy task: each answer is fully determined by its question.
TOY = [{"instruction": f"Say the code for item {i}.", "output": f"Code {i}{i}{i}."} for i in range(8)]


@pytest.fixture
def toy_data(tmp_path):
    return write_jsonl(tmp_path / "toy.jsonl", TOY)


def make_cfg(tiny_model_dir, data, out, *extra):
    return load_config(None, [f"model={tiny_model_dir}", f"data={data}", f"output_dir={out}", "method=lora",
                              "batch_size=4", "max_len=64", "lr=3e-3", "optim.warmup_ratio=0", "lora.dropout=0",
                              "train.backend=hf", *extra])




def validate(events):
    for e in events:
        assert e["v"] == SCHEMA_VERSION and e["type"] in SCHEMA
        missing = [k for k in SCHEMA[e["type"]] if k not in e]
        assert not missing, (e["type"], missing)


def adapter_tensors(run_dir):
    from safetensors.torch import load_file

    return load_file(str(Path(run_dir) / "adapter" / "adapter_model.safetensors"))


def test_loss_falls_and_run_folder_is_complete(tiny_model_dir, toy_data, tmp_path):
    # LoRA cannot move a random 64-wide model far in a few steps (its logits start uniform);
    # the LoRA learning check is the real-model quickstart test. Here: full FT, same pipeline.
    cfg = make_cfg(tiny_model_dir, toy_data, tmp_path / "run", "epochs=12", "lr=5e-3", "method=full", "quant.load_in=none")
    result, events, _ = train(cfg)
    validate(events)
    losses = [e["loss"] for e in events if e["type"] == "step"]
    assert result["status"] == "completed"
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "final" / "model.safetensors").is_file()
    assert (run / "final" / "tokenizer.json").is_file()
    assert [p.name for p in sorted((run / "checkpoints").iterdir())][-1].startswith("step-")
    assert not list((run / "checkpoints").glob(".staging*"))
    started = events[0]
    assert started["type"] == "run_started" and started["backend"] == "hf" and started["backend_reason"]
    assert 0 < started["trainable_params"] <= started["total_params"]
    step = next(e for e in events if e["type"] == "step")
    assert step["tokens_per_s"] > 0 and step["grad_norm"] is not None
    assert events[-1]["type"] == "run_finished" and events[-1]["paths"]["final"]
    assert read_events(run / "events.jsonl")[0]["type"] == "run_started"


def test_qlora_base_layers_are_4bit_nf4(tiny_model_dir, toy_data, tmp_path):
    import bitsandbytes as bnb

    cfg = make_cfg(tiny_model_dir, toy_data, tmp_path / "q", "method=qlora", "max_steps=2",
                   "optim.optimizer=paged_adamw_8bit")
    result, events, recipe = train(cfg)
    assert result["status"] == "completed"
    four_bit = [m for m in recipe.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(four_bit) == 2 * 7  # every linear layer of both blocks
    assert all(m.weight.quant_state.quant_type == "nf4" for m in four_bit)
    assert all(m.weight.quant_state.nested for m in four_bit)  # double quantisation
    assert recipe.grad_ckpt is False or recipe.model.base_model.model.is_gradient_checkpointing


def test_dora_and_rslora_switches(tiny_model_dir, toy_data, tmp_path):
    cfg = make_cfg(tiny_model_dir, toy_data, tmp_path / "d", "method=dora", "lora.rslora=true", "max_steps=1")
    result, _, recipe = train(cfg)
    peft_cfg = recipe.model.peft_config["default"]
    assert peft_cfg.use_dora and peft_cfg.use_rslora and result["status"] == "completed"
    from engine.train.shared_prefix import backbone_of

    # chat samples open with the same system prompt: the trainer computed it once per batch
    assert backbone_of(recipe.model).shared_prefix_calls >= 1


def test_unknown_target_module_lists_real_names(tiny_model_dir, toy_data, tmp_path):
    cfg = make_cfg(tiny_model_dir, toy_data, tmp_path / "t", "lora.target_modules=[q_proj,query]")
    with pytest.raises(ConfigError, match=r"\['query'\].*down_proj, gate_proj, k_proj"):
        train(cfg)


def test_resume_after_checkpoint_matches_uninterrupted_run(tiny_model_dir, toy_data, tmp_path, monkeypatch):
    from engine.train.callbacks import GracefulStop

    common = ["epochs=3", "train.save_steps=2", "train.keep_checkpoints=10", "lora.dropout=0.1"]
    full, _, _ = train(make_cfg(tiny_model_dir, toy_data, tmp_path / "full", *common))
    # The same run, stopped (as by Ctrl-C) right after its step-2 checkpoint, then resumed.
    original = GracefulStop.on_step_end

    def stop_at_2(self, args, state, control, **kw):
        self.requested = self.requested or state.global_step == 2
        return original(self, args, state, control, **kw)

    monkeypatch.setattr(GracefulStop, "on_step_end", stop_at_2)
    cfg = make_cfg(tiny_model_dir, toy_data, tmp_path / "part", *common)
    stopped, _, _ = train(cfg)
    assert stopped["status"] == "interrupted" and stopped["paths"]["last_checkpoint"].endswith("step-2")
    monkeypatch.setattr(GracefulStop, "on_step_end", original)
    result, events, _ = train(cfg, resume="latest")
    assert events[0]["resumed_from"].endswith("step-2") and result["status"] == "completed"
    a, b = adapter_tensors(tmp_path / "full"), adapter_tensors(tmp_path / "part")
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]).all(), k  # bit for bit on CPU


def test_resume_with_changed_data_is_refused(tiny_model_dir, toy_data, tmp_path):
    train(make_cfg(tiny_model_dir, toy_data, tmp_path / "r", "max_steps=2"))
    other = write_jsonl(tmp_path / "other.jsonl", TOY[:4])
    with pytest.raises(EdgetuneError, match=r"changed.*data"):
        train(make_cfg(tiny_model_dir, other, tmp_path / "r", "max_steps=4"), resume="latest")
    with pytest.raises(EdgetuneError, match=r"already holds a run.*--resume latest"):
        train(make_cfg(tiny_model_dir, toy_data, tmp_path / "r", "max_steps=4"))


def test_eval_split_early_stopping_and_best_checkpoint(tiny_model_dir, toy_data, tmp_path):
    cfg = make_cfg(tiny_model_dir, toy_data, tmp_path / "e", "epochs=30", "data.eval_split=0.25",
                   "train.early_stopping_patience=1", "lr=5e-2")
    result, events, _ = train(cfg)
    evals = [e for e in events if e["type"] == "eval"]
    assert evals and all(math.isclose(e["perplexity"], math.exp(e["loss"]), rel_tol=1e-6) for e in evals)
    assert result["paths"]["best_checkpoint"]
    best_step = int(result["paths"]["best_checkpoint"].rsplit("-", 1)[1])
    assert min(evals, key=lambda e: e["loss"])["step"] == best_step
    assert Path(result["paths"]["best_checkpoint"]).is_dir()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_model_dir, toy_data, tmp_path, monkeypatch):
    from engine.train.callbacks import NanGuard

    original = NanGuard.on_log

    def poisoned(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs and state.global_step >= 3:
            logs["loss"] = float("nan")
        return original(self, args, state, control, logs=logs, **kw)

    monkeypatch.setattr(NanGuard, "on_log", poisoned)
    cfg = make_cfg(tiny_model_dir, toy_data, tmp_path / "n", "max_steps=6", "train.save_steps=2")
    with pytest.raises(EdgetuneError, match="NaN"):
        train(cfg)
    events = read_events(tmp_path / "n" / "events.jsonl")
    err = next(e for e in events if e["type"] == "error")
    assert err["kind"] == "nan" and "learning rate" in err["hint"] and "step-2" in err["hint"]
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "failed"
    assert (tmp_path / "n" / "checkpoints" / "step-2").is_dir()


def test_oom_halves_micro_batch_and_continues(tiny_model_dir, toy_data, tmp_path, monkeypatch):
    from trl import SFTTrainer

    from engine.train.trainer import AtomicCheckpointMixin

    calls = {"n": 0}
    original = SFTTrainer.training_step

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise MemoryError("simulated: out of memory")
        return original(self, *a, **k)

    monkeypatch.setattr(AtomicCheckpointMixin, "training_step", flaky, raising=False)
    result, events, _ = train(make_cfg(tiny_model_dir, toy_data, tmp_path / "o", "max_steps=3"))
    oom = next(e for e in events if e["type"] == "oom")
    assert oom["batch_size"] == 2 and oom["grad_accum"] == 2
    assert result["status"] == "completed"


def test_disk_full_while_saving_keeps_previous_checkpoint(tiny_model_dir, toy_data, tmp_path, monkeypatch):
    from transformers import Trainer

    from engine.train.trainer import AtomicCheckpointMixin

    original = Trainer._save_optimizer_and_scheduler

    def full_disk(self, output_dir):
        if self.state.global_step >= 4:
            raise OSError(28, "No space left on device")
        return original(self, output_dir)

    monkeypatch.setattr(AtomicCheckpointMixin, "_save_optimizer_and_scheduler", full_disk, raising=False)
    with pytest.raises(EdgetuneError, match="Disk full"):
        train(make_cfg(tiny_model_dir, toy_data, tmp_path / "f", "max_steps=6", "train.save_steps=2"))
    cps = sorted(p.name for p in (tmp_path / "f" / "checkpoints").iterdir())
    assert cps == ["step-2"]
    err = next(e for e in read_events(tmp_path / "f" / "events.jsonl") if e["type"] == "error")
    assert err["kind"] == "disk"


def test_sigterm_saves_checkpoint_and_exits_resumable(tiny_model_dir, toy_data, tmp_path):
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "engine", "train", f"model={tiny_model_dir}", f"data={toy_data}", f"output_dir={out}",
           "method=lora", "batch_size=1", "max_len=64", "epochs=200", "train.backend=hf", "--events", "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    for line in proc.stdout:
        if json.loads(line)["type"] == "step" and json.loads(line)["step"] >= 2:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stdout.read()
    assert proc.wait(timeout=300) == 130
    final = json.loads(rest.strip().splitlines()[-1])
    assert final["type"] == "run_finished" and final["status"] == "interrupted"
    assert final["paths"]["last_checkpoint"] and Path(final["paths"]["last_checkpoint"]).is_dir()


def test_merge_equals_adapter_and_differs_from_base(tiny_model_dir, toy_data, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from engine.train.merge import merge_adapter

    train(make_cfg(tiny_model_dir, toy_data, tmp_path / "m", "epochs=5"))
    report = merge_adapter(tmp_path / "m", dtype="fp32")
    assert report.max_abs_diff <= 1e-4 and report.base_diff > 1e-3
    ids = torch.tensor([[1, 520, 1201, 33, 2]])
    merged = AutoModelForCausalLM.from_pretrained(str(report.out), dtype=torch.float32)(ids).logits
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    base_logits = base(ids).logits
    tuned = PeftModel.from_pretrained(base, str(tmp_path / "m" / "adapter"))(ids).logits
    assert torch.allclose(merged, tuned, atol=1e-4)
    assert not torch.allclose(merged, base_logits, atol=1e-3)
    assert (report.out / "tokenizer.json").is_file() and (report.out / "generation_config.json").is_file()


def test_packing_keeps_samples_apart(tiny_model_dir, toy_data):
    """A flattened batch with per-sample position ids gives the same logits as separate samples."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32, attn_implementation="sdpa")
    a, b = torch.tensor([[1, 50, 60, 70]]), torch.tensor([[1, 80, 90]])
    with torch.no_grad():
        sep = torch.cat([model(a, use_cache=False).logits, model(b, use_cache=False).logits], dim=1)
        # Training runs without a KV cache; that is when transformers reads packing from position ids.
        packed = model(input_ids=torch.cat([a, b], 1), position_ids=torch.tensor([[0, 1, 2, 3, 0, 1, 2]]),
                       use_cache=False).logits
    assert torch.allclose(sep, packed, atol=1e-5)


def test_packing_run(tiny_model_dir, toy_data, tmp_path):
    result, events, _ = train(make_cfg(tiny_model_dir, toy_data, tmp_path / "p", "sequence.packing=true", "max_steps=2"))
    assert result["status"] == "completed"


def test_full_and_freeze_methods(tiny_model_dir, toy_data, tmp_path):
    result, events, recipe = train(make_cfg(tiny_model_dir, toy_data, tmp_path / "fz", "method=freeze",
                                            "train.freeze_layers=1", "max_steps=1"))
    trainable = {n.split(".")[2] for n, p in recipe.model.named_parameters() if p.requires_grad and ".layers." in n}
    assert trainable == {"1"} and (tmp_path / "fz" / "final" / "config.json").is_file()
    result, _, _ = train(make_cfg(tiny_model_dir, toy_data, tmp_path / "full", "method=full", "max_steps=1",
                                  "quant.load_in=none"))
    assert result["status"] == "completed"


def test_raw_text_continued_pretraining(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "t.jsonl", [{"text": "The lantern glows amber at dusk. " * 5}] * 4)
    result, _, _ = train(make_cfg(tiny_model_dir, data, tmp_path / "txt", "max_steps=2"))
    assert result["status"] == "completed"


def test_eval_command_compares_base_and_tuned(tiny_model_dir, toy_data, tmp_path):
    from engine.train.evaluate import evaluate

    train(make_cfg(tiny_model_dir, toy_data, tmp_path / "ev", "epochs=10"))
    base, tuned = evaluate(str(tmp_path / "ev"), str(toy_data))
    assert base.name == "base" and tuned.name == "tuned" and tuned.loss < base.loss
    assert math.isclose(tuned.perplexity, math.exp(tuned.loss), rel_tol=1e-9)


def test_auto_backend_explains_why_not_unsloth_on_cpu():
    from engine.train.backends import choose_backend

    name, reason = choose_backend("auto", "cpu")
    assert name == "hf" and "unsloth" in reason and "GPU" in reason
    with pytest.raises(ConfigError, match="train.backend=unsloth cannot run here"):
        choose_backend("unsloth", "cpu")


@pytest.mark.gpu
@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_auto_backend_uses_unsloth_on_gpu():
    from engine.train.backends import choose_backend

    name, reason = choose_backend("auto", "cuda")
    assert name in ("unsloth", "hf") and reason


@pytest.mark.slow
def test_export_targets_run_after_training(tiny_model_dir, toy_data, tmp_path):
    """export.targets: `engine train` finishes by exporting the run as `engine export` would."""
    out = tmp_path / "exp"
    cmd = [sys.executable, "-m", "engine", "train", f"model={tiny_model_dir}", f"data={toy_data}", f"output_dir={out}",
           "method=lora", "max_steps=2", "batch_size=4", "max_len=64", "train.backend=hf", "export.targets=[gguf,onnx]",
           "export.gguf_quant=f16", "export.onnx_precision=fp32", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "merged" / "config.json").is_file()
    assert (out / "exports" / "model-f16.gguf").is_file() and (out / "exports" / "Modelfile").is_file()
    assert json.loads((out / "exports" / "onnx-fp32" / "verify.json").read_text())["passed"]
    assert "export.targets: engine export gguf" in proc.stderr and "export.targets: engine export onnx" in proc.stderr
