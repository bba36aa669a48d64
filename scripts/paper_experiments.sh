#!/usr/bin/env bash
# The README's "Paper claims" figures, one command: CapsNet and the baseline CNN trained the same
# way on the affine protocol (--pad 6) and on MultiMNIST, compared by `capsdeploy report` (affine
# test, MultiMNIST score, pictures), with the 28x28 run's reconstructions and capsule dimensions.
# CPU scale, not the paper's: TRAIN digits of digits10k, EPOCHS epochs (about an hour on 2 cores).
#   bash scripts/paper_experiments.sh [RUN_28x28]     (default runs/mnist; report in docs/paper/)
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
RUN28=${1:-runs/mnist}
TRAIN=${TRAIN:-3000}     # training digits (10% held out for selection)
EPOCHS=${EPOCHS:-2}
TEST=${TEST:-2000}       # test digits (or pairs) for the report's tests
OUT=${OUT:-runs/paper}
DATA=(--dataset mnist --data-dir ../shared/data/mnist)
COMMON=("${DATA[@]}" --train-split digits10k --test-split t10k --max-train-samples "$TRAIN"
        --max-test-samples 1000 --epochs "$EPOCHS" --overwrite)
for arch in capsnet cnn-baseline; do
  capsdeploy train --arch "$arch" --pad 6 "${COMMON[@]}" --out "$OUT/$arch-pad6"
  # Warm-up: at the full rate from step one, CapsNet's capsules all saturate on overlapping pairs.
  capsdeploy train --arch "$arch" --multimnist --pairs-per-digit 1 --warmup-steps 150 "${COMMON[@]}" \
    --out "$OUT/$arch-multi"
done
rm -rf docs/paper
capsdeploy report "$OUT/capsnet-pad6" "$OUT/cnn-baseline-pad6" "$OUT/capsnet-multi" "$OUT/cnn-baseline-multi" \
  "$RUN28" "${DATA[@]:2}" --max-samples "$TEST" --out docs/paper --json docs/paper/report.json
