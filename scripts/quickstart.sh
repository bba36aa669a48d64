#!/usr/bin/env bash
# The main job end to end, offline, on the embedded synthetic digits:
# set up, train a paper-size CapsNet briefly, evaluate it, draw its reconstructions.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
OUT=${OUT:-runs/quickstart}
capsdeploy info
capsdeploy train --dataset synthetic --epochs 2 --max-train-samples 3000 --max-test-samples 1000 \
  --out "$OUT" --overwrite
capsdeploy eval --checkpoint "$OUT" --json "$OUT/eval.json" --grid "$OUT/reconstructions.png"
echo "done: run directory $OUT (eval.json, reconstructions.png, metrics.jsonl)"
