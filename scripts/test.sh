#!/usr/bin/env bash
# Set up (if needed) and run the test suite: lint, then pytest. GPU tests skip without CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install_perf_analyzer.sh  # Triton's perf_analyzer, for the wire-compatibility tests
. .venv/bin/activate
ruff check .
mypy capsdeploy  # config in pyproject.toml [tool.mypy]
# First the tests that measure loss under load, alone on a quiet machine (exit 5: the arguments
# selected none of them); then the rest on one xdist worker per core (CAPSDEPLOY_TEST_WORKERS to
# change, 0 for none; tests/helpers/workers.py says how they split the files).
python -m pytest -m exclusive "$@" || [ $? = 5 ]
python -m pytest -n "${CAPSDEPLOY_TEST_WORKERS:-auto}" -m "not exclusive" "$@"
