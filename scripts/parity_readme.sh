#!/usr/bin/env bash
# The README's export-parity table: each precision exported from the run and validated against
# PyTorch on all 10,000 test images (ONNX Runtime on CPU). Results in docs/parity/.
#   bash scripts/parity_readme.sh [RUN_DIR]        (default runs/mnist)
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
RUN=${1:-runs/mnist}
OUT=docs/parity
TMP=$(mktemp -d)
mkdir -p "$OUT"
DATA=(--data-dir ../shared/data/mnist)
capsdeploy export --checkpoint "$RUN" --output "$TMP/fp32.onnx" >/dev/null
capsdeploy export --checkpoint "$RUN" --output "$TMP/fp16.onnx" --precision fp16 >/dev/null
capsdeploy export --checkpoint "$RUN" --output "$TMP/int8-trt.onnx" --precision int8 "${DATA[@]}" >/dev/null
capsdeploy export --checkpoint "$RUN" --output "$TMP/int8-cpu.onnx" --precision int8 --int8-target cpu \
  --int8-format qoperator "${DATA[@]}" >/dev/null
for m in fp32 fp16 int8-trt int8-cpu; do
  capsdeploy validate --checkpoint "$RUN" --model "$TMP/$m.onnx" "${DATA[@]}" --num-samples 10000 \
    --json "$OUT/$m.json" || true  # a failed verdict is a result too; the JSON says which
done
rm -rf "$TMP"
