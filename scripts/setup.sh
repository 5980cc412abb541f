#!/usr/bin/env bash
# Idempotent set-up of a fresh machine: .venv with the CPU build of torch 2.13.0 (from the local
# wheel cache; never a bare `torch`, which would pull a multi-GB CUDA build), and pygan installed
# editable with its native extension built against that torch.
#
# A re-run skips the pip steps (and the 2-3 minute native build) when nothing the build depends on
# changed since the last successful set-up: scripts/setup_check.py compares a stamp in
# .venv/.pygan-setup-stamp (python and torch versions, PYGAN_BUILD_NATIVE and the other build
# knobs, a hash of csrc/**, setup.py, pyproject.toml and these scripts) and checks that
# `import pygan` loads this checkout's native kernels. The stamp is removed before installing and
# written only after success, so a failed set-up is redone in full next time.
#
# Usage: bash scripts/setup.sh            set up (or say "up to date" and skip the pip steps)
#        bash scripts/setup.sh --check    only say "up to date" (exit 0) or "rebuild: REASON" (exit 1)
#        bash scripts/setup.sh --force    set up even if up to date
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
MODE=${1:-}
case "$MODE" in
  "" | --check | --force) ;;
  *) echo "scripts/setup.sh: unknown option $MODE (use --check or --force)" >&2; exit 2 ;;
esac
VPY=.venv/bin/python
CHECK=scripts/setup_check.py

if [ "$MODE" != --force ]; then
  if [ -x "$VPY" ]; then
    set +e
    verdict=$(env -u PYTHONPATH "$VPY" "$CHECK" . --check 2>&1)
    rc=$?
    set -e
  else
    verdict="rebuild: no .venv ($VPY is missing)"
    rc=1
  fi
  if [ "$MODE" = --check ]; then
    echo "$verdict"
    exit "$rc"
  fi
  if [ "$rc" = 0 ]; then
    echo "pygan setup: up to date (sources, torch and build settings unchanged; bash scripts/setup.sh --force rebuilds)"
    exit 0
  fi
  echo "pygan setup: ${verdict#rebuild: } -> installing" >&2
fi

[ -x "$VPY" ] || "$PY" -m venv .venv
rm -f .venv/.pygan-setup-stamp
"$VPY" -m pip install -q --upgrade pip setuptools wheel ninja
"$VPY" -m pip install -q torch==2.13.0
# The stamp describes the sources as they were when the build began (a file edited during the build
# makes the final write refuse, so the next run rebuilds).
stamp=$(env -u PYTHONPATH "$VPY" "$CHECK" . --stamp-text)
MAX_JOBS=${MAX_JOBS:-2} "$VPY" -m pip install -q --no-build-isolation -e ".[test,images,tensorboard]"
"$VPY" -c "import pygan, json; print('pygan ready:', json.dumps(pygan.info()))"
if env -u PYTHONPATH "$VPY" "$CHECK" . --write "$stamp"; then
  verdict=$(env -u PYTHONPATH "$VPY" "$CHECK" . --check) || {
    rm -f .venv/.pygan-setup-stamp
    echo "pygan setup: installed, but not recorded as up to date (${verdict#rebuild: }): the next run installs again" >&2
  }
fi
