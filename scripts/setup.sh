#!/usr/bin/env bash
# Create .venv with the pinned CPU torch and capsdeploy (editable). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# Pinned: an unpinned torch pulls a multi-GB CUDA build. On a GPU machine install the
# CUDA build of your choice first; this line then keeps it if it is 2.13.0, else swap the pin.
python -m pip install --quiet "torch==${CAPSDEPLOY_TORCH_VERSION:-2.13.0}"
python -m pip install --quiet -e '.[test]'
