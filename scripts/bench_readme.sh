#!/usr/bin/env bash
# The README's performance figures, one command: engine latency (torch, ORT FP32/FP16/INT8,
# OpenVINO f32/bf16/INT8 at batches 1..128, accuracy on the full test set) with the peers in the
# same run (OpenVINO defaults on our FP32 and INT8 files, torch.compile, bf16 autocast), the
# routing sweep, HTTP load on `serve` against the same engine's direct batch-32 throughput, and
# `capsdeploy tune` (its table, a repository from it, and that repository under load). Run on a
# quiet machine:
#   bash scripts/bench_readme.sh [RUN_DIR]        (default runs/mnist; results in docs/bench/)
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
RUN=${1:-runs/mnist}
OUT=docs/bench
DATA=(--dataset mnist --data-dir ../shared/data/mnist)
mkdir -p "$OUT" docs/img
capsdeploy bench engines --checkpoint "$RUN" --engines torch,ort,ort-fp16,ort-int8,ov,ov-bf16,ov-int8 --peers \
  --batch-sizes 1,8,16,32,128 --accuracy-samples -1 "${DATA[@]}" --json "$OUT/engines.json" --markdown "$OUT/engines.md" \
  --csv "$OUT/engines.csv" --plot docs/img/bench-engines.png
# The same engines and peers with two instances (two concurrent callers, each on its own clone):
# the setting tune picks on two cores; every engine gets it, so the ratios stay like for like.
capsdeploy bench engines --checkpoint "$RUN" --engines torch,ort-int8,ov-int8 --peers --instances 2 \
  --batch-sizes 1,16,32 "${DATA[@]}" --json "$OUT/engines-x2.json" --markdown "$OUT/engines-x2.md"
capsdeploy bench sweep --checkpoint "$RUN" --routing-iters 1,2,3,4,5 --engines ort --batch-size 32 "${DATA[@]}" \
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
        subprocess.run([sys.executable, "-m", "capsdeploy", "bench", "http", "--url", srv.url, "--concurrency",
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
capsdeploy bench engines --checkpoint "$RUN" --engines torch,ort --model "$LEVERS/int8-trt-qdq.onnx,$LEVERS/int8-cpu-qdq.onnx,$LEVERS/int8-cpu-qoperator.onnx" \
  --batch-sizes 1,32 --accuracy-samples -1 "${DATA[@]}" --json "$OUT/int8-levers.json" --markdown "$OUT/int8-levers.md"
capsdeploy bench engines --checkpoint "$RUN" --engines torch,ort,ort-int8 --batch-sizes 1,32 --threads 1 "${DATA[@]}" \
  --json "$OUT/threads1.json" --markdown "$OUT/threads1.md"
# Where the time goes at batch 32 (OpenVINO PERF_COUNT, ONNX Runtime's profiler).
capsdeploy bench engines --checkpoint "$RUN" --engines ov,ov-int8,ort,ort-int8 --profile --batch-sizes 32 \
  --data-dir ../shared/data/mnist --json "$OUT/profile-b32.json" | tee "$OUT/profile-b32.txt"
# The tuned engine: every candidate validated on 2,000 real digits and timed; then its repository
# served with --engine auto under 64 concurrent single-image tritonclient requests.
capsdeploy tune --checkpoint "$RUN" --data-dir ../shared/data/mnist --samples 2000 --duration-s 2 \
  --out "$OUT/tune.json" | tee "$OUT/tune.txt"
TUNED=$(mktemp -d)/repo
capsdeploy export --format triton --checkpoint "$RUN" --tuned "$OUT/tune.json" --output "$TUNED" \
  --data-dir ../shared/data/mnist >/dev/null
python - "$TUNED" "$OUT/http-tuned.json" <<'PY'
import subprocess, sys, tempfile
from capsdeploy.serve.process import ServerProcess
repo, out = sys.argv[1:3]
with tempfile.TemporaryDirectory() as logs:
    srv = ServerProcess.start([repo, "--engine", "auto", "--drain-delay", "0"], logs)
    try:
        subprocess.run([sys.executable, "scripts/tritonclient_load.py", srv.url, "--threads", "64",
                        "--seconds", "10", "--json", out], check=True)
    finally:
        srv.stop()
PY
echo "wrote $OUT/{engines,routing,http,int8-levers,threads1,profile-b32,tune,http-tuned}.json, the Markdown tables and docs/img/bench-engines.png"
