"""Cross-check against llama.cpp's own converter (convert_hf_to_gguf.py from the llama-cpp-python sdist).

The sdist on PyPI vendors llama.cpp, its converter and its gguf-py. We fetch it with pip (or use
$EDGETUNE_LLAMA_CPP_SRC, a llama.cpp source folder), run its converter on the same models as
ours, and require the same tensors (names, shapes, types, bit-identical values) and the same
tokenizer metadata. Used only here and in benchmarks/gguf_export.py, as a reference.

Inputs are the tiny models of every family plus SmolLM2-135M. llama.cpp's converter recognises
byte-level BPE tokenizers only by a hash of their ids on a test string, so the BPE tiny models
here use SmolLM2's real tokenizer (a hash it knows) rather than one trained on the fly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.exporters.test_gguf_fixtures import build_tiny_model, tiny_models  # noqa: F401

llama_cpp = pytest.importorskip("llama_cpp")

# Keys our files may add that llama.cpp's converter leaves out, and why that is fine:
ALLOWED_EXTRA = {
    "tokenizer.ggml.eot_token_id": "the end-of-turn token, read off the chat template (llama.cpp guesses it by name)",
    "tokenizer.ggml.add_eos_token": "written explicitly (false) from the tokenizer's behaviour",
    "tokenizer.ggml.add_bos_token": "written explicitly from the tokenizer's behaviour",
    "tokenizer.ggml.add_space_prefix": "written explicitly from the SentencePiece model (llama.cpp's default is the same)",
    "tokenizer.chat_template": "a base model without a template gets the fallback template training used",
}
TOKENIZER_KEYS = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                  "tokenizer.ggml.merges", "tokenizer.ggml.scores", "tokenizer.ggml.bos_token_id",
                  "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
                  "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix", "tokenizer.chat_template")


def find_reference_converter(work: Path) -> Path:
    """The folder holding llama.cpp's convert_hf_to_gguf.py: $EDGETUNE_LLAMA_CPP_SRC, or the sdist via pip."""
    if os.environ.get("EDGETUNE_LLAMA_CPP_SRC"):
        return Path(os.environ["EDGETUNE_LLAMA_CPP_SRC"])
    version = llama_cpp.__version__
    cmd = [sys.executable, "-m", "pip", "download", f"llama-cpp-python=={version}", "--no-deps",
           "--no-binary", ":all:", "-d", str(work), "-q"]
    got = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    archives = list(work.glob("llama_cpp_python-*.tar.gz"))
    if got.returncode != 0 or not archives:
        pytest.skip(f"cannot fetch the llama-cpp-python {version} sdist with pip (offline?): {got.stderr[-300:]}")
    with tarfile.open(archives[0]) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name and
                   ("/gguf-py/" in m.name or "/conversion/" in m.name or m.name.endswith("convert_hf_to_gguf.py"))]
        tar.extractall(work, members=members, filter="data")
    return next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    src = find_reference_converter(tmp_path_factory.mktemp("llama-cpp-sdist"))
    script = src / "convert_hf_to_gguf.py"
    assert script.is_file(), f"no convert_hf_to_gguf.py in {src}"

    def convert(model_dir: Path, out: Path, outtype: str) -> Path:
        env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
        done = subprocess.run([sys.executable, str(script), str(model_dir), "--outtype", outtype, "--outfile", str(out)],
                              capture_output=True, text=True, cwd=str(src), env=env, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        return out

    return convert


def canonical_smollm2(bundled: Path, out: Path, with_weights: bool) -> Path:
    """SmolLM2 as its hub folder has it: a plain byte-level tokenizer.json (digits split, GPT-2 rules).

    The bundled model comes from a GGUF through transformers, whose tokenizer.json carries import
    artefacts (byte_fallback, a SentencePiece-style decoder) and a stale quantization_config that
    llama.cpp's converter rejects; ours reads through both (see the report), the reference cannot.
    """
    out.mkdir(parents=True, exist_ok=True)
    tj = json.loads((bundled / "tokenizer.json").read_text(encoding="utf-8"))
    tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    tj["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    tj["model"]["byte_fallback"] = False
    (out / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    for name in ("tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        if (bundled / name).is_file():
            shutil.copy(bundled / name, out / name)
    if with_weights:
        cfg = json.loads((bundled / "config.json").read_text())
        cfg.pop("quantization_config", None)
        (out / "config.json").write_text(json.dumps(cfg, indent=2))
        os.symlink(bundled / "model.safetensors", out / "model.safetensors")
    return out


def read_gguf(path: Path):
    import gguf

    reader = gguf.GGUFReader(str(path))
    fields = {}
    for key, field in reader.fields.items():
        try:
            fields[key] = field.contents()
        except Exception:
            fields[key] = None
    return reader, fields


def compare(ours: Path, ref: Path) -> list[str]:
    """Differences in tensors and tokenizer metadata (empty list = same)."""
    import numpy as np

    r_ours, f_ours = read_gguf(ours)
    r_ref, f_ref = read_gguf(ref)
    diffs = []
    t_ours = {t.name: t for t in r_ours.tensors}
    t_ref = {t.name: t for t in r_ref.tensors}
    if set(t_ours) != set(t_ref):
        diffs.append(f"tensor names: only ours {sorted(set(t_ours) - set(t_ref))}, only llama.cpp "
                     f"{sorted(set(t_ref) - set(t_ours))}")
    for name in sorted(set(t_ours) & set(t_ref)):
        a, b = t_ours[name], t_ref[name]
        if list(a.shape) != list(b.shape) or a.tensor_type != b.tensor_type:
            diffs.append(f"{name}: ours {list(a.shape)} {a.tensor_type.name}, llama.cpp {list(b.shape)} {b.tensor_type.name}")
        elif not np.array_equal(np.asarray(a.data).view(np.uint8), np.asarray(b.data).view(np.uint8)):
            diffs.append(f"{name}: values differ")
    for key in TOKENIZER_KEYS:
        if key in f_ref and f_ours.get(key) != f_ref[key]:
            diffs.append(f"{key}: ours {str(f_ours.get(key))[:80]}, llama.cpp {str(f_ref[key])[:80]}")
    for key in f_ours:
        if key.startswith("tokenizer.") and key not in f_ref and key not in ALLOWED_EXTRA:
            diffs.append(f"{key}: only in ours")
    return diffs


# arch -> tokenizer: SmolLM2's real one for the byte-level BPE family, trained SentencePiece otherwise.
# Qwen2/Qwen3 are not here: offline we have no real Qwen tokenizer, and transformers 5 re-reads any
# other tokenizer on a Qwen config as a Qwen2Tokenizer (Qwen's regex), whose id hash llama.cpp's
# table does not know, so its converter stops before writing. Their tensors are checked against HF
# logits in test_gguf_archs.py instead.
CROSS = {"llama": "smollm2", "llama-spm": None, "gemma2": None, "gemma3": None, "phi3": None}


@pytest.fixture(scope="module")
def cross_models(tiny_models, bundled_model_dir, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("gguf-cross")
    tok = canonical_smollm2(bundled_model_dir, root / "smollm2-tokenizer", with_weights=False)
    return {arch: (build_tiny_model(arch, root / arch, tok) if kind == "smollm2" else tiny_models[arch])
            for arch, kind in CROSS.items()}


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(CROSS))
def test_tiny_models_match_llama_cpp_converter(arch, cross_models, reference, tmp_path):
    from exporters.gguf.convert import convert_hf_to_gguf

    model = cross_models[arch]
    ours = convert_hf_to_gguf(model, tmp_path / "ours.gguf", "f32").path
    ref = reference(model, tmp_path / "ref.gguf", "f32")
    assert compare(ours, ref) == []


@pytest.mark.slow
def test_smollm2_f16_matches_llama_cpp_converter(bundled_model_dir, reference, tmp_path):
    from exporters.gguf.convert import convert_hf_to_gguf

    model = canonical_smollm2(bundled_model_dir, tmp_path / "smollm2", with_weights=True)
    ours = convert_hf_to_gguf(model, tmp_path / "ours-f16.gguf", "f16").path
    ref = reference(model, tmp_path / "ref-f16.gguf", "f16")
    assert compare(ours, ref) == []
    # and on the bundled folder itself, which llama.cpp's converter refuses, ours uses the same tensors
    plain = convert_hf_to_gguf(bundled_model_dir, tmp_path / "bundled-f16.gguf", "f16").path
    assert [d for d in compare(plain, ref) if not d.startswith("tokenizer.ggml.pre")] == []
