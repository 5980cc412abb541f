"""Fast re-setup and reproducibility (docs/reproducibility.md).

* ``scripts/setup.sh``'s skip decision (``scripts/setup_check.py``): which changes force the native
  rebuild and which do not, in a temporary source tree (nothing is built here).
* Two runs of the same command with the same seed on one machine are bitwise equal: losses, sample
  grid and every tensor of the checkpoint.
"""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from pygan.runs import run_paths
from pygan.train import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("setup_check", os.path.join(ROOT, "scripts", "setup_check.py"))
setup_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(setup_check)

VERS = {"python": "CPython 3.11.7", "torch": "2.13.0+cpu"}


@pytest.fixture
def tree(tmp_path):
    """A checkout's build inputs (csrc/, setup.py, pyproject.toml, the set-up scripts), a .venv/ and
    a pygan package whose native kernels "loaded"."""
    root = tmp_path / "checkout"
    (root / "csrc" / "cpu").mkdir(parents=True)
    (root / "csrc" / "ops.cpp").write_text("// schemas\n")
    (root / "csrc" / "cpu" / "gp.cpp").write_text("// kernel\n")
    (root / "setup.py").write_text("# setup\n")
    (root / "pyproject.toml").write_text("[project]\n")
    (root / "scripts").mkdir()
    for name in ("setup.sh", "setup_check.py"):
        shutil.copy(os.path.join(ROOT, "scripts", name), root / "scripts" / name)
    (root / "pygan").mkdir()
    (root / "pygan" / "__init__.py").write_text("def info():\n    return {'native': True, 'error': None}\n")
    (root / ".venv").mkdir()
    return root


def _state(root, native=True):
    return {"file": str(root / "pygan" / "__init__.py"), "native": native, "error": None if native else "why"}


def _stamp(root, vers=VERS, env=None):
    (root / setup_check.STAMP).write_text(setup_check.stamp_text(str(root), vers, env or {}))


def test_setup_check_decides_what_forces_a_rebuild(tree):
    env = {}
    decide = setup_check.decide
    assert decide(str(tree), VERS, _state(tree), env).startswith("no set-up stamp")
    _stamp(tree)
    assert decide(str(tree), VERS, _state(tree), env) is None
    assert decide(str(tree), VERS, None, env) is None  # the stamp alone
    # Python files of the package, docs, tests: no rebuild (an editable install reads them in place).
    (tree / "pygan" / "models.py").write_text("x = 1\n")
    (tree / "README.md").write_text("docs\n")
    assert decide(str(tree), VERS, _state(tree), env) is None
    # Each build input, the torch and python versions and the build knobs do.
    assert decide(str(tree), {**VERS, "torch": "2.12.0+cpu"}, _state(tree), env) == (
        "torch changed (2.13.0+cpu -> 2.12.0+cpu)"
    )
    assert decide(str(tree), {**VERS, "python": "CPython 3.12.1"}, _state(tree), env) == (
        "python changed (CPython 3.11.7 -> CPython 3.12.1)"
    )
    assert decide(str(tree), VERS, _state(tree), {"PYGAN_BUILD_NATIVE": "0"}) == (
        "PYGAN_BUILD_NATIVE changed ('' -> '0')"
    )
    assert decide(str(tree), VERS, _state(tree), {"PYGAN_CPU_CAPS": "avx2"}).startswith(
        "PYGAN_CPU_CAPS changed"
    )
    for rel, change in [
        ("csrc/cpu/gp.cpp", "csrc/cpu/gp.cpp"),
        ("csrc/cpu/new.h", "csrc/cpu/new.h added"),
        ("setup.py", "setup.py"),
        ("pyproject.toml", "pyproject.toml"),
        ("scripts/setup.sh", "scripts/setup.sh"),
    ]:
        path = tree / rel
        before = path.read_bytes() if path.exists() else None
        path.write_bytes((before or b"") + b"// edit\n")
        assert decide(str(tree), VERS, _state(tree), env) == f"sources changed: {change}", rel
        if before is None:
            path.unlink()
        else:
            path.write_bytes(before)
        assert decide(str(tree), VERS, _state(tree), env) is None, rel
    (tree / "csrc" / "ops.cpp").unlink()
    assert decide(str(tree), VERS, _state(tree), env) == "sources changed: csrc/ops.cpp removed"
    (tree / "csrc" / "ops.cpp").write_text("// schemas\n")
    # A matching stamp is not enough: the venv must import this checkout's pygan, native kernels loaded.
    assert (
        decide(str(tree), VERS, _state(tree, native=False), env)
        == "pygan's native kernels are not loaded (why)"
    )
    other = {"file": "/elsewhere/pygan/__init__.py", "native": True, "error": None}
    assert decide(str(tree), VERS, other, env).startswith(".venv imports pygan from /elsewhere/pygan, not")
    broken = {"file": None, "native": False, "error": "import pygan failed: ImportError: x"}
    assert decide(str(tree), VERS, broken, env) == "import pygan failed: ImportError: x"
    assert decide(str(tree), {**VERS, "torch": ""}, _state(tree), env) == "torch is not installed in .venv"
    # A pure-Python install that was asked for is up to date without native kernels.
    _stamp(tree, env={"PYGAN_BUILD_NATIVE": "0"})
    assert decide(str(tree), VERS, _state(tree, native=False), {"PYGAN_BUILD_NATIVE": "0"}) is None


def _fake_venv(root):
    """.venv/bin/python: this interpreter, seeing the temporary checkout's pygan (as an editable
    install would) and nothing from the real checkout."""
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    py = bin_dir / "python"
    # `-m pip` fails: the test's interpreter must never be installed into (and a failed set-up is
    # what the test wants to see).
    py.write_text(
        f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then echo "fake pip: no network" >&2; exit 1; fi\n'
        f'PYTHONPATH="{root}" exec "{sys.executable}" "$@"\n'
    )
    py.chmod(0o755)
    return py


def _setup(root, *args, env=None):
    env = {k: v for k, v in os.environ.items() if k not in setup_check.BUILD_ENV} | (env or {})
    return subprocess.run(
        ["bash", str(root / "scripts" / "setup.sh"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_setup_sh_check_end_to_end(tree):
    """`bash scripts/setup.sh --check` with the real scripts: no venv, no stamp, up to date, a changed
    source; the stamp is written only when the sources still equal those the build started from."""
    shutil.rmtree(tree / ".venv")
    proc = _setup(tree, "--check")
    assert (proc.returncode, proc.stdout) == (1, "rebuild: no .venv (.venv/bin/python is missing)\n")
    py = _fake_venv(tree)
    proc = _setup(tree, "--check")
    assert proc.returncode == 1 and proc.stdout.startswith("rebuild: no set-up stamp"), (
        proc.stdout + proc.stderr
    )
    check = [str(py), str(tree / "scripts" / "setup_check.py"), str(tree)]
    text = subprocess.run([*check, "--stamp-text"], capture_output=True, text=True, check=True).stdout
    assert f"torch {setup_check.versions()['torch']}\n" in text and "file csrc/cpu/gp.cpp " in text
    (tree / "csrc" / "cpu" / "gp.cpp").write_text("// edited during the build\n")
    proc = subprocess.run([*check, "--write", text.rstrip("\n")], capture_output=True, text=True)
    assert proc.returncode == 1 and "no stamp written" in proc.stderr
    assert not (tree / setup_check.STAMP).exists()
    text = subprocess.run([*check, "--stamp-text"], capture_output=True, text=True, check=True).stdout
    subprocess.run([*check, "--write", text.rstrip("\n")], check=True)
    proc = _setup(tree, "--check")
    assert (proc.returncode, proc.stdout) == (0, "up to date\n"), proc.stderr
    proc = _setup(tree)  # a plain run that is up to date installs nothing
    assert proc.returncode == 0 and proc.stdout.startswith("pygan setup: up to date"), proc.stderr
    proc = _setup(tree, "--check", env={"PYGAN_BUILD_NATIVE": "1"})
    assert (proc.returncode, proc.stdout) == (1, "rebuild: PYGAN_BUILD_NATIVE changed ('' -> '1')\n")
    (tree / "pygan" / "__init__.py").write_text("raise ImportError('broken')\n")
    proc = _setup(tree, "--check")
    assert proc.returncode == 1 and "import pygan failed: ImportError: broken" in proc.stdout
    # A set-up that fails leaves no stamp: the next run installs again.
    (tree / "pygan" / "__init__.py").write_text("def info():\n    return {'native': True, 'error': None}\n")
    (tree / "setup.py").write_text("# setup, edited\n")
    proc = _setup(tree)
    assert proc.returncode != 0 and "sources changed: setup.py -> installing" in proc.stderr
    assert "fake pip: no network" in proc.stderr and not (tree / setup_check.STAMP).exists()
    proc = _setup(tree, "--check")
    assert proc.returncode == 1 and proc.stdout.startswith("rebuild: no set-up stamp")
    proc = _setup(tree, "--bogus")
    assert proc.returncode == 2 and "unknown option --bogus" in proc.stderr


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.usefixtures("one_thread")
def test_same_command_twice_is_bitwise_equal(tmp_path):
    """The same run twice in one process (fresh model, loader and RNG each time): the same losses
    to the last bit, the same sample grid bytes and the same checkpoint tensors."""
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        train(
            "wgan-gp", "digits16", str(out), 4, overrides=["width=4", "batch_size=8", "n_critic=2"],
            log_every=1, sample_every=0, progress=False, tensorboard=False,
        )  # fmt: skip
        paths = run_paths(str(out))
        with open(paths["metrics"]) as f:
            rows = [
                {k: v for k, v in json.loads(line).items() if k not in ("time", "img_per_s")} for line in f
            ]
        ck = torch.load(paths["last"], weights_only=True)
        runs.append((rows, _digest(os.path.join(paths["samples"], "last.png")), ck))
    (rows_a, png_a, ck_a), (rows_b, png_b, ck_b) = runs
    assert len(rows_a) == 4 and rows_a == rows_b
    assert png_a == png_b
    flat_a, flat_b = _tensors(ck_a), _tensors(ck_b)
    assert flat_a.keys() == flat_b.keys() and len(flat_a) > 10
    for key in flat_a:
        assert torch.equal(flat_a[key], flat_b[key]), key


def _tensors(obj, prefix=""):
    out = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out |= _tensors(v, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out |= _tensors(v, f"{prefix}/{i}")
    return out
