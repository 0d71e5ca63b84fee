"""Tiny models of every GGUF architecture, with tokenizers trained on the fly (no downloads).

Imported by the other test_gguf_* modules; holds a couple of self-checks so that a
broken fixture fails here, by name, rather than as a confusing converter failure.

Tokenizers:
  byte-level BPE  trained with `tokenizers` in three pre-tokenizer flavours (SmolLM2's
                  digits + GPT-2 rules, Llama 3's regex, Qwen2's regex), ChatML template;
  SentencePiece   trained with `sentencepiece` (BPE, byte fallback), with a dummy prefix
                  (Llama 2 / Phi-3 style) or without (Gemma style), saved as tokenizer.model
                  plus the tokenizer.json transformers writes.
Weights are random but not small (std 0.15) so logits have clear winners and top-1
agreement is meaningful; norm weights are perturbed so a missing Gemma '+1' shows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! How are you today? I'm fine, thanks.",
    "Numbers like 1, 12, 123, 2024 and 3.14159 appear in text.",
    "def add(a, b):\n    return a + b\n",
    "caf\u00e9 na\u00efve Stra\u00dfe \u65e5\u672c\u8a9e and emoji \U0001f600",
    "edgetune exports GGUF files for llama.cpp and Ollama.",
    "Lighthouses guide ships through the night across the calm sea.",
    "What is the capital of France? The capital of France is Paris.",
    "  indented line\twith tab\n\nnew paragraph   with spaces",
] * 20

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
GEMMA_TEMPLATE = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
                  "supported') }}{% endif %}{% for message in messages %}{% if message['role'] == 'assistant' %}"
                  "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' "
                  "+ role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if "
                  "add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")
PHI3_TEMPLATE = ("{% for message in messages %}{{ '<|' + message['role'] + '|>' + '\n' + message['content'] + "
                 "'<|end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}"
                 "{{ eos_token }}{% endif %}")


def train_bpe(out: Path, flavour: str = "smollm", vocab_size: int = 400) -> Path:
    """A byte-level BPE tokenizer folder with ChatML special tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from exporters.gguf.pretokenizer import LLAMA3_REGEX, QWEN2_REGEX

    tok = Tokenizer(models.BPE())
    if flavour == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:
        regex = {"llama3": LLAMA3_REGEX, "qwen2": QWEN2_REGEX}[flavour]
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|im_end|>")
    fast.chat_template = CHATML
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return out


def train_spm(out: Path, dummy_prefix: bool, style: str) -> Path:
    """A SentencePiece tokenizer folder (tokenizer.model + what transformers saves) for 'llama', 'gemma' or 'phi3'."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    out.mkdir(parents=True, exist_ok=True)
    corpus = out / "corpus.txt"
    corpus.write_text("\n".join(CORPUS), encoding="utf-8")
    markers = {"gemma": ["<start_of_turn>", "<end_of_turn>"],
               "phi3": ["<|user|>", "<|assistant|>", "<|system|>", "<|end|>"],
               "llama": []}[style]
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(out / "sp"), vocab_size=420, model_type="bpe", byte_fallback=True,
        character_coverage=1.0, split_digits=True, allow_whitespace_only_pieces=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=dummy_prefix,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, user_defined_symbols=markers, minloglevel=2)
    corpus.unlink()
    (out / "sp.vocab").unlink()
    shutil.move(out / "sp.model", out / "tokenizer.model")
    cls = {"gemma": "GemmaTokenizer", "phi3": "LlamaTokenizer", "llama": "LlamaTokenizer"}[style]
    cfg = {"tokenizer_class": cls, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
           "add_bos_token": True, "add_eos_token": False}
    if style == "gemma":
        cfg.update(bos_token="<s>", eos_token="</s>", chat_template=GEMMA_TEMPLATE)
    elif style == "phi3":
        cfg.update(chat_template=PHI3_TEMPLATE)
    (out / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(str(out))
    # chat markers are special tokens, as in the real models; Phi-3 also appends <|endoftext|>
    # after the SentencePiece vocabulary (llama.cpp looks it up by name for Phi-3 models)
    extra = ["<|endoftext|>"] if style == "phi3" else []
    if markers or extra:
        tok.add_special_tokens({"additional_special_tokens": markers + extra})
    if style != "llama":
        tok.chat_template = cfg["chat_template"]
    model_file = (out / "tokenizer.model").read_bytes()
    tok.save_pretrained(str(out))
    (out / "tokenizer.model").write_bytes(model_file)  # transformers 5 does not write it back
    if dummy_prefix:
        # The hub's Llama 2 / Phi-3 tokenizer.json prepend '▁' in a normalizer, i.e. to every piece of text
        # between special tokens (what SentencePiece and llama.cpp do); transformers 5 would write a
        # Metaspace that only prefixes the very first piece. Keep the hub's form.
        path = out / "tokenizer.json"
        tj = json.loads(path.read_text(encoding="utf-8"))
        tj["pre_tokenizer"] = None
        tj["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
        if style == "phi3":  # Phi-3's chat markers and </s> swallow the whitespace after them (rstrip)
            for t in tj["added_tokens"]:
                t["rstrip"] = t["content"] in markers + ["</s>"]
        path.write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    # Hub repos saved by transformers 4 list the added tokens in tokenizer_config.json too
    # (llama.cpp's converter reads them from there); transformers 5 no longer writes them.
    tj = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    cfg_path = out / "tokenizer_config.json"
    saved = json.loads(cfg_path.read_text(encoding="utf-8"))
    saved["added_tokens_decoder"] = {str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                                                      "single_word", "special")}
                                     for t in tj["added_tokens"]}
    cfg_path.write_text(json.dumps(saved), encoding="utf-8")
    return out


# architecture key -> (HF config class, model class, tokenizer kind, extra config)
TINY = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", "bpe-smollm", {"tie_word_embeddings": True}),
    "llama3-rope": ("LlamaConfig", "LlamaForCausalLM", "bpe-llama3",
                    {"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                         "original_max_position_embeddings": 64}}),
    "llama-spm": ("LlamaConfig", "LlamaForCausalLM", "spm-llama", {"attention_bias": True}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", "bpe-qwen2", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", "bpe-qwen2", {"head_dim": 16, "tie_word_embeddings": True}),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", "spm-gemma", {"head_dim": 16, "query_pre_attn_scalar": 16}),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", "spm-gemma", {"head_dim": 16, "query_pre_attn_scalar": 16}),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", "spm-phi3", {"original_max_position_embeddings": 512}),
}


def make_tokenizer(kind: str, out: Path) -> Path:
    family, flavour = kind.split("-", 1)
    if family == "bpe":
        return train_bpe(out, flavour)
    return train_spm(out, dummy_prefix=flavour != "gemma", style=flavour)


def build_tiny_model(arch: str, out: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """Save a tiny random model of `arch` with the tokenizer in `tokenizer_dir` into `out`."""
    import torch
    import transformers
    from transformers import AutoTokenizer

    cfg_cls, model_cls, _, extra = TINY[arch]
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    kwargs = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    kwargs.update(extra)
    config = getattr(transformers, cfg_cls)(**kwargs)
    config.architectures = [model_cls]
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(config).eval()
    gemma = arch.startswith("gemma")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_((0.0 if gemma else 1.0) + 0.2 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.15)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    for f in tokenizer_dir.iterdir():
        if f.is_file():
            shutil.copy(f, out / f.name)
    return out


_BUILT: dict = {}  # the fixture is imported into several modules; build the models once per process


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """arch -> folder of a tiny random model of that architecture (built once per session)."""
    if _BUILT:
        return _BUILT
    root = tmp_path_factory.mktemp("gguf-tiny")
    toks, out = {}, {}
    for arch, (_, _, kind, _) in TINY.items():
        if kind not in toks:
            toks[kind] = make_tokenizer(kind, root / f"tok-{kind}")
        out[arch] = build_tiny_model(arch, root / arch, toks[kind])
    _BUILT.update(out)
    return out


def test_trained_tokenizers_behave_like_their_families(tiny_models):
    from transformers import AutoTokenizer

    spm = AutoTokenizer.from_pretrained(str(tiny_models["llama-spm"]))
    assert spm("Hello")["input_ids"][0] == spm.bos_token_id  # Llama 2 style adds BOS
    gemma = AutoTokenizer.from_pretrained(str(tiny_models["gemma2"]))
    assert gemma.convert_tokens_to_ids("<end_of_turn>") != gemma.unk_token_id
    bpe = AutoTokenizer.from_pretrained(str(tiny_models["llama"]))
    assert bpe.eos_token == "<|im_end|>" and "<|im_start|>assistant" in bpe.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
