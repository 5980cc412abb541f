#!/usr/bin/env bash
# Idempotent set-up of a fresh machine: .venv with the CPU build of torch 2.13.0 (from the local
# wheel cache; never a bare `torch`, which would pull a multi-GB CUDA build), and pygan installed
# editable with its native extension built against that torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel ninja
.venv/bin/python -m pip install -q torch==2.13.0
MAX_JOBS=${MAX_JOBS:-2} .venv/bin/python -m pip install -q --no-build-isolation -e ".[test,images,tensorboard]"
.venv/bin/python -c "import pygan, json; print('pygan ready:', json.dumps(pygan.info()))"
