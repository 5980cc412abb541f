#!/usr/bin/env bash
# The GPU checks of issue 3 in ONE call on a bare lent GPU machine (torch 2.11+cu130, nvcc 13.0,
# triton 3.6 preinstalled; nothing can be downloaded there, nothing is pip-installed by this script):
#
#   build     python3 setup.py build_ext --inplace (CPU libraries + pygan._cuda for sm_90, ptxas
#             register/spill report in build.log); pygan must load its CUDA kernels
#   smoke     every kernel path once under compute-sanitizer memcheck (plain run if it is missing)
#   tests     tests/gpu (all backends vs reference on CUDA, fp32/fp16/bf16/fp64, poisoned outputs)
#             with pytest-xdist (the CPU tests are CI's)
#   bench     bench/ops.py --device cuda at --sizes large and --sizes model (float32), then large
#             bfloat16 if time is left; partial results survive a step cut short
#   report    <gpu-name>.json + <gpu-name>.md (tables, the issue's targets, suggested CUDA_DEFAULTS),
#             the markdown printed last
#
# Everything is written under $OUT (the device tool's output folder; default bench/results/gpu-run),
# at most 8 files: gpu.log build.log sanitizer.log tests-gpu.log <gpu>.json <gpu>.md (+ tests-cpu.log
# in a dry run).
# Each step has a time limit derived from PYGAN_GPU_BUDGET_S (default 560 s, inside the tool's 600 s
# per command); steps that no longer fit are skipped and say so. PYGAN_GPU_STEPS (default
# "build,smoke,tests,bench") picks steps, e.g. PYGAN_GPU_STEPS=build,bench for a second call that only
# measures (the build is always needed on a fresh machine).
#
#   bash bench/gpu.sh             # on the GPU machine
#   bash bench/gpu.sh --dry-run   # on a CPU machine: the same steps at CPU scale (checks this script)
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-$PWD/bench/results/gpu-run}
mkdir -p "$OUT"
TMP=$(mktemp -d)
GPU_STATUS=()
DEFAULT_STEPS=build,smoke,tests,bench
# shellcheck source=bench/gpu_lib.sh
. bench/gpu_lib.sh

main() {
  step "environment ($([ $DRY = 1 ] && echo 'DRY RUN on CPU' || echo GPU))"
  if [ $DRY = 0 ]; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.limit \
      --format=csv || echo "nvidia-smi failed"
  fi
  $PY -c "import torch, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda, '| gpu', torch.cuda.is_available())"
  $PY -c "import triton; print('triton', triton.__version__)" || echo "triton missing"
  command -v nvcc >/dev/null && nvcc --version | tail -1
  echo "cpus: $(nproc)"

  step "build"
  if [ $DRY = 1 ]; then
    export MAX_JOBS=${MAX_JOBS:-1} PYGAN_CPU_CAPS=${PYGAN_CPU_CAPS:-avx512}
  else
    export MAX_JOBS=${MAX_JOBS:-16} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
    export PYGAN_NVCC_FLAGS="${PYGAN_NVCC_FLAGS:--Xptxas=-v}"
  fi
  if ! want build; then
    echo "build: SKIPPED (PYGAN_GPU_STEPS)"
  elif timeout "$(limit 240 300)" $PY setup.py build_ext --inplace > "$OUT/build.log" 2>&1; then
    echo "build ok ($(grep -c 'registers' "$OUT/build.log") kernel resource lines in build.log;" \
      "spills: $(grep -E 'bytes spill stores' "$OUT/build.log" | grep -vc ' 0 bytes spill stores'))"
  else
    echo "BUILD FAILED (tail of build.log):"; tail -40 "$OUT/build.log"; GPU_STATUS+=("build failed")
  fi
  $PY -c "import pygan, json; print('pygan', json.dumps(pygan.info()))"
  if [ $DRY = 0 ] && ! $PY -c "import pygan, sys; sys.exit(0 if pygan.ops.cuda_loaded() else 1)"; then
    echo "pygan's CUDA kernels did not load"; GPU_STATUS+=("cuda kernels not loaded")
  fi
  $PY bench/gpu.py env --out "$TMP/env.json" > /dev/null || echo "env record failed"

  step "smoke under compute-sanitizer, GPU tests and CPU tests (in parallel)"
  # The sanitizer smoke covers the CUDA C++ kernels (Triton's masked kernels are covered by tests/gpu;
  # compiling every Triton variant under the sanitizer would not fit the budget).
  local sanitizer="" smoke_dev=cuda smoke_backends="cuda"
  if [ $DRY = 1 ]; then
    smoke_dev=cpu; smoke_backends="cpp"
  elif command -v compute-sanitizer >/dev/null; then
    sanitizer="compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20"
  fi
  local t_smoke t_tests pid_smoke="" pid_gpu="" pid_cpu=""
  t_smoke=$(limit 150 250); t_tests=$(limit 200 230)
  if want smoke; then
    (
      if [ $DRY = 1 ]; then export TRITON_INTERPRET=1; fi
      echo "# $sanitizer $PY bench/gpu.py smoke --device $smoke_dev --backends $smoke_backends"
      timeout "$t_smoke" $sanitizer $PY bench/gpu.py smoke --device "$smoke_dev" --backends "$smoke_backends"
      echo "# exit status $?"
    ) > "$OUT/sanitizer.log" 2>&1 &
    pid_smoke=$!
  fi
  if want tests; then
    if [ $DRY = 1 ]; then
      PYGAN_GPU_TESTS_DEVICE=cpu timeout "$t_tests" $PY -m pytest -q -p no:cacheprovider -rfEs tests/gpu \
        -k contract > "$OUT/tests-gpu.log" 2>&1 &
      pid_gpu=$!
      timeout "$t_tests" $PY -m pytest -q -p no:cacheprovider -x tests/ops/test_residual_add.py -k "not compile" \
        > "$OUT/tests-cpu.log" 2>&1 &
      pid_cpu=$!
    else
      # 6 workers: Triton compiles each kernel variant on first use; in parallel that goes faster
      # (H100 machine: 285 tests in 56 s). The CPU op tests are CI's job: run beside the GPU tests
      # and the sanitizer here they starved them past the limit (first H100 call).
      # tests/ops/test_ops.py: every op case x backend on CUDA (the generic tests; CI runs the CPU side).
      PYGAN_OP_TEST_DEVICES=cuda timeout "$t_tests" $PY -m pytest -q -p no:cacheprovider -p no:benchmark \
        -rfEs --durations=15 -n 6 tests/gpu tests/ops/test_ops.py > "$OUT/tests-gpu.log" 2>&1 &
      pid_gpu=$!
    fi
  fi
  if [ -n "$pid_gpu" ]; then wait "$pid_gpu"; echo "GPU tests: exit $? -- $(tail -1 "$OUT/tests-gpu.log")"; fi
  if [ -n "$pid_cpu" ]; then wait "$pid_cpu"; echo "CPU tests: exit $? -- $(tail -1 "$OUT/tests-cpu.log")"; fi
  if [ -n "$pid_smoke" ]; then
    wait "$pid_smoke"
    echo "smoke: $(grep -E '^# smoke|^# exit|ERROR SUMMARY' "$OUT/sanitizer.log" | tr '\n' ' ')"
    grep -E "^BAD" "$OUT/sanitizer.log" | head -10
  fi
  [ -f "$OUT/tests-gpu.log" ] && grep -E "^(FAILED|ERROR) " "$OUT/tests-gpu.log" | head -20

  local dev=cuda sizes_a=large sizes_b=model extra=()
  if [ $DRY = 1 ]; then dev=cpu; sizes_a=model; sizes_b=model; extra=(--reps 3 --warmup 1 --op residual_add); fi
  local benches=()
  want bench || step "bench: SKIPPED (PYGAN_GPU_STEPS)"
  for spec in "$sizes_a:float32:130" "$sizes_b:float32:100" "$sizes_a:bfloat16:120"; do
    want bench || break
    IFS=: read -r sizes dtype want <<< "$spec"
    local file="$TMP/ops-$sizes-$dtype.json" t
    t=$(limit "$want" 25)
    if [ "$t" -lt 45 ]; then step "bench $sizes $dtype: SKIPPED (only $(left)s of the budget left)"; continue; fi
    [ $DRY = 1 ] && [ "$dtype" = bfloat16 ] && continue
    [ $DRY = 1 ] && [ ${#benches[@]} -gt 0 ] && continue
    step "bench $sizes $dtype (limit ${t}s)"
    timeout "$t" $PY bench/ops.py --device "$dev" --sizes "$sizes" --dtype "$dtype" --keep-going \
      --out "$file" ${extra[@]+"${extra[@]}"} || echo "bench exited with status $? (partial results are kept)"
    benches+=("$file")
  done

  step "report"
  local notes=() cpu_log=()
  [ -f "$OUT/tests-cpu.log" ] && cpu_log=("cpu=$OUT/tests-cpu.log")
  for s in "${GPU_STATUS[@]+"${GPU_STATUS[@]}"}"; do notes+=(--note "$s"); done
  [ $DRY = 1 ] && notes+=(--note "DRY RUN on CPU: checks bench/gpu.sh's logic only; no GPU numbers")
  $PY bench/gpu.py report --out "$OUT" --env "$TMP/env.json" --bench ${benches[@]+"${benches[@]}"} \
    --tests "gpu=$OUT/tests-gpu.log" ${cpu_log[@]+"${cpu_log[@]}"} ${notes[@]+"${notes[@]}"}
  local status=$?
  echo "== done in $(elapsed)s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
  return $status
}

main 2>&1 | tee "$OUT/gpu.log"
status=${PIPESTATUS[0]}
rm -rf "$TMP"
exit "$status"
