"""The planner's arithmetic: model shapes, catalogs, the estimate's parts and published GPU anchors."""

import json

import pytest

from engine.config import load_config
from engine.errors import EdgetuneError, ModelSourceError
from engine.plan import build_plan, parse_target
from engine.plan.estimate import NF4_BYTES, NF4_DQ_BYTES, estimate, total_gb
from engine.plan.gpu_catalog import Target
from engine.plan.model_catalog import CATALOG, lookup, normalise
from engine.plan.model_lookup import find_shape
from engine.plan.run_spec import run_spec
from engine.plan.shape import shape_from_config

GPU_24 = Target("cuda", "test GPU", 24.0)


def plan(target=GPU_24, **settings):
    return build_plan(load_config(base=settings), target)


# --- shapes -------------------------------------------------------------------------------

@pytest.mark.parametrize("name,billions", [
    ("smollm2-135m", 0.1345), ("smollm2-360m", 0.362), ("smollm2-1.7b", 1.711),
    ("llama-3.2-1b", 1.236), ("llama-3.2-3b", 3.213), ("llama-3.1-8b", 8.030),
    ("mistral-7b-v0.3", 7.248), ("qwen2.5-0.5b", 0.494), ("qwen2.5-7b", 7.616), ("qwen2.5-14b", 14.77),
    ("qwen3-8b", 8.19), ("gemma-2-2b", 2.614), ("gemma-2-9b", 9.24), ("phi-3-mini", 3.821), ("phi-4", 14.66),
])
def test_catalog_parameter_counts_match_the_published_sizes(name, billions):
    assert lookup(name).total_params / 1e9 == pytest.approx(billions, rel=0.02)


@pytest.mark.parametrize("spec,key", [
    ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
    ("unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit", "llama-3.1-8b"),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b"),
    ("microsoft/Phi-3-mini-4k-instruct", "phi-3-mini"),
    ("google/gemma-2-2b-it", "gemma-2-2b"),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2-135m"),
    ("mistralai/Mistral-7B-Instruct-v0.3", "mistral-7b-v0.3"),
])
def test_hub_ids_find_their_catalog_entry(spec, key):
    assert normalise(spec) == key and key in CATALOG


def test_phi3_fuses_qkv_and_gate_up():
    shape = lookup("phi-3-mini")
    assert [m[0] for m in shape.linear_modules] == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    assert [m[0] for m in shape.modules("attention")] == ["qkv_proj", "o_proj"]


def test_local_config_json_is_read_without_torch(tmp_path):
    config = {"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
              "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True,
              "torch_dtype": "bfloat16"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    shape = find_shape(str(tmp_path))
    assert shape.total_params == lookup("qwen2.5-0.5b").total_params
    assert shape.qkv_bias and shape.checkpoint_bytes == 2 and "config.json" in shape.source


def test_bundled_model_and_its_gguf_have_the_catalog_shape():
    from engine.models.bundled import BUNDLED, bundled_gguf_path

    for name in BUNDLED:
        assert lookup(name) is not None, f"bundled model {name} needs a catalog entry"
    from_gguf = find_shape(str(bundled_gguf_path("smollm2-135m-instruct")))
    catalog = lookup("smollm2-135m")
    assert (from_gguf.hidden_size, from_gguf.num_layers, from_gguf.vocab_size, from_gguf.num_kv_heads,
            from_gguf.tied_embeddings) == (576, 30, 49152, 3, True)
    assert from_gguf.total_params == catalog.total_params
    assert find_shape("smollm2-135m-instruct").total_params == catalog.total_params


def test_unknown_model_and_mixture_of_experts_fail_clearly(tmp_path):
    with pytest.raises(ModelSourceError, match="Closest catalog entries: llama-3.1-8b"):
        find_shape("meta-llama/Llama-3.1-8X-Instruct")
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 10,
                                                      "num_local_experts": 8}))
    with pytest.raises(ModelSourceError, match="mixture-of-experts"):
        find_shape(str(tmp_path))


# --- GPU catalog --------------------------------------------------------------------------

@pytest.mark.parametrize("text,device,gb", [
    ("RTX 4060", "cuda", 8), ("NVIDIA GeForce RTX 4090", "cuda", 24), ("rtx 4060 ti 16gb", "cuda", 16),
    ("RTX 3060", "cuda", 12), ("RX 7900 XTX", "cuda", 24), ("RTX 5090", "cuda", 32), ("GTX 1080 Ti", "cuda", 11),
    ("CPU 32GB", "cpu", 32), ("Apple M2 16GB", "mps", 10.7),
])
def test_gpu_names_resolve_to_their_memory(text, device, gb):
    target = parse_target(text)
    assert (target.device, target.memory_gb) == (device, pytest.approx(gb))


def test_unknown_gpu_suggests_close_names():
    with pytest.raises(EdgetuneError, match="Did you mean NVIDIA GeForce RTX 4070"):
        parse_target("RTX 4071")


# --- the estimate -------------------------------------------------------------------------

def test_nf4_bytes_per_param_follow_the_qlora_paper():
    assert NF4_BYTES == pytest.approx(0.5625)
    assert NF4_DQ_BYTES == pytest.approx(0.5159, abs=1e-4)
    with_dq = plan(model="llama-3.1-8b", method="qlora").breakdown["base weights"]
    without = plan(model="llama-3.1-8b", method="qlora", quant={"double_quant": False}).breakdown["base weights"]
    linear = lookup("llama-3.1-8b").linear_params
    assert without - with_dq == pytest.approx(linear * (NF4_BYTES - NF4_DQ_BYTES) / 2**30, rel=0.01)


def test_breakdown_sums_to_total_and_ends_with_framework_overhead():
    p = plan(model="llama-3.2-3b", method="qlora", batch_size=2, max_len=1024)
    assert sum(p.breakdown.values()) == pytest.approx(p.total_gb, abs=0.01)
    assert list(p.breakdown)[-1] == "framework overhead"


def test_optimizer_state_per_type():
    torch_state = plan(model="llama-3.2-1b", method="lora", optim={"optimizer": "adamw_torch"}).breakdown
    bnb_state = plan(model="llama-3.2-1b", method="lora", optim={"optimizer": "adamw_8bit"}).breakdown
    assert torch_state["optimizer state"] == pytest.approx(4 * bnb_state["optimizer state"])
    full = plan(model="smollm2-135m", method="full", quant={"load_in": "none"}).breakdown
    assert full["optimizer state"] == pytest.approx(lookup("smollm2-135m").total_params * 8 / 2**30, rel=0.01)


def test_activations_grow_with_tokens_and_shrink_with_checkpointing():
    cfg = load_config(base={"model": "qwen2.5-1.5b", "method": "qlora"})
    shape = find_shape("qwen2.5-1.5b")

    def acts(batch, ckpt, max_len=1024):
        cfg.sequence.max_len = max_len
        return {p.name: p.gb for p in estimate(run_spec(cfg, "cuda", shape, batch, ckpt))}["activations"]

    assert acts(2, False) == pytest.approx(2 * acts(1, False), rel=0.01)
    assert acts(1, False, 2048) == pytest.approx(acts(2, False, 1024), rel=0.01)
    assert acts(4, True) < acts(4, False) / 5


def test_logits_buffer_is_vocab_times_tokens_on_cpu():
    p = plan(Target("cpu", "test", 64), model="smollm2-135m", method="lora", batch_size=2, max_len=512)
    assert p.breakdown["logits and loss"] == pytest.approx(12 * 1024 * 49152 / 2**30, abs=1e-3)


# --- published anchors (GB as the sources use them; +/-25%) -------------------------------

def test_llama_3_1_8b_qlora_is_about_unsloths_6_gb():
    # Unsloth's stated minimum for Llama 3.1 8B QLoRA: ~6 GB (r=16, batch 1, 2048 tokens, checkpointing).
    p = plan(model="meta-llama/Llama-3.1-8B-Instruct", method="qlora", batch_size=1, max_len=2048,
             lora={"r": 16, "dropout": 0.0}, optim={"optimizer": "adamw_8bit"},
             train={"gradient_checkpointing": True, "backend": "unsloth"})
    assert p.backend == "unsloth"
    assert 6 * 0.75 <= p.total_gb <= 6 * 1.25, p.breakdown


@pytest.mark.parametrize("method,published", [("qlora", 6), ("lora", 16)])
def test_7b_class_models_match_llama_factory_table(method, published):
    # LLaMA-Factory's hardware table, 7B: QLoRA 4-bit ~6 GB, LoRA 16-bit ~16 GB (its defaults: HF + peft,
    # LoRA dropout 0, checkpointing on, batch 1).
    for model in ("mistralai/Mistral-7B-v0.3", "meta-llama/Llama-2-7b-hf"):
        p = plan(model=model, method=method, batch_size=1, max_len=2048, lora={"r": 16, "dropout": 0.0},
                 train={"gradient_checkpointing": True, "backend": "hf"})
        assert published * 0.75 <= p.total_gb <= published * 1.25, (model, p.breakdown)
