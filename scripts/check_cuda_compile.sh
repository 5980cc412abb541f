#!/usr/bin/env bash
# Compiles every csrc/cuda/*.cu with nvcc -c against torch's headers (CPU-only machines can compile
# CUDA sources but not link or run them). A source that does not compile fails. Without nvcc the
# check is skipped with a printed reason.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
SOURCES=(csrc/cuda/*.cu)
if [ ${#SOURCES[@]} -eq 0 ]; then echo "check_cuda_compile: no CUDA sources yet"; exit 0; fi
NVCC=${NVCC:-$(command -v nvcc || true)}
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
if [ -z "$NVCC" ]; then echo "check_cuda_compile: SKIPPED: nvcc not found (set NVCC=...)"; exit 0; fi
INCLUDES=$(python -c "from torch.utils.cpp_extension import include_paths; print(' '.join('-isystem ' + p for p in include_paths()))")
CUDA_INC=$(dirname "$(dirname "$NVCC")")/include
OUT=$(mktemp -d)
status=0
for src in "${SOURCES[@]}"; do
  obj="$OUT/$(basename "$src").o"
  if "$NVCC" -c "$src" -o "$obj" -std=c++20 -arch=sm_90 -Xcompiler -fPIC --expt-relaxed-constexpr \
      $INCLUDES -isystem "$CUDA_INC" -Icsrc/cuda -DC10_CUDA_NO_CMAKE_CONFIGURE_FILE \
      -DTORCH_API_INCLUDE_EXTENSION_H -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ \
      -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__; then
    echo "check_cuda_compile: ok $src"
  else
    echo "check_cuda_compile: FAILED $src"; status=1
  fi
done
rm -rf "$OUT"
exit $status
