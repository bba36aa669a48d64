#!/usr/bin/env bash
# Set up (if needed) and run the test suite: lint, then pytest. GPU tests skip without CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check .
python -m pytest "$@"
