"""pygan as a package: what the sdist and wheel hold, how setup.py decides to build the native
libraries, what ``import pygan`` does with libraries built against another torch (or none), the
shipped digits, and the extras' error messages.

The compile-and-install smoke (sdist into a fresh venv, native and pure Python) is
scripts/check_package.sh, run by CI; the builds here compile nothing (PYGAN_BUILD_NATIVE=0).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest
import torch

import pygan
from pygan import _ext

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.dirname(os.path.abspath(pygan.__file__))
IN_CHECKOUT = PKG == os.path.join(ROOT, "pygan")


def _git_files(*paths: str) -> list[str]:
    if shutil.which("git") is None or not os.path.exists(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", *paths], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


# ---- sdist and wheel ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """``python -m build --no-isolation`` (sdist, then a wheel built from it), pure Python so that
    nothing compiles: a few seconds."""
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    env = dict(os.environ, PYGAN_BUILD_NATIVE="0")
    run = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), ROOT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (sdist,) = out.glob("pygan-*.tar.gz")
    (wheel,) = out.glob("pygan-*.whl")
    return sdist, wheel


def test_sdist_holds_every_build_source(dists):
    sdist, _ = dists
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    # Everything setup.py and CMakeLists.txt compile or include: exactly the tracked csrc/.
    csrc = _git_files("csrc")
    assert csrc, "git ls-files csrc is empty"
    assert {n for n in names if n.startswith("csrc/") and "." in os.path.basename(n)} == set(csrc)
    for f in (
        "setup.py",
        "pyproject.toml",
        "CMakeLists.txt",
        "MANIFEST.in",
        "LICENSE",
        "THIRD_PARTY_NOTICES.md",
        "README.md",
        "pygan/data/digits_8x8.npz",
        "pygan/backbones/weights/digits_cnn.pt",
    ):
        assert f in names, f"{f} missing from {sdist.name}"
    missing = set(_git_files("pygan")) - names
    assert not missing, f"tracked package files missing from the sdist: {sorted(missing)}"
    leaked = [n for n in names if n.endswith((".so", ".o", ".pyc")) or n.endswith("_build_info.json")]
    assert not leaked, f"build outputs in the sdist: {leaked}"


def test_pure_wheel_holds_package_data_and_licences(dists):
    _, wheel = dists
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name  # no native code: a pure wheel
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        record = json.loads(z.read("pygan/_build_info.json"))
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for f in ("pygan/data/digits_8x8.npz", "pygan/backbones/weights/digits_cnn.pt", "pygan/cli.py"):
        assert f in names, f
    licences = {os.path.basename(n) for n in names if ".dist-info/licenses/" in n}
    assert licences == {"LICENSE", "THIRD_PARTY_NOTICES.md"}, licences
    assert not [n for n in names if n.endswith(".so")]
    assert record == {"native": False, "chosen": True, "reason": "PYGAN_BUILD_NATIVE=0 at install time"}
    assert "License-Expression: MIT" in meta
    hard = sorted(
        line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")
    )
    hard = [r for r in hard if "extra ==" not in r]
    assert [r.split(">")[0].split("=")[0] for r in hard] == [
        "numpy",
        "pillow",
        "safetensors",  # pygan export / load_generator: weights without pickle
        "torch",
        "tqdm",
    ], hard


def test_licence_is_mit_as_declared():
    with open(os.path.join(ROOT, "LICENSE")) as f:
        text = f.read()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        assert 'license = "MIT"' in f.read()


# ---- setup.py's decision -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup_module():
    """setup.py as a module (its ``setup()`` runs only as __main__)."""
    spec = importlib.util.spec_from_file_location("pygan_setup", os.path.join(ROOT, "setup.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_native_plan_choices(setup_module):
    plan = setup_module.native_plan
    assert plan({"PYGAN_BUILD_NATIVE": "0"}) == {
        "native": False,
        "reason": "PYGAN_BUILD_NATIVE=0 at install time",
        "chosen": True,
    }
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx:
        assert plan({"CXX": cxx})["native"] is True
    missing = plan({"CXX": "/nonexistent/c++"})
    assert missing["native"] is False and missing["chosen"] is False
    assert "no C++ compiler" in missing["reason"] and "/nonexistent/c++" in missing["reason"]
    with pytest.raises(SystemExit, match="PYGAN_BUILD_NATIVE=1 but no C\\+\\+ compiler"):
        plan({"CXX": "/nonexistent/c++", "PYGAN_BUILD_NATIVE": "1"})
    with pytest.raises(SystemExit, match="PYGAN_BUILD_NATIVE must be 0 or 1"):
        plan({"PYGAN_BUILD_NATIVE": "yes"})


def test_native_plan_rejects_old_torch(setup_module, monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    with pytest.raises(SystemExit, match=r"torch 2\.5\.1 is too old: pygan needs torch >= 2\.6"):
        setup_module.native_plan({})


def test_building_with_an_old_torch_is_a_clear_error(tmp_path):
    """The real build entry point with a torch older than the minimum (a stub torch package)."""
    stub = tmp_path / "stub" / "torch"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('__version__ = "2.4.1+cpu"\n')
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "stub"))
    env.pop("PYGAN_BUILD_NATIVE", None)
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "setup.py"), "build_ext"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert "torch 2.4.1+cpu is too old: pygan needs torch >= 2.6" in run.stderr, run.stderr[-2000:]


# ---- import-time checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("built", "running", "ok"),
    [
        ("2.13.0+cpu", "2.13.0+cpu", True),
        ("2.13.0+cpu", "2.13.1+cu130", True),  # same minor series; local tag does not change the CPU ABI
        ("2.12.0", "2.13.0", False),
        ("2.13.0", "3.13.0", False),
        ("2.14.0.dev20260101+cpu", "2.14.0.dev20260102+cpu", False),  # nightlies: exact only
        ("2.14.0.dev20260101+cpu", "2.14.0.dev20260101+cpu", True),
        ("2.14.0a0+git1234", "2.14.0", False),
        ("garbage", "2.13.0", False),
    ],
)
def test_torch_compatible(built, running, ok):
    assert _ext.torch_compatible(built, running) is ok


def test_rebuild_command_names_this_python_and_checkout():
    cmd = _ext.rebuild_command()
    assert cmd.startswith(f"{sys.executable} -m pip install --no-build-isolation"), cmd
    if IN_CHECKOUT:
        assert cmd.endswith(f"-e {ROOT}"), cmd


def test_info_says_which_kernels_and_why():
    info = pygan.info()
    kernels = info["kernels"]
    assert set(kernels) == {"reference", "cpp", "cuda", "triton"}
    assert info["torch"] == torch.__version__
    if info["native"]:
        assert kernels["cpp"] == f"loaded ({info['cpu_capability']} build)"
        if info["built_against"] is not None:  # a setup.py build records its torch
            assert _ext.torch_compatible(info["built_against"], torch.__version__)
    if torch.version.cuda is None:
        assert not info["cuda"] and kernels["cuda"].startswith(("not built", "not available", "built, but"))


def _package_copy(tmp_path, *, libraries: bool, record: dict | None) -> str:
    """A copy of the installed pygan package under tmp_path (imported first from there), with or
    without its native libraries, and with the given build record (None: none)."""
    if not any(f.startswith("_C.") and f.endswith(".so") for f in os.listdir(PKG)) and libraries:
        pytest.skip("pygan's native libraries are not built")
    dest = tmp_path / "site" / "pygan"
    ignore = ["__pycache__", "_build_info.json"] + ([] if libraries else ["*.so"])
    shutil.copytree(PKG, dest, ignore=shutil.ignore_patterns(*ignore))
    if record is not None:
        (dest / "_build_info.json").write_text(json.dumps(record))
    return str(tmp_path / "site")


_IMPORT = """
import json, sys, warnings
import torch
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import pygan
assert pygan.__file__.startswith(sys.argv[1]), pygan.__file__
b, r = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
torch.testing.assert_close(pygan.ops.residual_add(b, r, "tanh", True), torch.tanh(b + r))
print(json.dumps({"warnings": [str(w.message) for w in caught if "pygan" in str(w.message)],
                  "info": pygan.info()}))
"""


def _import_copy(site: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-c", _IMPORT, site], cwd=site, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _record(torch_version: str) -> dict:
    return {
        "native": True,
        "reason": None,
        "chosen": False,
        "torch": torch_version,
        "torch_cuda": None,
        "cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
        "cpu_capabilities": ["default", "avx2", "avx512"],
        "cuda": False,
        "cuda_reason": "test",
    }


def test_libraries_built_against_another_torch_are_not_loaded(tmp_path):
    """One warning naming both versions and the rebuild command; the ops run their reference."""
    other = "2.6.0" if not torch.__version__.startswith("2.6.") else "2.7.0"
    out = _import_copy(_package_copy(tmp_path, libraries=True, record=_record(other)))
    (msg,) = out["warnings"]
    assert f"built against torch {other}" in msg and f"this is torch {torch.__version__}" in msg, msg
    assert "Rebuild with: " in msg and "-m pip install --no-build-isolation" in msg, msg
    assert "circular" not in msg
    assert out["info"]["native"] is False and out["info"]["built_against"] == other
    assert "not loaded" in out["info"]["kernels"]["cpp"]


def test_libraries_built_against_this_torch_load(tmp_path):
    out = _import_copy(_package_copy(tmp_path, libraries=True, record=_record(torch.__version__)))
    assert out["warnings"] == [] and out["info"]["native"] is True, out


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_a_library_that_fails_to_load_gives_a_clear_warning(tmp_path):
    """An ABI break shows up as an undefined symbol at dlopen: the warning says so (not 'circular
    import'), gives the rebuild command, and the ops fall back."""
    site = _package_copy(tmp_path, libraries=True, record=None)
    src = tmp_path / "broken.c"
    src.write_text(
        "void _ZN3c1015pygan_test_goneEv(void);\nvoid PyInit__C(void) { _ZN3c1015pygan_test_goneEv(); }\n"
    )
    (c_lib,) = [
        f for f in os.listdir(os.path.join(site, "pygan")) if f.startswith("_C.") and f.endswith(".so")
    ]
    subprocess.run(["cc", "-shared", "-fPIC", "-o", os.path.join(site, "pygan", c_lib), str(src)], check=True)
    out = _import_copy(site)
    (msg,) = out["warnings"]
    assert "could not be loaded" in msg and "undefined symbol" in msg and "Rebuild with: " in msg, msg
    assert "circular" not in msg and "not built" not in msg
    assert out["info"]["native"] is False


def test_pure_install_chosen_imports_quietly(tmp_path):
    rec = {"native": False, "chosen": True, "reason": "PYGAN_BUILD_NATIVE=0 at install time"}
    out = _import_copy(_package_copy(tmp_path, libraries=False, record=rec))
    assert out["warnings"] == [], out
    assert out["info"]["native"] is False
    assert "PYGAN_BUILD_NATIVE=0" in out["info"]["kernels"]["cpp"]


def test_pure_install_fallback_warns_once_with_the_reason(tmp_path):
    rec = {"native": False, "chosen": False, "reason": "no C++ compiler was found at install time"}
    out = _import_copy(_package_copy(tmp_path, libraries=False, record=rec))
    (msg,) = out["warnings"]
    assert "no C++ compiler" in msg and "--no-build-isolation" in msg and "PYGAN_BUILD_NATIVE=0" in msg, msg


def test_unbuilt_checkout_warns_how_to_build(tmp_path):
    out = _import_copy(_package_copy(tmp_path, libraries=False, record=None))
    (msg,) = out["warnings"]
    assert "not built" in msg and "--no-build-isolation" in msg, msg


# ---- shipped data and optional dependencies ----------------------------------------------------


def test_shipped_digits_equal_scikit_learn():
    pytest.importorskip("sklearn")
    from pygan.data import digits

    images, labels = digits._read_shipped()
    sk_images, sk_labels = digits.from_sklearn()
    assert np.array_equal(images, sk_images) and np.array_equal(labels, sk_labels)
    from sklearn.datasets import load_digits

    d = load_digits()
    assert np.array_equal(images.astype(np.float32), d.images.astype(np.float32))
    assert np.array_equal(labels.astype(np.int64), d.target.astype(np.int64))


def test_digits_split_is_unchanged():
    """The RandomState(0) stratified split: sizes and a fingerprint of which rows are test rows."""
    from pygan.data import digits

    _, labels, is_test = digits._raw()
    assert int(is_test.sum()) == 359 and len(labels) == 1797
    assert np.bincount(labels[is_test]).tolist() == [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]
    assert np.flatnonzero(is_test)[:8].tolist() == [3, 7, 13, 19, 36, 38, 43, 48]


def test_corrupt_digits_file_is_an_error(tmp_path):
    from pygan.data import digits

    images, labels = digits._read_shipped()
    bad = images.copy()
    bad[0, 0, 0] ^= 1
    path = tmp_path / "d.npz"
    np.savez_compressed(path, images=bad, labels=labels)
    with pytest.raises(ValueError, match="differ from the shipped digits"):
        digits._read_shipped(str(path))
    with pytest.raises(FileNotFoundError, match="reinstall pygan"):
        digits._read_shipped(str(tmp_path / "missing.npz"))


_BLOCKED = """
import sys
for name in ("sklearn", "scipy", "skimage", "tensorboard"):
    sys.modules[name] = None  # import raises ImportError, as if not installed
"""


def test_default_paths_need_no_optional_dependency(tmp_path):
    """import pygan, `pygan list`, the digits data and a training run on them (TensorBoard on by
    default) without scikit-learn, scipy, scikit-image or tensorboard importable; SVHN and the photos
    then fail with errors that name the extra to install."""
    code = (
        _BLOCKED
        + f"""
import os
from pygan.cli import main
from pygan.data import load_data
assert main(["list"]) == 0
assert load_data("digits16").x.shape[-1] == 16
run = {str(tmp_path / "run")!r}
assert main(["train", "wgan-gp", "--data", "digits16", "--steps", "1", "--set", "width=8", "--threads", "1",
             "--no-progress", "--out", run]) == 0
assert os.path.isfile(os.path.join(run, "checkpoints", "last.pt"))
open("x.mat", "wb").close()
for spec, extra in (("svhn:x.mat", "pygan[svhn]"), ("photo-gray16?sources=sklearn", "pygan[images]")):
    try:
        load_data(spec)
    except ImportError as exc:
        assert extra in str(exc), exc
    else:
        raise AssertionError(spec + " loaded without its extra")
print("ok")
"""
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stdout[-2000:] + run.stderr[-3000:]
