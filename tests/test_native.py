"""The native extension is built and loaded, and every CPU-capability build that this CPU can run
passes the op equivalence tests (each in a subprocess, since one process loads one build)."""

import os
import subprocess
import sys

import pytest
import torch

import pygan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU_LEVEL = {"DEFAULT": 0, "AVX2": 1, "AVX512": 2}
BUILD_LEVEL = {"default": 0, "avx2": 1, "avx512": 2}


def test_extension_is_built_and_loaded():
    info = pygan.info()
    assert info["native"], info
    assert pygan.ops.native_loaded()
    assert hasattr(torch.ops.pygan, "residual_add")
    assert info["cpu_capability"] in BUILD_LEVEL


def test_best_cpu_build_is_loaded():
    """The loaded build is the best one this CPU supports (unless ATEN_CPU_CAPABILITY lowers it)."""
    level = CPU_LEVEL.get(torch.backends.cpu.get_cpu_capability(), 0)
    built = {
        name
        for name in BUILD_LEVEL
        if any(f.startswith(f"_cpu_{name}.") for f in os.listdir(os.path.dirname(pygan.__file__)))
    }
    best = max((b for b in built if BUILD_LEVEL[b] <= level), key=BUILD_LEVEL.get)
    assert pygan.ops.cpu_capability() == best


def _capabilities_to_check():
    level = CPU_LEVEL.get(torch.backends.cpu.get_cpu_capability(), 0)
    here = os.path.dirname(pygan.__file__)
    # The loaded build is covered by the main run of tests/ops; check every other one here.
    return [
        cap
        for cap, lvl in BUILD_LEVEL.items()
        if lvl <= level
        and cap != pygan.ops.cpu_capability()
        and any(f.startswith(f"_cpu_{cap}.") for f in os.listdir(here))
    ]


@pytest.mark.parametrize("capability", _capabilities_to_check())
def test_each_cpu_build_matches_reference(capability):
    """The C++ kernels' equivalence tests (marker ``cpu_kernel``) in a process that loads this build."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability, PYGAN_HYPOTHESIS_PROFILE="smoke")
    code = "import pygan; print(pygan.ops.cpu_capability())"
    loaded = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert loaded.stdout.strip() == capability, loaded.stderr
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "tests/ops",
            "-m",
            "cpu_kernel",
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
