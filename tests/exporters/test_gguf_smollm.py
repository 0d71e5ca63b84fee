"""SmolLM2-135M end to end from a fine-tuned run folder, through the real CLI, into llama.cpp.

The run is real: `run_training` (what `engine train` runs) takes a few LoRA steps on the sample data
and leaves config.yaml and adapter/; the export merges it on demand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
llama_cpp = pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def smol_run(bundled_model_dir, tmp_path_factory):
    from engine.config import load_config
    from engine.events import EventSink
    from engine.train.run import run_training

    run = tmp_path_factory.mktemp("runs") / "quillon-smol"
    cfg = load_config(None, ["model=smollm2-135m-instruct", f"data={REPO / 'assets/datasets/quillon_facts.jsonl'}",
                             f"output_dir={run}", "method=lora", "lora.r=8", "max_steps=3", "batch_size=4",
                             "max_len=96", "lr=1e-3", "train.backend=hf"])
    assert run_training(cfg, EventSink())[0]["status"] == "completed"
    return run


@pytest.mark.slow
def test_run_folder_to_verified_gguf_and_chat(smol_run):
    out = subprocess.run([sys.executable, "-m", "engine", "export", "gguf", str(smol_run), "--quant", "q8_0,f16",
                          "--adapter", "--events", "-"], capture_output=True, text=True, cwd=REPO, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    events = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    progress = [e for e in events if e["type"] == "export_progress"]
    assert progress and progress[-1]["fraction"] == 1.0 and all(e["target"] == "gguf" for e in progress)
    assert [e["fraction"] for e in progress] == sorted(e["fraction"] for e in progress)

    exports = smol_run / "exports"
    names = sorted(p.name for p in exports.iterdir())
    assert names == [".base-f16.gguf.source.json", "Modelfile", "adapter-f16.gguf", "base-f16.gguf", "model-f16.gguf",
                     "model-q8_0.gguf", "verify.json"], names  # the stamp: which base base-f16.gguf holds
    assert (smol_run / "merged" / "config.json").is_file()  # merged on demand by the export
    report = json.loads((exports / "verify.json").read_text())
    for name in ("model-q8_0.gguf", "model-f16.gguf"):
        r = report["files"][name]
        assert r["passed"] and r["tokens_matching"] == r["tokens_checked"] and r["stop_check"] == "pass", r
    assert report["files"]["model-f16.gguf"]["nmse"] <= 1e-4
    lora = report["files"]["adapter-f16.gguf"]
    # base + adapter in llama.cpp == merged HF model (top-1 counted with numeric near-ties, see verify.py)
    assert lora["nmse"] <= 1e-4 and lora["passed"], lora
    assert report["modelfile"]["template_matches"]
    modelfile = (exports / "Modelfile").read_text()
    assert "FROM ./model-q8_0.gguf" in modelfile and "ollama create quillon-smol" in modelfile

    # Chat the way llama.cpp users do: its own chat handler, with the template stored in the GGUF.
    from engine.runtimes.llama import load_llama

    llm = load_llama(exports / "model-f16.gguf", n_ctx=512, verbose=False)
    reply = llm.create_chat_completion([{"role": "user", "content": "What is the capital of France?"}],
                                       temperature=0.0, max_tokens=64)
    llm.close()
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"].strip()
