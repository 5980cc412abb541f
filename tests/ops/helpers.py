"""Shared strategies and comparison rules for the op tests.

Comparison rule (flash-attention's, see ARCHITECTURE.md): a kernel's output in dtype ``d`` is
compared with the float64 reference on the same (upcast) inputs; its max abs error must be at most
twice PyTorch's own max abs error (the reference run in ``d``) plus a small atol, or within the
dtype's relative tolerance of the result's scale. float64 must match to ~1e-12 relative.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch

from pygan.ops._cases import BATCH, DTYPES, LAYOUTS, apply_layout, make
from pygan.ops._cases import TOLERANCES as TOLS

__all__ = ["BATCH", "DTYPES", "LAYOUTS", "TOLS", "apply_layout", "assert_close", "compare", "examples"]
__all__ += ["leaf", "make", "max_err"]

_SCALE = {"ci": 1.0, "dev": 5.0, "smoke": 0.05}[os.environ.get("PYGAN_HYPOTHESIS_PROFILE", "ci")]


def examples(n: int) -> int:
    """``n`` examples in the ci profile, scaled for the others."""
    return max(3, int(n * _SCALE))


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.numel() == 0:
        return 0.0
    return (a.double() - b.double()).abs().max().item()


def assert_close(name: str, got: torch.Tensor, ref64: torch.Tensor, torch_lowp: torch.Tensor | None, dtype):
    """The comparison rule above, with :data:`TOLS`. ``torch_lowp`` is PyTorch's own result in
    ``dtype`` (None for float64)."""
    assert got.shape == ref64.shape, f"{name}: shape {tuple(got.shape)} != {tuple(ref64.shape)}"
    assert got.dtype == dtype, f"{name}: dtype {got.dtype} != {dtype}"
    if got.numel() == 0:
        return
    ref_nan = torch.isnan(ref64)
    assert torch.equal(torch.isnan(got), ref_nan), f"{name}: NaN pattern differs from the reference"
    got, ref64 = got.double()[~ref_nan], ref64[~ref_nan]
    rtol, atol = TOLS[dtype]
    err = max_err(got, ref64)
    scale = ref64.abs().max().item() if ref64.numel() else 0.0
    bound = rtol * scale + atol
    if torch_lowp is not None:
        bound = max(bound, 2 * max_err(torch_lowp.double()[~ref_nan], ref64) + atol)
    assert err <= bound, f"{name}: max abs error {err:.3e} > bound {bound:.3e} ({dtype}, scale {scale:.3e})"


def _grads(out, inputs, grad_out):
    want = [t for t in inputs if t.requires_grad]
    if not want or out.numel() == 0:
        return []
    return list(torch.autograd.grad(out, want, grad_out, allow_unused=False))


def leaf(t, requires_grad):
    return t.detach().requires_grad_(requires_grad)


def compare(fn, ref, inputs, needs, grad_out, dtype, names, device=None):
    """``fn(*inputs)`` vs ``ref`` on float64 copies, and ``ref`` in ``dtype`` for the bound (the rule
    above): the output and the gradient of every input whose ``needs`` is True (``grad_out`` is the
    output's gradient, None for a scalar), named by ``names``. With ``device`` (a device or its
    name), each result must also be on that device's type."""
    xs = [leaf(t, n) for t, n in zip(inputs, needs)]
    out = fn(*xs)
    got = [out, *_grads(out, xs, grad_out)]
    x64 = [leaf(t.double(), n) for t, n in zip(inputs, needs)]
    out64 = ref(*x64)
    want = [out64, *_grads(out64, x64, None if grad_out is None else grad_out.double())]
    low = [None] * len(want)
    if dtype != torch.float64:
        xl = [leaf(t, n) for t, n in zip(inputs, needs)]
        outl = ref(*xl)
        low = [outl, *_grads(outl, xl, grad_out)]
    assert len(got) == len(want)
    for name, g, w, lw in zip(names, got, want, low):
        if device is not None:
            assert g.device.type == torch.device(device).type, name
        assert_close(name, g, w, lw, dtype)


@pytest.fixture(autouse=True)
def poison_outputs():
    """NaN-fill every uninitialised allocation (outputs, workspaces) during each test, so that an
    element a kernel forgets to write fails the comparison. Autouse in the modules that import it."""
    old = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    old_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a deterministic implementation.*")
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="triton.runtime.interpreter")
        yield
    torch.use_deterministic_algorithms(old[0], warn_only=old[1])
    torch.utils.deterministic.fill_uninitialized_memory = old_fill
