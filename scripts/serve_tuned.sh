#!/usr/bin/env bash
# The tuned repository served, beside the tuned engine called directly, in one script run:
# issue 16's "served >= 75% of direct" ratio. Run it on a quiet machine.
#   bash scripts/serve_tuned.sh RUN TUNE.json [OUT_DIR]      (OUT_DIR default: docs/bench)
# 1. the tune file's repository winner, timed directly at its best batch (a one-candidate tune);
# 2. `export --format triton --tuned` and `serve --engine auto` of that repository, loaded at
#    concurrency 64 by capsdeploy's clients and Triton's perf_analyzer (scripts/serve_protocols.py).
set -euo pipefail
cd "$(dirname "$0")/.."
run=$1 tune=$2 out=${3:-docs/bench}
. .venv/bin/activate
bash scripts/install_perf_analyzer.sh >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Labels hold spaces ("ov-int8+bf16 x2 streams"): tab-separated.
IFS=$'\t' read -r label batch < <(python -c 'import json, sys
w = json.load(open(sys.argv[1]))["winners"]["repository"]
print(w["label"], w["batch"], sep="\t")' "$tune")
echo "== direct: $label at batch $batch"
capsdeploy tune --checkpoint "$run" --candidates "$label" --batch-sizes "$batch" --duration-s 5 \
  --out "$work/direct.json" --json "$out/served-tuned-direct.json" --data-dir ../shared/data/mnist
capsdeploy export --format triton --checkpoint "$run" --tuned "$tune" --output "$work/repo"
echo "== served: capsdeploy serve --engine auto, concurrency 64"
python scripts/serve_protocols.py "$work/repo" --engine auto --concurrency 64 --json "$out/served-tuned.json" \
  | tee "$out/served-tuned.txt"
python - "$out/served-tuned-direct.json" "$out/served-tuned.json" <<'PY'
import json, sys
direct = json.load(open(sys.argv[1]))["winners"]["throughput"]["images_per_second"]
rows = json.load(open(sys.argv[2]))["rows"]
print(f"\ndirect: {direct:.1f} img/s")
for name, r in rows.items():
    print(f"{name:<34}{r['images_per_second']:>10.1f} img/s  {r['images_per_second'] / direct:6.1%} of direct")
PY
