#!/usr/bin/env bash
# Packaging check (CI): pygan installed as a user would, from its sdist, outside the checkout.
#
#   1. `python -m build --sdist --no-isolation` from this checkout.
#   2. A fresh venv with only pygan's hard dependencies (torch from the local wheel cache, the same
#      version as .venv's): the sdist installed with --no-build-isolation (native kernels compiled for
#      one CPU capability, PYGAN_CPU_CAPS, default "default", to keep CI short); from outside the
#      checkout: import pygan (no warning), the native kernels loaded and recorded against this torch,
#      one op, `pygan list`, a 2-step `pygan train` + `pygan sample` on the shipped digits, and
#      scikit-learn/scipy/scikit-image absent; then the torch-mismatch path (the record edited to
#      another torch: one warning naming both versions and the rebuild command, the ops on reference).
#   3. The same sdist reinstalled with PYGAN_BUILD_NATIVE=0 (pure Python): the same smoke, no warning.
#   4. Reinstalled with no C++ compiler (CXX pointing nowhere): the fall-back line at install time,
#      and the same smoke with one import-time warning saying why.
# Usage: bash scripts/check_package.sh   (uses .venv/bin/python, or $PYTHON)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
CAP=${PYGAN_CPU_CAPS:-default}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pygan-pkg.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
t0=$(date +%s)
step() { echo "-- $1 ($(($(date +%s) - t0)) s)"; }
fail_log() { tail -40 "$1"; exit 1; }

step "sdist"
"$PY" -m build --sdist --no-isolation --outdir "$WORK/dist" > "$WORK/sdist.log" 2>&1 || fail_log "$WORK/sdist.log"
SDIST=$(ls "$WORK"/dist/pygan-*.tar.gz)
echo "$(basename "$SDIST"): $(tar tzf "$SDIST" | grep -c .) entries"

step "fresh venv with torch $("$PY" -c 'import torch; print(torch.__version__)') (hard dependencies only)"
TORCH=$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")
"$PY" -m venv "$WORK/venv"
V=$WORK/venv/bin
"$V/python" -m pip install -q --upgrade pip "setuptools>=77" ninja > "$WORK/venv.log" 2>&1 || fail_log "$WORK/venv.log"
"$V/python" -m pip install -q "torch==$TORCH" >> "$WORK/venv.log" 2>&1 || fail_log "$WORK/venv.log"

# The smoke run from outside the checkout. $1: native | pure | fallback.
smoke() {
  (cd "$WORK" && "$V/python" - "$1" "$CAP" "$ROOT" <<'PY'
import json, os, sys, warnings

mode, cap, root = sys.argv[1:4]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import torch
    import pygan
msgs = [str(w.message) for w in caught if "pygan" in str(w.message)]
assert not pygan.__file__.startswith(root), f"imported the checkout, not the install: {pygan.__file__}"
info = pygan.info()
print(mode, json.dumps(info))
assert info["native"] == (mode == "native"), info
if mode == "native":
    assert not msgs, msgs
    assert info["cpu_capability"] == cap and info["built_against"] == torch.__version__, info
    assert hasattr(torch.ops.pygan, "residual_add")
elif mode == "pure":
    assert not msgs, msgs  # chosen at install time: no warning
    assert "PYGAN_BUILD_NATIVE=0" in info["kernels"]["cpp"], info
else:  # fallback: one warning saying why and how to build
    assert len(msgs) == 1 and "no C++ compiler" in msgs[0] and "--no-build-isolation" in msgs[0], msgs
    assert "no C++ compiler" in info["kernels"]["cpp"], info
for mod in ("sklearn", "scipy", "skimage"):  # the default paths must not need them
    assert __import__("importlib.util").util.find_spec(mod) is None, f"{mod} is installed"
b, r = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
backend = "cpp" if mode == "native" else None
out = pygan.ops.residual_add(b, r, "tanh", True, backend=backend)
torch.testing.assert_close(out, torch.tanh(b + r))
from pygan.data import load_data
open("not-svhn.mat", "wb").close()
try:
    load_data("svhn:not-svhn.mat")
    raise AssertionError("svhn: loaded without scipy")
except ImportError as exc:
    assert "pygan[svhn]" in str(exc), exc
print(f"smoke {mode}: ok")
PY
  )
  (cd "$WORK" && "$V/pygan" list > "$WORK/list.txt") || { cat "$WORK/list.txt"; exit 1; }
  grep -q "wgan-gp" "$WORK/list.txt" || { echo "pygan list has no wgan-gp"; cat "$WORK/list.txt"; exit 1; }
  rm -rf "$WORK/run"
  (cd "$WORK" && "$V/pygan" train wgan-gp --data digits16 --steps 2 --set width=8 --threads 1 \
    --no-progress --no-tensorboard --out "$WORK/run" > "$WORK/train.log" 2>&1) || fail_log "$WORK/train.log"
  (cd "$WORK" && "$V/pygan" sample "$WORK/run" --n 4 > "$WORK/sample.log" 2>&1) || fail_log "$WORK/sample.log"
  echo "pygan list / train / sample ($1): ok"
}

step "install the sdist (native, CPU capability $CAP, --no-build-isolation)"
PYGAN_CPU_CAPS=$CAP PYGAN_BUILD_NATIVE=1 MAX_JOBS=${MAX_JOBS:-2} \
  "$V/python" -m pip install --no-build-isolation "$SDIST" > "$WORK/native.log" 2>&1 || fail_log "$WORK/native.log"
step "smoke (native)"
smoke native

step "a torch mismatch at import: one warning, reference fall-back"
(cd "$WORK" && "$V/python" - <<'PY'
import json, os, subprocess, sys
import importlib.util
spec = importlib.util.find_spec("pygan")
rec_path = os.path.join(os.path.dirname(spec.origin), "_build_info.json")
with open(rec_path) as f:
    rec = json.load(f)
real = rec["torch"]
rec["torch"] = "2.6.0"
with open(rec_path, "w") as f:
    json.dump(rec, f)
code = (
    "import warnings, torch\n"
    "with warnings.catch_warnings(record=True) as w:\n"
    "    warnings.simplefilter('always'); import pygan\n"
    "m = [str(x.message) for x in w if 'pygan' in str(x.message)]\n"
    "print(m)\n"
    "assert len(m) == 1 and '2.6.0' in m[0] and torch.__version__ in m[0] and '--no-build-isolation' in m[0], m\n"
    "assert not pygan.info()['native']\n"
    "b = torch.randn(3, 5)\n"
    "torch.testing.assert_close(pygan.ops.residual_add(b, b, 'tanh'), torch.tanh(2 * b))\n"
)
try:
    subprocess.run([sys.executable, "-c", code], check=True)
finally:
    rec["torch"] = real
    with open(rec_path, "w") as f:
        json.dump(rec, f)
print("mismatch: ok")
PY
)

step "reinstall pure Python (PYGAN_BUILD_NATIVE=0)"
PYGAN_BUILD_NATIVE=0 "$V/python" -m pip install --no-build-isolation --force-reinstall --no-deps "$SDIST" \
  > "$WORK/pure.log" 2>&1 || fail_log "$WORK/pure.log"
if ls "$WORK"/venv/lib/python*/site-packages/pygan/_*.so > /dev/null 2>&1; then
  echo "native libraries left behind by the pure-Python reinstall"; exit 1
fi
step "smoke (pure)"
smoke pure

step "reinstall with no C++ compiler (automatic fall-back)"
CXX=/nonexistent/c++ "$V/python" -m pip install -v --no-build-isolation --force-reinstall --no-deps "$SDIST" \
  > "$WORK/fallback.log" 2>&1 || fail_log "$WORK/fallback.log"
grep "pygan: installing WITHOUT native kernels" "$WORK/fallback.log" | sort -u
grep -q "pygan: installing WITHOUT native kernels: no C++ compiler" "$WORK/fallback.log" \
  || { echo "no fall-back line at install time"; exit 1; }
step "smoke (fallback)"
smoke fallback

step "packaging check done"
