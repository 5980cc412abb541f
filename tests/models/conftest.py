import pytest


@pytest.fixture(autouse=True)
def _one_thread_per_model_test(one_thread):
    """Every model test runs on one intra-op thread (see tests/conftest.py::one_thread)."""
