#!/usr/bin/env bash
# The one prepared device check (issue 19): every GPU path that runs without TensorRT, on a CUDA
# machine with PyTorch and CuPy (the lent H200 image), in under 8 minutes, into one JSON report.
#   bash scripts/gpu_check.sh             run it; the report is $OUT/gpu_check.json (--out DIR to choose)
#   bash scripts/gpu_check.sh --dry-run   on any machine: would it start? (files, imports, the plan)
# What each step checks: scripts/gpu_check.py; what has run on a GPU so far: docs/gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"  # on the device machine: the image's python3, which holds CUDA PyTorch
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# A hard stop under the 8 minutes; the report is written after every step, so it survives.
exec timeout --signal=TERM --kill-after=10 470 "$PY" scripts/gpu_check.py "$@"
