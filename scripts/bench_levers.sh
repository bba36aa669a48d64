#!/usr/bin/env bash
# The levers beyond OpenVINO's defaults (issue 16, item 3), measured in one `bench engines` run against
# the ov-int8 engine on the default export, with accuracy on all 10,000 test digits:
#   (routing without the transpose of the predictions, commit 0a655dd, measured 0.6-0.7x and was
#   reverted: docs/results.md)
#   - bf16 outside the INT8 convolutions (routing in bf16: ov-bf16 on the INT8 file)
#   - the prediction MatMul in INT8 too, routing in float (--int8-ops Conv,PredictionMatMul)
#   - batch size (chunking the batch: the 8/16/32 columns; the batcher cuts at preferred sizes)
# Run on a quiet machine:  bash scripts/bench_levers.sh [RUN_DIR]   (writes docs/bench/levers.*)
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
RUN=${1:-runs/mnist}
OUT=docs/bench
DATA=(--dataset mnist --data-dir ../shared/data/mnist)
L=$(mktemp -d)
mkdir -p "$OUT"
Q=(--precision int8 --calib-samples 512 --data-dir ../shared/data/mnist)
capsdeploy export --checkpoint "$RUN" -o "$L/fp32.onnx" >/dev/null
capsdeploy export --checkpoint "$RUN" -o "$L/int8.onnx" "${Q[@]}" >/dev/null
capsdeploy export --checkpoint "$RUN" -o "$L/int8-matmul.onnx" --int8-ops Conv,PredictionMatMul "${Q[@]}" >/dev/null
MODELS="ov-int8=$L/int8.onnx,ov-bf16=$L/int8.onnx,ov-int8=$L/int8-matmul.onnx,ov=$L/fp32.onnx,ov-bf16=$L/fp32.onnx"
capsdeploy bench engines --checkpoint "$RUN" --engines torch,ov-defaults,ov-defaults-int8 --model "$MODELS" \
  --batch-sizes 8,16,32 --duration-s 3 --accuracy-samples -1 "${DATA[@]}" --json "$OUT/levers.json" \
  --markdown "$OUT/levers.md"
python - "$OUT/levers.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
base = {r["batch"]: r for r in rows if r["engine"] == "ov-int8:int8.onnx"}
print("| engine:file | batch | img/s | x ov-int8 (default export) | x torch | accuracy |")
print("| --- | --- | --- | --- | --- | --- |")
for r in rows:
    b = base[r["batch"]]
    print(f"| {r['engine']} | {r['batch']} | {r['images_per_second']:.0f} | "
          f"{r['images_per_second'] / b['images_per_second']:.2f} | {r['speedup_vs_torch']:.2f} | {r['accuracy']:.2%} |")
PY
