"""Test-suite setup: hypothesis profiles and the native-extension guard.

Profiles (``PYGAN_HYPOTHESIS_PROFILE``): ``ci`` (default; derandomized, so CI is repeatable),
``dev`` (5x the examples, random: run it locally to search wider), ``smoke`` (a few examples; used
by the per-CPU-capability subprocess runs).
"""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# The Triton kernels' CPU tests (tests/ops/test_ops.py, test_triton.py) run under Triton's
# interpreter, which must be chosen before triton is first imported: do it here, before any test
# module loads. Only without a GPU (with one, triton compiles for it; tests/gpu and the op cases
# cover that, and `TRITON_INTERPRET=1 pytest tests/ops` runs the interpreter tests there).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("dev", print_blob=True, **_COMMON)
settings.register_profile("smoke", derandomize=True, **_COMMON)
PROFILE = os.environ.get("PYGAN_HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def pytest_sessionstart(session):
    import pygan

    if not pygan.ops.native_loaded() and os.environ.get("PYGAN_ALLOW_FALLBACK") != "1":
        pytest.exit(
            "pygan's native extension is not built, so the suite would only test the reference "
            f"fallback ({pygan._ext.load_error()}). Build it: pip install --no-build-isolation -e . "
            "(set PYGAN_ALLOW_FALLBACK=1 to run anyway).",
            returncode=1,
        )


def pytest_report_header(config):
    import pygan

    return f"pygan: {pygan.info()} | hypothesis profile: {PROFILE}"


@pytest.fixture
def one_thread():
    """One intra-op thread for the test: small models and ops run faster on one thread than on two
    OpenMP threads that synchronise on a shared 2-core machine (5-25x slower under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def test_models():
    """The loop-test models of tests/_models.py registered for the test, unregistered after it."""
    from tests import _models

    _models.install()
    yield
    _models.uninstall()
