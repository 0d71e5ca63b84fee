"""GGUF export speed and memory: edgetune's converter vs llama.cpp's convert_hf_to_gguf.py.

    python benchmarks/gguf_export.py                      # f16 and q8_0, 3 runs each
    python benchmarks/gguf_export.py --runs 5 --types f16
    EDGETUNE_LLAMA_CPP_SRC=/path/to/llama.cpp python benchmarks/gguf_export.py

Model: the bundled SmolLM2-135M-Instruct (the folder edgetune de-quantises it into, which
llama.cpp's converter reads as it reads the hub's). Baseline: llama.cpp's
converter from the llama-cpp-python sdist of the installed version (fetched with pip, or
$EDGETUNE_LLAMA_CPP_SRC), run with this Python.

Both run as whole commands in their own process, from start to a finished file, exactly
as a user types them: `engine export gguf DIR --quant T --no-verify --no-modelfile` and
`python convert_hf_to_gguf.py DIR --outtype T`. Wall time and peak RSS (of the process
and everything it started, from wait4) are the medians of the runs. Printed: ratios
edgetune / llama.cpp, and peak RSS over the f16 file size (target <= 1.5: tensors are
streamed, the model is never held twice). Both outputs are also compared tensor by tensor.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def reference_converter(work: Path) -> Path:
    """llama.cpp's convert_hf_to_gguf.py from the llama-cpp-python sdist (or $EDGETUNE_LLAMA_CPP_SRC)."""
    if os.environ.get("EDGETUNE_LLAMA_CPP_SRC"):
        return Path(os.environ["EDGETUNE_LLAMA_CPP_SRC"]) / "convert_hf_to_gguf.py"
    import llama_cpp

    subprocess.run([sys.executable, "-m", "pip", "download", f"llama-cpp-python=={llama_cpp.__version__}", "--no-deps",
                    "--no-binary", ":all:", "-d", str(work), "-q"], check=True, timeout=900)
    archive = next(work.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name and
                   ("/gguf-py/" in m.name or "/conversion/" in m.name or m.name.endswith("convert_hf_to_gguf.py"))]
        tar.extractall(work, members=members, filter="data")
    return next(work.glob("llama_cpp_python-*/vendor/llama.cpp/convert_hf_to_gguf.py"))


# Linux carries a process's peak-RSS mark across fork and exec, so a child started by a big parent
# "peaks" at the parent's size. Each command is therefore started by this tiny runner process.
_RUNNER = """
import json, os, subprocess, sys, time
cmd, cwd = json.loads(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = proc.stderr.read().decode(errors="replace")
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"wall": time.perf_counter() - start, "rss_kb": usage.ru_maxrss, "status": status, "err": err[-2000:]}))
"""


def measure(cmd: list, cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB of the command and the processes it starts) of one command."""
    done = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(cmd), str(cwd)], capture_output=True, text=True)
    res = json.loads(done.stdout)
    if res["status"] != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{res['err']}")
    return res["wall"], res["rss_kb"] / 1024  # Linux reports KB


def same_tensors(a: Path, b: Path) -> bool:
    import numpy as np
    from gguf import GGUFReader

    ta = {t.name: t for t in GGUFReader(str(a)).tensors}
    tb = {t.name: t for t in GGUFReader(str(b)).tensors}
    return set(ta) == set(tb) and all(
        ta[n].tensor_type == tb[n].tensor_type and np.array_equal(np.asarray(ta[n].data).view(np.uint8),
                                                                np.asarray(tb[n].data).view(np.uint8)) for n in ta)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--types", default="f16,q8_0")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gguf-bench-"))
    try:
        script = reference_converter(work / "sdist")
        from engine.models import resolve_model

        model = resolve_model("smollm2-135m-instruct").path
        out = work / "out"
        out.mkdir()
        rows = []
        f16_size = None
        for qtype in args.types.split(","):
            ours_file, ref_file = out / f"model-{qtype}.gguf", out / f"ref-{qtype}.gguf"
            ours_cmd = [sys.executable, "-m", "engine", "export", "gguf", str(model), "--quant", qtype, "--no-verify",
                        "--no-modelfile", "--out", str(out)]
            ref_cmd = [sys.executable, str(script), str(model), "--outtype", qtype, "--outfile", str(ref_file)]
            ours, ref = [], []
            for i in range(args.runs):  # interleaved, so machine load hits both alike
                ours.append(measure(ours_cmd, REPO))
                ref.append(measure(ref_cmd, script.parent))
                print(f"  {qtype} run {i + 1}: edgetune {ours[-1][0]:.1f} s {ours[-1][1]:.0f} MB | "
                      f"llama.cpp {ref[-1][0]:.1f} s {ref[-1][1]:.0f} MB", flush=True)
            if qtype == "f16":
                f16_size = ours_file.stat().st_size / 1e6
            med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
            rows.append((qtype, med(ours, 0), med(ref, 0), med(ours, 1), med(ref, 1), (ours_file, ref_file),
                         ours_file.stat().st_size / 1e6))
        # compared after all measurements: reading both files grows this process (see _RUNNER)
        rows = [r[:5] + (same_tensors(*r[5]),) + r[6:] for r in rows]
        f16_size = f16_size or 2 * 134.5  # 135M parameters at 2 bytes
        print(f"\nSmolLM2-135M-Instruct, median of {args.runs} runs; baseline = llama.cpp convert_hf_to_gguf.py "
              f"(llama-cpp-python sdist); f16 file {f16_size:.0f} MB")
        print(f"{'type':6s} {'edgetune s':>10s} {'llama.cpp s':>11s} {'time ratio':>10s} {'edgetune MB':>11s} "
              f"{'llama.cpp MB':>12s} {'RSS ratio':>9s} {'RSS/f16':>7s}  same tensors")
        for q, to, tr, mo, mr, same, size in rows:
            print(f"{q:6s} {to:10.1f} {tr:11.1f} {to / tr:10.2f} {mo:11.0f} {mr:12.0f} {mo / mr:9.2f} "
                  f"{mo / f16_size:7.2f}  {'yes' if same else 'NO'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
