#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py) under a hard limit of 8 minutes; nothing is left running.
#
#   bash benchmarks/gpu_check.sh [--out DIR] [--only qlora-hf,dpo]
#
# Prints one table (also written to DIR/table.md, default /tmp/gpu_check/table.md). Each part runs in
# its own process group, killed when the part ends or times out; at the limit, SIGTERM makes
# gpu_check.py kill the running part before it exits.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
nvidia-smi -L || echo "nvidia-smi: no NVIDIA driver here; every check will be skipped"
timeout --signal=TERM --kill-after=30 480 "$PY" benchmarks/gpu_check.py "$@"
rc=$?
[ $rc -eq 124 ] && echo "gpu_check: stopped at the 8-minute limit; the parts that finished are in the table file"
exit $rc
