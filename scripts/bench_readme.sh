#!/usr/bin/env bash
# The README's performance figures, one command: engine latency (torch, ORT FP32/FP16/INT8 at
# batches 1..128, accuracy on the full test set), the routing sweep, and HTTP load on `serve`
# against the same engine's direct batch-32 throughput. Run on a quiet machine:
#   bash scripts/bench_readme.sh [RUN_DIR]        (default runs/mnist; results in docs/bench/)
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
RUN=${1:-runs/mnist}
OUT=docs/bench
DATA=(--dataset mnist --data-dir ../shared/data/mnist)
mkdir -p "$OUT" docs/img
capsdeploy bench --checkpoint "$RUN" --engines torch,ort,ort-fp16,ort-int8 --batch-sizes 1,8,32,128 \
  --accuracy-samples -1 "${DATA[@]}" --json "$OUT/engines.json" --markdown "$OUT/engines.md" \
  --csv "$OUT/engines.csv" --plot docs/img/bench-engines.png
capsdeploy bench --checkpoint "$RUN" --routing-iters 1,2,3,4,5 --engines ort --batch-sizes 32 "${DATA[@]}" \
  --json "$OUT/routing.json" --markdown "$OUT/routing.md"
REPO=$(mktemp -d)/repo
capsdeploy export --format triton --checkpoint "$RUN" --output "$REPO" --max-batch-size 64 >/dev/null
python - "$REPO" "$OUT/http.json" <<'PY'
import subprocess, sys, tempfile
from capsdeploy.serve.process import ServerProcess
repo, out = sys.argv[1:3]
with tempfile.TemporaryDirectory() as logs:
    srv = ServerProcess.start([repo, "--engine", "ort", "--drain-delay", "0"], logs)
    try:
        subprocess.run([sys.executable, "-m", "capsdeploy", "bench", "--url", srv.url, "--concurrency",
                        "1,4,16,64", "--binary", "--window-s", "3", "--json", out], check=True)
        # The same load from the reference client, one tritonclient per thread.
        subprocess.run([sys.executable, "scripts/tritonclient_load.py", srv.url, "--threads", "64",
                        "--seconds", "10", "--json", out.replace("http.json", "http-tritonclient.json")],
                       check=True)
    finally:
        srv.stop()
PY
# The INT8 levers, in one run: TensorRT-targeted Q/DQ (symmetric INT8 activations), CPU-targeted Q/DQ
# (UINT8 activations with zero points) and CPU-targeted QOperator (QLinearConv); then thread counts.
LEVERS=$(mktemp -d)
for v in "trt qdq" "cpu qdq" "cpu qoperator"; do
  set -- $v
  capsdeploy export --checkpoint "$RUN" --output "$LEVERS/int8-$1-$2.onnx" --precision int8 --int8-target "$1" \
    --int8-format "$2" --calib-samples 256 --data-dir ../shared/data/mnist >/dev/null
done
capsdeploy bench --checkpoint "$RUN" --engines torch,ort --model "$LEVERS/int8-trt-qdq.onnx,$LEVERS/int8-cpu-qdq.onnx,$LEVERS/int8-cpu-qoperator.onnx" \
  --batch-sizes 1,32 --accuracy-samples -1 "${DATA[@]}" --json "$OUT/int8-levers.json" --markdown "$OUT/int8-levers.md"
capsdeploy bench --checkpoint "$RUN" --engines torch,ort,ort-int8 --batch-sizes 1,32 --threads 1 "${DATA[@]}" \
  --json "$OUT/threads1.json" --markdown "$OUT/threads1.md"
echo "wrote $OUT/{engines,routing,http,int8-levers,threads1}.json, the Markdown tables and docs/img/bench-engines.png"
