"""The method registry on tiny random models: attach, the planner's count, what a step changes,
save/load, merge, and the refusals. Each method trains through the public entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError, EdgetuneError
from tests.conftest import write_jsonl
from tests.engine.run_helpers import train

TOY = [{"instruction": f"Say the code for item {i}.", "output": f"Code {i}{i}{i}."} for i in range(8)]
# Methods that need a model with biases (BitFit) run on a tiny Qwen2 (q/k/v biases); the rest on the tiny Llama.
QWEN_ONLY = {"bitfit"}
QUANTISED = {"qlora"}  # 4-bit on CPU through bitsandbytes: slow, one test of its own elsewhere


def method_names():
    from engine.train.methods import method_names as names

    return names()


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("toy") / "toy.jsonl", TOY)


@pytest.fixture(scope="module")
def tiny_qwen_dir(tmp_path_factory, smol_tokenizer):
    """A tiny random Qwen2 (biases on q/k/v) with SmolLM2's tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(smol_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=smol_tokenizer.bos_token_id, eos_token_id=smol_tokenizer.eos_token_id,
                      pad_token_id=smol_tokenizer.pad_token_id, tie_word_embeddings=True)
    out = tmp_path_factory.mktemp("tiny-qwen2")
    Qwen2ForCausalLM(cfg).save_pretrained(str(out))
    smol_tokenizer.save_pretrained(str(out))
    return out


def model_for(method, tiny_model_dir, tiny_qwen_dir):
    return tiny_qwen_dir if method in QWEN_ONLY else tiny_model_dir


def make_cfg(model, data, out, method, *extra):
    return load_config(None, [f"model={model}", f"data={data}", f"output_dir={out}", f"method={method}",
                              "batch_size=4", "max_len=64", "optim.warmup_ratio=0", "lora.dropout=0", "lora.r=4",
                              "adapter.size=8", "prompt.num_virtual_tokens=4", "train.backend=hf", "max_steps=3",
                              "lr=1e-2", "quant.compute_dtype=fp32", *extra])


@pytest.fixture(scope="module")
def method_runs(tiny_model_dir, tiny_qwen_dir, toy_file, tmp_path_factory):
    """One short training run per method (shared by the tests below): (cfg, result, recipe)."""
    runs = {}
    root = tmp_path_factory.mktemp("methods")
    for name in method_names():
        if name in QUANTISED:
            continue
        cfg = make_cfg(model_for(name, tiny_model_dir, tiny_qwen_dir), toy_file, root / name, name)
        result, _events, recipe = train(cfg)
        runs[name] = (cfg, result, recipe)
    return runs


def test_unknown_method_lists_the_known_ones():
    from engine.train.methods import get_method

    with pytest.raises(ConfigError, match="known methods: lora, qlora, dora.*ia3.*prefix.*bitfit"):
        get_method("qlorra")


@pytest.mark.parametrize("name", [n for n in method_names() if n not in QUANTISED])
def test_method_trains_and_counts_as_the_planner_says(method_runs, name):
    from engine.plan.shape import shape_from_config
    from engine.train.methods import get_method
    from engine.train.model_setup import count_params

    cfg, result, recipe = method_runs[name]
    assert result["status"] == "completed"
    model_dir = Path(cfg.model.name_or_path)
    shape = shape_from_config(json.loads((model_dir / "config.json").read_text()), "tiny")
    trainable, _ = count_params(recipe.model)
    assert trainable == get_method(name).trainable(shape, cfg), name


@pytest.mark.parametrize("name", [n for n in method_names() if n not in QUANTISED])
def test_a_step_changes_only_the_trainable_parameters(tiny_model_dir, tiny_qwen_dir, toy_file, tmp_path, name):
    import torch

    from engine.train.device import choose_device
    from engine.train.model_setup import attach_trainable, load_base
    from engine.models.loading import tokenizer_from_dir

    cfg = make_cfg(model_for(name, tiny_model_dir, tiny_qwen_dir), toy_file, tmp_path / "r", name)
    model_dir = Path(cfg.model.name_or_path)
    model = attach_trainable(load_base(cfg, model_dir, choose_device("fp32")), cfg, gradient_checkpointing=False)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    tok = tokenizer_from_dir(model_dir)
    batch = tok(["Code 111. Code 222."], return_tensors="pt")
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):  # two steps: zero-initialised up-projections (B, up) pass gradient on only after one
        model(**batch, labels=batch["input_ids"]).loss.backward()
        opt.step()
        opt.zero_grad()
    state = model.state_dict()
    changed = {k for k, v in state.items() if not torch.equal(v, before[k])}
    assert changed, name
    # tied weights (lm_head = embed_tokens) appear under two state-dict keys but one parameter: compare storage
    trainable_storage = {p.data_ptr() for p in model.parameters() if p.requires_grad}
    frozen_changed = {k for k in changed if state[k].data_ptr() not in trainable_storage}
    assert not frozen_changed, (name, sorted(frozen_changed)[:5])


@pytest.mark.parametrize("name", [n for n in method_names() if n not in QUANTISED])
def test_saved_run_reloads_to_the_same_logits(method_runs, name):
    import torch
    from transformers import AutoModelForCausalLM

    from engine.train.methods import get_method
    from engine.train.methods.saved import load_adapter

    cfg, result, recipe = method_runs[name]
    run = Path(cfg.output_dir)
    ids = torch.tensor([[1, 5, 9, 200, 33, 7]])
    trained = recipe.model.eval()
    with torch.no_grad():
        want = trained(input_ids=ids).logits.float()
        if get_method(name).is_adapter:
            base = AutoModelForCausalLM.from_pretrained(cfg.model.name_or_path, dtype=torch.float32)
            loaded = load_adapter(base, run / "adapter").eval()
        else:
            loaded = AutoModelForCausalLM.from_pretrained(str(run / "final"), dtype=torch.float32).eval()
        got = loaded(input_ids=ids).logits.float()
    want = want[:, -got.shape[1]:]  # a soft prompt's own positions are not the input's
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-4), (name, (got - want).abs().max())


@pytest.mark.parametrize("name", [n for n in method_names() if n not in QUANTISED])
def test_merge_equals_adapter_logits_or_says_why_not(method_runs, name):
    from engine.train.merge import merge_adapter
    from engine.train.methods import get_method

    cfg, _, _ = method_runs[name]
    method = get_method(name)
    run = Path(cfg.output_dir)
    if not method.is_adapter:
        pytest.skip("a whole-model run (final/) has nothing to merge")
    if method.export.merge:
        report = merge_adapter(run)
        assert report.max_abs_diff <= 1e-4 and report.base_diff > 0
    else:
        with pytest.raises(EdgetuneError, match="cannot be merged.*train a LoRA"):
            merge_adapter(run)
        assert not (run / "merged").exists()


def test_bitfit_is_refused_on_a_model_without_biases(tiny_model_dir, toy_file, tmp_path):
    cfg = make_cfg(tiny_model_dir, toy_file, tmp_path / "b", "bitfit")
    with pytest.raises(ConfigError, match="no bias parameters.*method=ia3"):
        train(cfg)
    assert not (tmp_path / "b" / "config.yaml").exists()  # refused before loading anything


@pytest.mark.parametrize("overrides, match", [
    (["method=loha", "quant.load_in=4bit"], r"method=loha cannot train on a 4bit base.*method=qlora"),
    (["method=full", "quant.load_in=8bit"], r"method=full cannot train on a 8bit base"),
    (["method=lora", "lora.init=pissa", "quant.load_in=4bit"], r"lora.init=pissa.*16-bit base"),
    (["method=ia3", "lora.plus_lr_ratio=16"], r"lora.plus_lr_ratio applies to method=lora"),
    (["method=prefix", "prompt.init_text=hello"], r"prompt.init_text initialises method=prompt and method=ptuning_v2 only"),
])
def test_impossible_method_settings_are_refused(overrides, match, tiny_model_dir, toy_file, tmp_path):
    with pytest.raises(ConfigError, match=match):
        cfg = load_config(None, [f"model={tiny_model_dir}", f"data={toy_file}", f"output_dir={tmp_path / 'x'}", *overrides])
        train(cfg)


def test_lora_plus_and_pissa_train(tiny_model_dir, toy_file, tmp_path):
    """LoRA+ builds peft's optimizer (B at ratio x lr); a PiSSA run saves a LoRA for the original base."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.train.methods.saved import load_adapter

    result, _, recipe = train(make_cfg(tiny_model_dir, toy_file, tmp_path / "plus", "lora", "lora.plus_lr_ratio=16"))
    assert result["status"] == "completed"
    cfg = make_cfg(tiny_model_dir, toy_file, tmp_path / "pissa", "lora", "lora.init=pissa")
    result, _, recipe = train(cfg)
    ids = torch.tensor([[1, 5, 9, 200, 33, 7]])
    with torch.no_grad():
        want = recipe.model.eval()(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)  # the unmodified base
        got = load_adapter(base, tmp_path / "pissa" / "adapter").eval()(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-4)


PAIRS = [{"prompt": f"Say the code for item {i}.", "chosen": f"Code {i}{i}{i}.", "rejected": f"I do not know item {i}."}
         for i in range(8)]


@pytest.mark.parametrize("name", ["ia3", "loha", "adalora", "adapter_parallel", "bitfit", "prompt", "prefix"])
def test_method_families_train_under_dpo(name, tiny_model_dir, tiny_qwen_dir, tmp_path):
    """Every family works under a preference stage: peft adapters use their disabled adapter as the reference,
    module adapters and selective methods a frozen copy (whose adapters are its own, not the policy's); a soft
    prompt's virtual positions are dropped from the logits the trainer scores."""
    pairs = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    cfg = make_cfg(model_for(name, tiny_model_dir, tiny_qwen_dir), pairs, tmp_path / "dpo", name, "stage=dpo", "max_steps=2")
    result, events, _ = train(cfg)
    assert result["status"] == "completed"
    margins = [e["metrics"]["reward_margin"] for e in events if e["type"] == "step" and "metrics" in e]
    assert margins and all(m == m for m in margins)  # real numbers: the reference differs from the policy after a step


@pytest.mark.parametrize("stage", ["orpo", "kto", "rm"])
def test_prompt_tuning_trains_under_the_other_preference_stages(stage, tiny_model_dir, tmp_path):
    rows = PAIRS if stage != "kto" else [{"prompt": p["prompt"], "completion": p["chosen"] if i % 2 else p["rejected"],
                                          "label": bool(i % 2)} for i, p in enumerate(PAIRS)]
    cfg = make_cfg(tiny_model_dir, write_jsonl(tmp_path / "pairs.jsonl", rows), tmp_path / stage, "prompt",
                   f"stage={stage}", "max_steps=2")
    result, events, _ = train(cfg)
    assert result["status"] == "completed"
    losses = [e["loss"] for e in events if e["type"] == "step" and "loss" in e]
    assert losses and all(x == x for x in losses)


def test_llama_cpp_adapter_export_only_for_lora_runs(method_runs):
    """`engine export gguf RUN --adapter` writes LoRA A/B pairs: other methods are sent to the merged export."""
    from exporters.gguf.adapter_export import require_adapter_run

    assert require_adapter_run(Path(method_runs["lora"][0].output_dir)).name == "adapter"
    with pytest.raises(EdgetuneError, match=r"method=ia3 is not.*engine export gguf"):
        require_adapter_run(Path(method_runs["ia3"][0].output_dir))
    with pytest.raises(EdgetuneError, match=r"method=prompt is not.*soft prompt"):
        require_adapter_run(Path(method_runs["prompt"][0].output_dir))


@pytest.mark.parametrize("name", ["ia3", "adalora", "adapter_parallel", "bitfit", "prompt", "prefix"])
def test_method_families_train_under_grpo(name, tiny_model_dir, tiny_qwen_dir, tmp_path):
    """Online RL samples with the method attached (soft prompts included) and its KL reference is the start model."""
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": p["prompt"]} for p in PAIRS])
    cfg = make_cfg(model_for(name, tiny_model_dir, tiny_qwen_dir), prompts, tmp_path / "grpo", name, "stage=grpo",
                   "max_steps=2", "batch_size=4", "rl.num_generations=2", "rl.max_completion_len=6", "rl.rewards=[length]")
    result, events, _ = train(cfg)
    assert result["status"] == "completed"
    kls = [e["metrics"]["kl"] for e in events if e["type"] == "step" and "kl" in e.get("metrics", {})]
    assert kls and all(k == k and k >= -1e-6 for k in kls)
