import pytest

from engine.errors import ModelSourceError
from engine.models import resolve_model


def test_local_folder(tiny_model_dir):
    r = resolve_model(str(tiny_model_dir))
    assert r.source == "folder" and (r.path / "config.json").is_file()


def test_folder_without_config_is_explained(tmp_path):
    with pytest.raises(ModelSourceError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_unknown_name_lists_options():
    with pytest.raises(ModelSourceError, match="smollm2-135m-instruct"):
        resolve_model("./not-here")


def test_hub_id_offline_gives_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelSourceError, match=r"'someone/not-cached-model'.*model=\./not-cached-model"):
        resolve_model("someone/not-cached-model")


def test_missing_gguf_file():
    with pytest.raises(ModelSourceError, match="GGUF file 'missing.gguf' not found"):
        resolve_model("missing.gguf")


def test_corrupt_gguf_is_explained(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(ModelSourceError, match="bad.gguf' is not a GGUF file"):
        resolve_model(str(bad))
    assert not list((tmp_path).glob("*.partial"))


def test_bundled_model_is_materialised_once(bundled_model_dir):
    import json

    cfg = json.loads((bundled_model_dir / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["num_hidden_layers"] == 30
    assert list(bundled_model_dir.glob("*.safetensors"))
    again = resolve_model("smollm2-135m-instruct")
    assert again.path == bundled_model_dir and again.source == "bundled"


def test_imported_tokenizer_matches_llama_cpp_on_the_source_gguf(bundled_model_dir, smol_tokenizer):
    """The GGUF says `tokenizer.ggml.pre = smollm` (digits one by one); the import must keep that split."""
    import json

    llama_cpp = pytest.importorskip("llama_cpp")
    from engine.models.bundled import bundled_gguf_path

    text = "In 1314 the Quillon Q7 lasted 40 hours.\n\n  I've   said: 3.14159 -- naïve 你好 🙂"
    llm = llama_cpp.Llama(str(bundled_gguf_path("smollm2-135m-instruct")), vocab_only=True, verbose=False)
    assert smol_tokenizer(text, add_special_tokens=False).input_ids == llm.tokenize(text.encode(), add_bos=False)
    tj = json.loads((bundled_model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    assert tj["decoder"]["type"] == "ByteLevel" and tj["model"]["byte_fallback"] is False
    assert smol_tokenizer.decode(smol_tokenizer(text).input_ids) == text


@pytest.mark.slow
def test_bundled_model_answers_sensibly(bundled_model_dir, smol_tokenizer):
    """De-quantised weights must still be a working chat model."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(bundled_model_dir))
    ids = smol_tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                             add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in smol_tokenizer.decode(out[0][ids["input_ids"].shape[1]:])
