"""Cross-check against llama.cpp's own converter (convert_hf_to_gguf.py from the llama-cpp-python sdist).

The sdist on PyPI vendors llama.cpp, its converter and its gguf-py. We fetch it with pip (or use
$EDGETUNE_LLAMA_CPP_SRC, a llama.cpp source folder), run its converter on the same models as
ours, and require the same tensors (names, shapes, types, bit-identical values) and the same
tokenizer metadata. Used only here and in benchmarks/gguf_export.py, as a reference.

Inputs are the tiny models of every family plus SmolLM2-135M. llama.cpp's converter recognises
byte-level BPE tokenizers only by a hash of their ids on a test string, so the tiny llama here
uses SmolLM2's real tokenizer (a hash it knows); for Qwen, whose real tokenizer we do not have
offline, that one lookup is pinned (see _PINNED_PRE).
"""

from __future__ import annotations

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


# llama.cpp's converter names a byte-level BPE pre-tokenizer only from a table of hashes of real hub
# tokenizers. For a tiny model whose tokenizer is in no such table (offline there is no real Qwen
# tokenizer), the reference is run with that one lookup pinned to the id the family's real tokenizer
# has; everything else (tensors, vocab, merges, types, special ids, template) is still its own.
_PINNED_PRE = """
import sys
sys.path.insert(0, sys.argv.pop(1))
import convert_hf_to_gguf as ref
from conversion.base import TextModel
pre = sys.argv.pop(1)
TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
sys.argv[0] = ref.__file__
ref.main()
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    src = find_reference_converter(tmp_path_factory.mktemp("llama-cpp-sdist"))
    script = src / "convert_hf_to_gguf.py"
    assert script.is_file(), f"no convert_hf_to_gguf.py in {src}"

    def convert(model_dir: Path, out: Path, outtype: str, pin_pre: str | None = None) -> Path:
        env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
        head = [str(script)] if pin_pre is None else ["-c", _PINNED_PRE, str(src), pin_pre]
        done = subprocess.run([sys.executable, *head, str(model_dir), "--outtype", outtype, "--outfile", str(out)],
                              capture_output=True, text=True, cwd=str(src), env=env, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        return out

    return convert


def tokenizer_only(model_dir: Path, out: Path) -> Path:
    """The tokenizer files of a model folder (build_tiny_model copies every file it is given)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        if (model_dir / name).is_file():
            shutil.copy(model_dir / name, out / name)
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


# arch -> tokenizer: SmolLM2's real one for the llama family, the fixtures' trained ones otherwise
# (SentencePiece; byte-level BPE with Qwen2's split regex for qwen2/qwen3).
CROSS = {"llama": "smollm2", "llama3-rope": "smollm2", "llama-spm": None, "gemma2": None, "gemma3": None,
         "phi3": None, "qwen2": None, "qwen3": None}
# Families whose real tokenizers none of our offline models share: the reference's hash lookup is pinned
# (see _PINNED_PRE) to the id llama.cpp gives the real one, and ours must choose that id by itself.
PINNED_PRE = {"qwen2": "qwen2", "qwen3": "qwen2"}


@pytest.fixture(scope="module")
def cross_models(tiny_models, bundled_model_dir, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("gguf-cross")
    tok = tokenizer_only(bundled_model_dir, root / "smollm2-tokenizer")
    return {arch: (build_tiny_model(arch, root / arch, tok) if kind == "smollm2" else tiny_models[arch])
            for arch, kind in CROSS.items()}


@pytest.mark.slow
@pytest.mark.parametrize("outtype", ["f32", "f16"])
@pytest.mark.parametrize("arch", list(CROSS))
def test_tiny_models_match_llama_cpp_converter(arch, outtype, cross_models, reference, tmp_path):
    from exporters.gguf.convert import convert_hf_to_gguf

    model = cross_models[arch]
    ours = convert_hf_to_gguf(model, tmp_path / "ours.gguf", outtype).path
    ref = reference(model, tmp_path / "ref.gguf", outtype, PINNED_PRE.get(arch))
    assert compare(ours, ref) == []
    if arch in PINNED_PRE:
        assert read_gguf(ours)[1]["tokenizer.ggml.pre"] == PINNED_PRE[arch]


@pytest.mark.slow
def test_smollm2_f16_matches_llama_cpp_converter(bundled_model_dir, reference, tmp_path):
    """The bundled folder (de-quantised from its GGUF by engine.models) as both converters read it."""
    from exporters.gguf.convert import convert_hf_to_gguf

    ours = convert_hf_to_gguf(bundled_model_dir, tmp_path / "ours-f16.gguf", "f16").path
    ref = reference(bundled_model_dir, tmp_path / "ref-f16.gguf", "f16")
    assert compare(ours, ref) == []
    assert read_gguf(ours)[1]["tokenizer.ggml.pre"] == "smollm"
