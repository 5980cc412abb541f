"""Whether `scripts/setup.sh` may skip its pip steps: the set-up stamp and its decision.

Run by setup.sh with the checkout's ``.venv/bin/python`` (standard library only; torch is not
imported, only its installed version is read):

    python scripts/setup_check.py ROOT --check        # "up to date" (exit 0) or "rebuild: REASON" (exit 1)
    python scripts/setup_check.py ROOT --stamp-text   # the stamp this checkout and venv would have now
    python scripts/setup_check.py ROOT --write EXPECTED  # write the stamp if it still equals EXPECTED

The stamp (``.venv/.pygan-setup-stamp``, inside the git-ignored venv, so a new venv has none) holds
what the native build depends on: the python and torch versions, the build's environment knobs and
a SHA-256 of every file under ``csrc/`` plus ``setup.py``, ``pyproject.toml`` and the two set-up
scripts. setup.sh removes it before installing and writes it only after the install succeeded and
``import pygan`` loaded the native kernels, so a failed or interrupted set-up leaves no stamp. The
set-up is up to date when the stamp equals the current state *and* ``import pygan`` (from outside
the checkout) imports this checkout's package with its native kernels loaded (or, with
``PYGAN_BUILD_NATIVE=0``, imports it at all).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys

STAMP = os.path.join(".venv", ".pygan-setup-stamp")
# Inputs of `pip install -e .` besides csrc/ (the set-up scripts: their pins and this logic).
SOURCES = ("setup.py", "pyproject.toml", "scripts/setup.sh", "scripts/setup_check.py")
# Environment variables setup.py (and torch's extension build) read that change what is built.
BUILD_ENV = (
    "PYGAN_BUILD_NATIVE",
    "PYGAN_CPU_CAPS",
    "PYGAN_BUILD_CUDA",
    "PYGAN_NVCC_FLAGS",
    "TORCH_CUDA_ARCH_LIST",
    "CUDA_HOME",
    "CXX",
)
# Run by the venv's python from outside the checkout: which pygan it imports and its native state.
_PROBE = """
import json, sys
try:
    import pygan
    info = pygan.info()
    out = {"file": pygan.__file__, "native": bool(info.get("native")), "error": info.get("error")}
except Exception as exc:
    out = {"file": None, "native": False, "error": f"import pygan failed: {type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


def source_files(root: str) -> list[str]:
    """The build's source files, relative to ``root``, sorted (missing ones are skipped)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, "csrc")):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        files += [os.path.relpath(os.path.join(dirpath, f), root) for f in filenames]
    files += [f for f in SOURCES if os.path.isfile(os.path.join(root, f))]
    return sorted(f.replace(os.sep, "/") for f in files)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    """This interpreter's python and installed torch versions (torch: "" when not installed)."""
    try:
        torch = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch = ""
    return {"python": f"{platform.python_implementation()} {platform.python_version()}", "torch": torch}


def stamp_text(root: str, vers: dict[str, str], env=os.environ) -> str:
    """The stamp for this source tree, these versions and this environment: one ``key value`` line
    per input, so that a mismatch can name what changed."""
    lines = [f"python {vers['python']}", f"torch {vers['torch']}"]
    lines += [f"env {name}={env.get(name, '')}" for name in BUILD_ENV]
    lines += [f"file {rel} {_sha256(os.path.join(root, rel))}" for rel in source_files(root)]
    return "\n".join(lines) + "\n"


def _parse(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "file":
            name, _, value = rest.rpartition(" ")
            out[f"file {name}"] = value
        elif kind == "env":
            name, _, value = rest.partition("=")
            out[f"env {name}"] = value
        elif kind:
            out[kind] = rest
    return out


def stamp_difference(old: str, new: str) -> str | None:
    """What differs between two stamps, in words (None when they are equal)."""
    if old == new:
        return None
    a, b = _parse(old), _parse(new)
    for key in ("python", "torch"):
        if a.get(key) != b.get(key):
            return f"{key} changed ({a.get(key) or 'none'} -> {b.get(key) or 'none'})"
    for key in sorted(set(a) | set(b)):
        if key.startswith("env ") and a.get(key, "") != b.get(key, ""):
            name = key[4:]
            return f"{name} changed ({a.get(key, '')!r} -> {b.get(key, '')!r})"
    changed = [k[5:] for k in sorted(set(a) | set(b)) if k.startswith("file ") and a.get(k) != b.get(k)]
    if changed:
        what = {True: "added", False: "removed"}
        parts = [
            f"{f} {what[f'file {f}' in b]}" if (f"file {f}" in a) != (f"file {f}" in b) else f
            for f in changed
        ]
        more = f" and {len(parts) - 3} more" if len(parts) > 3 else ""
        return f"sources changed: {', '.join(parts[:3])}{more}"
    return "the stamp is unreadable"


def probe(python: str = sys.executable) -> dict:
    """Import pygan with ``python`` from outside any checkout (no PYTHONPATH, cwd /): its file and
    whether its native kernels loaded."""
    import json

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(
        [python, "-c", _PROBE], cwd=os.path.abspath(os.sep), env=env, capture_output=True, text=True
    )
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"file": None, "native": False, "error": f"python could not run the import check: {err}"}


def decide(root: str, vers: dict[str, str], state: dict | None, env=os.environ) -> str | None:
    """None when the set-up is up to date, else the reason to rebuild. ``state`` is :func:`probe`'s
    answer (None: not probed yet; only the stamp is compared)."""
    stamp = os.path.join(root, STAMP)
    if not os.path.isfile(stamp):
        return "no set-up stamp (never set up here, or the last set-up failed)"
    if not vers["torch"]:
        return "torch is not installed in .venv"
    with open(stamp) as f:
        old = f.read()
    diff = stamp_difference(old, stamp_text(root, vers, env))
    if diff:
        return diff
    if state is None:
        return None
    if not state.get("file"):
        return state.get("error") or "import pygan failed"
    expected = os.path.realpath(os.path.join(root, "pygan"))
    found = os.path.realpath(os.path.dirname(state["file"]))
    if found != expected:
        return f".venv imports pygan from {found}, not from this checkout ({expected})"
    if not state.get("native") and env.get("PYGAN_BUILD_NATIVE", "") != "0":
        return f"pygan's native kernels are not loaded ({state.get('error')})"
    return None


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("--check", "--stamp-text", "--write"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    root = os.path.abspath(argv[0])
    if argv[1] == "--stamp-text":
        sys.stdout.write(stamp_text(root, versions()))
        return 0
    if argv[1] == "--write":
        text = stamp_text(root, versions())
        if len(argv) < 3 or text.rstrip("\n") != argv[2].rstrip("\n"):  # $(...) drops the last newline
            print("pygan setup: the sources changed during the set-up; no stamp written", file=sys.stderr)
            return 1
        path = os.path.join(root, STAMP)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        return 0
    vers = versions()
    reason = decide(root, vers, None)
    if reason is None:
        venv_python = os.path.join(root, ".venv", "bin", "python")
        reason = decide(root, vers, probe(venv_python if os.path.exists(venv_python) else sys.executable))
    print("up to date" if reason is None else f"rebuild: {reason}")
    return 0 if reason is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
