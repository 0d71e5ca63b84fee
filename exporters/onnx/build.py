"""Run ONNX Runtime GenAI's model builder on an HF folder and tidy what it writes.

The builder (`python -m onnxruntime_genai.models.builder`, through exporters.onnx.builder_child,
which fixes what it cannot read in transformers 5 configs) runs in a child process: it
prints a great deal (and tqdm bars) that would corrupt `--events -` on stdout, it holds
the whole fp32 model in memory while it builds, and a child is easy to stop. Its output
goes to build.log; its "Reading layer N" lines drive our progress events.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional

from engine.errors import EdgetuneError
from engine.formats.onnx_targets import PRECISIONS, Target

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".index.json")
LAYER_LINE = re.compile(r"Reading layer (\d+)")


def stage_model(model_dir: Path, stage: Path) -> Path:
    """A folder the builder can read: weights linked, config.json cleaned, tokenizer re-saved.

    - A model that edgetune de-quantised from a GGUF may still carry the GGUF
      `quantization_config` marker; its weights are plain floats, but the builder would look
      for a GGUF quantised-weight loader and stop, so the marker is dropped.
    - The tokenizer is saved through the engine's loader so the export carries the chat
      template training used (the built-in "plain" one for a model without any) and a pad token.
    """
    from engine.data.chat_templates import EXPORT_FALLBACK
    from engine.models.loading import tokenizer_from_dir

    model_dir, stage = Path(model_dir), Path(stage)
    stage.mkdir(parents=True, exist_ok=True)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    quant = config.get("quantization_config") or {}
    method = quant.get("quant_method")
    if method == "gguf":
        config.pop("quantization_config")
    elif method == "bitsandbytes":
        raise EdgetuneError(f"{model_dir} holds bitsandbytes 4/8-bit weights, which the ONNX builder cannot read. "
                            f"Export the run folder (it is merged into 16-bit first) or run `engine merge` and export merged/.")
    (stage / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    for f in model_dir.iterdir():
        if f.is_file() and (f.name.endswith(WEIGHT_SUFFIXES) or f.name == "generation_config.json"):
            try:
                (stage / f.name).symlink_to(f.resolve())
            except OSError:  # file systems without symlinks
                shutil.copy2(f, stage / f.name)
    tokenizer_from_dir(model_dir, default_template=EXPORT_FALLBACK).save_pretrained(str(stage))
    return stage


def builder_options(precision: str, target: Target, params: int) -> dict[str, str]:
    """The builder's --extra_options for this precision, target and model size."""
    # hf_token=false: the builder must never reach a hub
    recipe = {k: v for k, v in PRECISIONS[precision].options_for(params).items() if k not in target.drop_options}
    return {"hf_token": "false", **recipe, **target.builder_options}


def run_builder(stage: Path, out: Path, precision: str, target: Target, options: dict[str, str], log_path: Path,
                on_layer: Optional[Callable[[int], None]] = None) -> None:
    """Build the GenAI model of `stage` into `out`; the builder's output goes to `log_path`."""
    cache = out.parent / (out.name + ".builder-cache")
    # the builder itself, behind our config fixes (builder_child.py says which)
    cmd = [sys.executable, "-m", "exporters.onnx.builder_child", "-i", str(stage), "-o", str(out),
           "-p", precision, "-e", target.provider, "-c", str(cache),
           "--extra_options", *[f"{k}={v}" for k, v in options.items()]]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
           # the child imports exporters.onnx.builder_child from this checkout, installed or not
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    tail: list[str] = []
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env)
        try:
            for line in proc.stdout:
                log.write(line)
                if line.strip() and "it/s]" not in line:
                    tail = (tail + [line.strip()])[-20:]
                m = LAYER_LINE.search(line)
                if m and on_layer:
                    on_layer(int(m.group(1)))
            code = proc.wait()
        except BaseException:  # Ctrl-C or a failure of ours: do not leave the builder running
            proc.kill()
            proc.wait()
            raise
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    if code != 0:
        reason = "it was killed (out of memory?)" if code < 0 else _error_line(tail)
        raise EdgetuneError(f"ONNX Runtime GenAI's model builder failed (exit {code}): {reason}. Full log: {log_path}")


def _error_line(tail: list[str]) -> str:
    """The exception line of a Python traceback, else the last line printed."""
    for line in reversed(tail):
        if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", line):
            return line
    return tail[-1] if tail else "no output"


def tune_genai_config(out: Path, target: Target) -> dict:
    """Apply the target's runtime settings to genai_config.json (the mobile KV-cache window).

    The window never goes below a sliding-window graph's own window (see runtime.min_kv_capacity):
    onnxruntime would refuse to run it at all.
    """
    from engine.runtimes.onnx_genai import min_kv_capacity

    path = out / "genai_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    search = config.setdefault("search", {})
    if target.max_length:
        search["max_length"] = min(int(search.get("max_length") or target.max_length), target.max_length)
    floor = min_kv_capacity(config)
    if floor and int(search.get("max_length") or 0) < floor:
        search["max_length"] = floor
        # a window wider than the whole context (tiny test models): onnxruntime-genai also wants
        # max_length <= context_length, and attention over min(window, length) is the same either way
        config["model"]["context_length"] = max(int(config["model"].get("context_length") or 0), floor)
    path.write_text(json.dumps(config, indent=4), encoding="utf-8")
    return config
