# Shared by bench/gpu.sh and bench/gpu_step.sh (sourced; not run): the one-device-call scripts' set-up
# and time budget. Before sourcing, set DEFAULT_STEPS (the comma list PYGAN_GPU_STEPS defaults to).
# Defines PY, BUDGET, START, STEPS and want/elapsed/left/step/limit; exports PYTHONPATH (pygan is
# built in place, not installed: bench/*.py import it from the checkout) and PATH (the interpreter's
# own bin, with ninja for parallel builds, first).
PY=${PYTHON:-python3}
BUDGET=${PYGAN_GPU_BUDGET_S:-560}
START=$(date +%s)
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PATH="$(dirname "$($PY -c 'import sys; print(sys.executable)')"):$PATH"
export PATH
STEPS=",${PYGAN_GPU_STEPS:-$DEFAULT_STEPS},"
want() { [[ "$STEPS" == *",$1,"* ]]; }
elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET - $(elapsed) )); }
step() { echo; echo "== [$(elapsed)s] $*"; }
# limit WANT RESERVE: seconds a step may take: WANT, or what is left minus RESERVE if less (>= 1;
# never 0, which would mean "no limit" to timeout).
limit() { local l=$(( $(left) - $2 )); [ "$l" -lt "$1" ] && echo $(( l > 1 ? l : 1 )) || echo "$1"; }
