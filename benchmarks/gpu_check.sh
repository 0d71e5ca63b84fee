#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py) under a hard limit of 8 minutes; nothing is left running.
#
#   bash benchmarks/gpu_check.sh [--out DIR] [--only qlora-hf,dpo]
#
# Prints one table (also written to DIR/table.md, default /tmp/gpu_check/table.md).
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
nvidia-smi -L || echo "nvidia-smi: no NVIDIA driver here; every check will be skipped or fail"
# its own process group, so a timeout kills every run and rank it started
timeout --signal=TERM --kill-after=20 480 setsid "$PY" benchmarks/gpu_check.py "$@" &
pid=$!
trap 'kill -TERM -- -$pid 2>/dev/null' INT TERM
wait $pid
rc=$?
kill -KILL -- -$pid 2>/dev/null || true
[ $rc -eq 124 ] && echo "gpu_check: stopped at the 8-minute limit (see the table so far in ${OUT:-/tmp/gpu_check}/table.md)"
exit $rc
