#!/usr/bin/env bash
# The GPU checks of the training-step work (CUDA graphs, op-call overhead, data loading) in ONE call
# on a bare lent GPU machine (torch 2.11+cu130, nvcc 13.0, triton 3.6 preinstalled; nothing is
# downloaded or pip-installed):
#
#   build     python3 setup.py build_ext --inplace (CPU libraries + pygan._cuda for sm_90)
#   tests     tests/gpu (every op backend on CUDA, and tests/gpu/test_gpu_graphs.py: every model
#             graphed vs eager, vs its never-captured twin, resume across modes, bf16, memory)
#   steps     bench/train_step.py --device cuda --modes eager,graph at every model's default config,
#             then --sizes paper for the models the targets name (+ compile for WGAN-GP)
#   overhead  bench/overhead.py --device cuda (per-call host cost of every op vs the plain expression)
#   data      bench/data.py --device cuda (loader img/s vs the step it feeds)
#
# Everything goes under $OUT (at most 8 files come back): gpu.log (all printed output, tables
# included), build.log, tests-gpu.log, graphs.jsonl (the graph tests' measured differences),
# ts-default.json, ts-paper.json, overhead-cuda.json, data-cuda.json.
# Each step has a time limit inside PYGAN_GPU_BUDGET_S (default 560 s, inside the tool's 600 s);
# a step that no longer fits is skipped and says so. PYGAN_GPU_STEPS picks steps
# (default build,tests,steps,overhead,data).
#
#   bash bench/gpu_step.sh             # on the GPU machine
#   bash bench/gpu_step.sh --dry-run   # on a CPU machine: checks the script (tiny runs, no GPU numbers)
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-$PWD/bench/results/gpu-step-run}
mkdir -p "$OUT"
DEFAULT_STEPS=build,tests,steps,overhead,data
# shellcheck source=bench/gpu_lib.sh
. bench/gpu_lib.sh
# run NAME WANT RESERVE MIN cmd...: runs cmd under its limit unless fewer than MIN seconds remain
run() {
  local name=$1 want=$2 reserve=$3 min=$4; shift 4
  local t; t=$(limit "$want" "$reserve")
  if [ "$t" -lt "$min" ]; then step "$name: SKIPPED (only $(left)s of the budget left)"; return 0; fi
  step "$name (limit ${t}s)"
  timeout "$t" "$@"; local rc=$?
  [ $rc -eq 124 ] && echo "$name: TIMED OUT after ${t}s (partial results are kept)"
  [ $rc -ne 0 ] && [ $rc -ne 124 ] && echo "$name: exit status $rc"
  return 0
}

main() {
  step "environment ($([ $DRY = 1 ] && echo 'DRY RUN on CPU' || echo GPU))"
  [ $DRY = 0 ] && { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true; }
  $PY -c "import torch, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda, '| gpu', torch.cuda.is_available())"
  $PY -c "import triton; print('triton', triton.__version__)" 2>/dev/null || echo "triton missing"
  echo "cpus: $(nproc)"

  local dev=cuda
  if [ $DRY = 1 ]; then
    dev=cpu; export MAX_JOBS=${MAX_JOBS:-1} PYGAN_CPU_CAPS=${PYGAN_CPU_CAPS:-avx512}
  else
    export MAX_JOBS=${MAX_JOBS:-16} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
  fi
  if want build; then
    if [ $DRY = 1 ] && [ -f pygan/_C.abi3.so ]; then
      step "build: the dry run reuses the existing build"
    else
      run build 200 330 60 $PY setup.py build_ext --inplace > "$OUT/build.log" 2>&1
      tail -3 "$OUT/build.log"
    fi
  fi
  $PY -c "import pygan, json; print('pygan', json.dumps(pygan.info()))"
  if [ $DRY = 0 ] && ! $PY -c "import pygan, sys; sys.exit(0 if pygan.ops.cuda_loaded() else 1)"; then
    echo "WARNING: pygan's CUDA kernels did not load (the ops run their references)"
  fi

  if want tests; then
    export PYGAN_GPU_GRAPH_REPORT="$OUT/graphs.jsonl"
    rm -f "$PYGAN_GPU_GRAPH_REPORT"
    if [ $DRY = 1 ]; then
      run "tests (dry: the CPU graph tests)" 200 200 30 \
        $PY -m pytest -q -p no:cacheprovider -x tests/test_graphs.py > "$OUT/tests-gpu.log" 2>&1
    else
      run "tests/gpu + op cases on CUDA (8 workers)" 150 230 60 \
        env PYGAN_OP_TEST_DEVICES=cuda $PY -m pytest -q -p no:cacheprovider -p no:benchmark -rfEs \
        --durations=10 -n 8 tests/gpu tests/ops/test_ops.py \
        tests/data/test_workers.py::test_cuda_batches_equal_the_cpu_ones > "$OUT/tests-gpu.log" 2>&1
    fi
    tail -1 "$OUT/tests-gpu.log"
    grep -E "^(FAILED|ERROR) " "$OUT/tests-gpu.log" | head -30
    [ -f "$OUT/graphs.jsonl" ] && echo "graph report: $(wc -l < "$OUT/graphs.jsonl") rows" && \
      $PY - "$OUT/graphs.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for test in sorted({r["test"] for r in rows}):
    sub = [r for r in rows if r["test"] == test]
    keys = [k for k in sub[0] if k not in ("test", "case", "first")]
    print(test, {k: max(r[k] for r in sub if k in r) for k in keys})
EOF
  fi

  local models_default="wgan-gp,edgan,idvae,acl-gan-gp,cogan,uunet,dcgan,acl-gan,acl-sgan,acl-ae,vae,vae-gan,idvae-r,cidvae,edgan-coupled,edgan-caae,edgan-caae-coupled,edgan-pix2pix,edgan-pix2pix-coupled,pix2pix,unet-vae-gan,uuvae-gan,scogan"
  local reps=15 warm=5 paper="wgan-gp,acl-gan-gp,idvae,edgan,cogan,uunet" extra=()
  if [ $DRY = 1 ]; then
    models_default="wgan-gp"; paper="wgan-gp"; reps=2; warm=1; extra=(--set width=8 --set batch_size=4)
  fi
  local modes=eager,graph
  [ $DRY = 1 ] && modes=eager
  if want steps; then
    run "train steps, default configs ($modes)" 130 110 40 \
      $PY bench/train_step.py --device "$dev" --models "$models_default" --modes "$modes" --reps "$reps" \
      --warmup "$warm" ${extra[@]+"${extra[@]}"} --out "$OUT/ts-default.json"
    run "train steps, paper sizes ($modes)" 60 75 30 \
      $PY bench/train_step.py --device "$dev" --models "$paper" --sizes paper --modes "$modes" --reps "$reps" \
      --warmup "$warm" ${extra[@]+"${extra[@]}"} --out "$OUT/ts-paper.json"
    run "WGAN-GP paper size, compile" 45 75 40 \
      $PY bench/train_step.py --device "$dev" --models wgan-gp --sizes paper --modes eager,compile \
      --reps "$reps" --warmup "$warm" ${extra[@]+"${extra[@]}"} --out /tmp/ts-paper-compile.json  # table in gpu.log
  fi
  if want overhead; then
    if [ -f bench/overhead.py ]; then
      run "op-call overhead" 45 30 20 $PY bench/overhead.py --device "$dev" --quick --out /tmp/overhead-$dev
      cp /tmp/overhead-$dev.json "$OUT/" 2>/dev/null && cat /tmp/overhead-$dev.txt 2>/dev/null
    else
      step "overhead: bench/overhead.py not in this tree"
    fi
  fi
  if want data; then
    if [ -f bench/data.py ]; then
      run "data loading" 30 0 20 $PY bench/data.py --device "$dev" --reps 1 --out /tmp/data-$dev
      cp /tmp/data-$dev.json "$OUT/" 2>/dev/null && cat /tmp/data-$dev.md 2>/dev/null
    else
      step "data: bench/data.py not in this tree"
    fi
  fi
  echo "== done in $(elapsed)s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
}

main 2>&1 | tee "$OUT/gpu.log"
exit "${PIPESTATUS[0]}"
