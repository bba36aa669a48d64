#!/usr/bin/env bash
# The README's "Paper claims" figures, one command: CapsNet and the baseline CNN trained the same way
# on the affine protocol (--pad 6) and on MultiMNIST, compared by `capsdeploy report` (affine test,
# MultiMNIST score, pictures), with the 28x28 run's reconstructions and capsule dimensions.
# CPU scale, not the paper's (about an hour on 2 cores): TRAIN_PAD / TRAIN_MULTI digits of
# digits10k (10% held out for selection), EPOCHS epochs, TEST test digits (or pairs) per test.
#   bash scripts/paper_experiments.sh [RUN_28x28]     (default runs/mnist; report in docs/paper/)
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
RUN28=${1:-runs/mnist}
TRAIN_PAD=${TRAIN_PAD:-3000}
TRAIN_MULTI=${TRAIN_MULTI:-1500}
EPOCHS=${EPOCHS:-2}
TEST=${TEST:-2000}
OUT=${OUT:-runs/paper}
DATA=(--dataset mnist --data-dir ../shared/data/mnist)
COMMON=("${DATA[@]}" --train-split digits10k --test-split t10k --max-test-samples 1000 --epochs "$EPOCHS" --overwrite)
for arch in capsnet cnn-baseline; do
  capsdeploy train --arch "$arch" --pad 6 --max-train-samples "$TRAIN_PAD" "${COMMON[@]}" --out "$OUT/$arch-pad6"
done
for arch in capsnet cnn-baseline; do
  # Warm-up: at the full rate from step one, CapsNet's capsules all saturate on overlapping pairs.
  capsdeploy train --arch "$arch" --multimnist --pairs-per-digit 1 --warmup-steps 150 \
    --max-train-samples "$TRAIN_MULTI" "${COMMON[@]}" --out "$OUT/$arch-multi"
done
rm -rf docs/paper
capsdeploy report "$OUT/capsnet-pad6" "$OUT/cnn-baseline-pad6" "$OUT/capsnet-multi" "$OUT/cnn-baseline-multi" \
  "$RUN28" "${DATA[@]:2}" --max-samples "$TEST" --out docs/paper --json docs/paper/report.json
