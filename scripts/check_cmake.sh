#!/usr/bin/env bash
# Builds csrc/ with CMakeLists.txt (one CPU capability, to keep CI short) and checks that the
# libraries load into torch and compute residual_add correctly. Uses the active Python's torch.
set -euo pipefail
cd "$(dirname "$0")/.."
CAP=${1:-default}
BUILD=build/cmake-check
mkdir -p build
cmake -S . -B "$BUILD" -DPYGAN_CPU_CAPS="$CAP" -DPython_EXECUTABLE="$(command -v python)" > "$BUILD.log" 2>&1 \
  || { cat "$BUILD.log"; exit 1; }
cmake --build "$BUILD" -j"${MAX_JOBS:-2}" >> "$BUILD.log" 2>&1 || { tail -50 "$BUILD.log"; exit 1; }
python - "$BUILD/pygan" "$CAP" <<'PY'
import sys, torch
lib, cap = sys.argv[1], sys.argv[2]
torch.ops.load_library(f"{lib}/_C.so")
torch.ops.load_library(f"{lib}/_cpu_{cap}.so")
b, r = torch.randn(3, 4, 5, 6), torch.randn(3, 4, 5, 6)
out = torch.ops.pygan.residual_add(b, r, "tanh", True)
torch.testing.assert_close(out, torch.tanh(b + r))
print(f"cmake build ok: {lib} ({cap})")
PY
