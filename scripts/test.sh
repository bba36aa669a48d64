#!/usr/bin/env bash
# Set up (if needed) and run the test suite: lint, then pytest. GPU tests skip without CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install_perf_analyzer.sh  # Triton's perf_analyzer, for the wire-compatibility tests
. .venv/bin/activate
ruff check .
mypy capsdeploy  # config in pyproject.toml [tool.mypy]
# Without arguments: first the rolling restart (it asserts no request is lost under load), alone
# on a quiet machine in a pytest process of its own file (docs/tests.md says why), then the rest
# on one xdist worker per core (CAPSDEPLOY_TEST_WORKERS to change, 0 for none; tests/helpers/
# workers.py says how they split the files). With arguments, one parallel run of what they select.
workers=${CAPSDEPLOY_TEST_WORKERS:-auto}
if [ $# -eq 0 ]; then
  python -m pytest -q tests/deploy/test_rolling_restart.py
  CAPSDEPLOY_DESELECT_EXCLUSIVE=1 python -m pytest -n "$workers"
else
  python -m pytest -n "$workers" "$@"
fi
