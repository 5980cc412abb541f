"""pygan's fused ops. Each has a pure-PyTorch reference (``<op>_ref``, the ground truth) and native
kernels registered as ``torch.ops.pygan.*`` (C++ on CPU; CUDA C++ and Triton on GPU), chosen per call
by ``backend=``, the ``PYGAN_BACKEND`` environment variable, or the device default
(see :mod:`pygan.ops._backend`).

One op, one folder: ``pygan/ops/<op>/`` holds the public functions (``__init__``), ``reference.py``,
``contract.py`` (fake kernels and autograd rules of the ``pygan::`` schemas), ``triton.py`` (the
Triton kernels, imported on first use) and ``cases.py`` (the declaration every backend's tests and
benchmarks run: :func:`op_cases`), beside ``csrc/cpu/<op>.cpp`` and ``csrc/cuda/<op>.cu``.
Imports go one way: public module -> triton -> contract -> reference -> the private helpers here
(``_check``, ``_layout``, ``_registration``, ``_backend``, ``_triton_common``)."""

from pygan._ext import cpu_capability, cuda_loaded, native_loaded
from pygan.ops._backend import BACKENDS, available
from pygan.ops.feature_regularizer import feature_regularizer, feature_regularizer_ref
from pygan.ops.gradient_penalty import (
    grad_norm_penalty,
    grad_norm_penalty_ref,
    gradient_penalty,
    gradient_penalty_ref,
    interpolate,
    interpolate_ref,
)
from pygan.ops.residual_add import residual_add, residual_add_ref
from pygan.ops.style_loss import gram_matrix, gram_matrix_ref, style_loss, style_loss_ref

# The order of the op cases (tests, bench rows); an op folder not named here comes after, by name.
_CASE_ORDER = ("residual_add", "feature_regularizer", "style_loss", "gradient_penalty")


def op_cases() -> list:
    """The case declaration (:class:`pygan.ops._cases.OpCase`) of every op folder with a ``cases.py``:
    what the generic op tests and ``bench/ops.py`` run. Imports hypothesis only when a case's
    strategies are drawn (a test dependency)."""
    import importlib
    import pkgutil

    names = [m.name for m in pkgutil.iter_modules(__path__) if m.ispkg]
    names.sort(key=lambda n: (_CASE_ORDER.index(n) if n in _CASE_ORDER else len(_CASE_ORDER), n))
    found = []
    for name in names:
        if importlib.util.find_spec(f"pygan.ops.{name}.cases") is not None:
            found.append(importlib.import_module(f"pygan.ops.{name}.cases").CASE)
    return found


__all__ = [
    "BACKENDS",
    "available",
    "cpu_capability",
    "cuda_loaded",
    "feature_regularizer",
    "feature_regularizer_ref",
    "grad_norm_penalty",
    "grad_norm_penalty_ref",
    "gradient_penalty",
    "gradient_penalty_ref",
    "gram_matrix",
    "gram_matrix_ref",
    "interpolate",
    "interpolate_ref",
    "native_loaded",
    "residual_add",
    "residual_add_ref",
    "style_loss",
    "style_loss_ref",
]
