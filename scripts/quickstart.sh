#!/usr/bin/env bash
# The main job end to end, offline, on the embedded synthetic digits:
# set up, train a paper-size CapsNet briefly, evaluate it, export it to ONNX (FP32 and INT8),
# check the graph for TensorRT, validate ONNX Runtime against PyTorch, write a Triton model
# repository and serve it for one request.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
OUT=${OUT:-runs/quickstart}
capsdeploy info
capsdeploy train --dataset synthetic --epochs 2 --max-train-samples 3000 --max-test-samples 1000 \
  --out "$OUT" --overwrite
capsdeploy eval --checkpoint "$OUT" --json "$OUT/eval.json" --grid "$OUT/reconstructions.png"
capsdeploy export --checkpoint "$OUT" --output "$OUT/model.onnx" --input-dtype uint8
capsdeploy check "$OUT/model.onnx"
capsdeploy validate --checkpoint "$OUT" --model "$OUT/model.onnx" --num-samples 500 --json "$OUT/validate-fp32.json"
capsdeploy export --checkpoint "$OUT" --output "$OUT/model-int8.onnx" --input-dtype uint8 --precision int8
capsdeploy validate --checkpoint "$OUT" --model "$OUT/model-int8.onnx" --num-samples 500 --json "$OUT/validate-int8.json"
capsdeploy export --format triton --checkpoint "$OUT" --output "$OUT/repo" --overwrite
python scripts/serve_smoke.py "$OUT/repo"
echo "done: $OUT holds the run (metrics.jsonl, eval.json, reconstructions.png), model.onnx,"
echo "      model-int8.onnx, the validation reports and a Triton model repository (repo/);"
echo "      serve it with: capsdeploy serve $OUT/repo, then open http://127.0.0.1:8000/"
