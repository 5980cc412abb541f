"""Triton kernels for ``residual_add``: ``out = act(base + residual)`` and its backward
``grad * act'(out)`` from the saved output, as ``torch.ops.pygan_triton.residual_add`` /
``residual_add_backward`` with autograd: the same fake kernels as the C++ op's and the same autograd
formulas (:func:`pygan.ops.residual_add.contract.register_autograd_rules`, in Python; the C++ op's
are in csrc/autograd/residual_add.cpp; double backward included).

Same contract as ``pygan::residual_add`` (csrc/cpu/residual_add.cpp): operands with one dense layout
(contiguous / channels_last / channels_last_3d, equal strides) are walked linearly and the output
keeps that layout; otherwise contiguous copies and a contiguous output. Computation in float32
(float64 for float64). tanh: the odd Taylor series below a cutoff (0.5 in float32, 0.15 in float64,
where the x^17 term is under the type's epsilon), ``1 - 2 / (exp(2|x|) + 1)`` above (Triton has no
``tl.tanh`` and libdevice does not run under the interpreter). clamp = hardtanh to [-1, 1] with
gradient 0 at and beyond the bounds; NaN propagates through both.
"""

import torch
import triton
import triton.language as tl

from pygan.ops._layout import empty_like_layout
from pygan.ops._triton_common import dense, launch_flat, op, to_out
from pygan.ops.residual_add.contract import (
    fake_residual_add,
    fake_residual_add_backward,
    register_autograd_rules,
)

__all__ = ["residual_add", "residual_add_backward"]

_ACTS = {"none": 0, "tanh": 1, "clamp": 2}


def _act_code(activation: str) -> int:
    if activation not in _ACTS:
        raise ValueError(f"activation must be one of {list(_ACTS)}, got {activation!r}")
    return _ACTS[activation]


@triton.jit
def _tanh(x, ACC: tl.constexpr):
    ax = tl.abs(x)
    x2 = x * x
    # Taylor coefficients of tanh (x^3 ... x^15), as constants of the compute type.
    p = tl.full(x.shape, -929569.0 / 638512875.0, ACC)
    p = p * x2 + tl.full(x.shape, 21844.0 / 6081075.0, ACC)
    p = p * x2 + tl.full(x.shape, -1382.0 / 155925.0, ACC)
    p = p * x2 + tl.full(x.shape, 62.0 / 2835.0, ACC)
    p = p * x2 + tl.full(x.shape, -17.0 / 315.0, ACC)
    p = p * x2 + tl.full(x.shape, 2.0 / 15.0, ACC)
    p = p * x2 + tl.full(x.shape, -1.0 / 3.0, ACC)
    small = p * x2 * x + x
    e = tl.exp(ax + ax)
    big = 1.0 - 2.0 / (e + 1.0)
    big = tl.where(x < 0, -big, big)
    if ACC == tl.float64:
        cut = 0.15
    else:
        cut = 0.5
    return tl.where(ax < cut, small, big)


@triton.jit
def _residual_fwd_kernel(
    base_ptr,
    res_ptr,
    out_ptr,
    n,
    ACT: tl.constexpr,
    ACC: tl.constexpr,
    INTERP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(base_ptr + offs, mask=mask, other=0.0).to(ACC) + tl.load(
        res_ptr + offs, mask=mask, other=0.0
    ).to(ACC)
    if ACT == 1:
        x = _tanh(x, ACC)
    elif ACT == 2:
        # where() rather than min/max: NaN compares false both ways and propagates.
        x = tl.where(x < -1.0, -1.0, tl.where(x > 1.0, 1.0, x))
    tl.store(out_ptr + offs, to_out(x, out_ptr.dtype.element_ty, INTERP), mask=mask)


@triton.jit
def _residual_bwd_kernel(
    grad_ptr,
    out_ptr,
    gin_ptr,
    n,
    ACT: tl.constexpr,
    ACC: tl.constexpr,
    INTERP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    g = tl.load(grad_ptr + offs, mask=mask, other=0.0).to(ACC)
    y = tl.load(out_ptr + offs, mask=mask, other=0.0).to(ACC)
    if ACT == 1:
        g = g * (1.0 - y * y)
    elif ACT == 2:
        g = tl.where((y <= -1.0) | (y >= 1.0), 0.0, g)
    tl.store(gin_ptr + offs, to_out(g, gin_ptr.dtype.element_ty, INTERP), mask=mask)


@op("residual_add", fake_residual_add)
def residual_add(
    base: torch.Tensor, residual: torch.Tensor, activation: str, detach_base: bool
) -> torch.Tensor:
    act = _act_code(activation)
    keep, (b, r) = dense(base, residual)
    out = empty_like_layout(b, keep)
    n = int(out.numel())
    if n > 0:
        launch_flat(_residual_fwd_kernel, n, b, r, out, n, dtype=out.dtype, ACT=act)
    return out


@op("residual_add_backward", fake_residual_add_backward)
def residual_add_backward(grad: torch.Tensor, out: torch.Tensor, activation: str) -> torch.Tensor:
    act = _act_code(activation)
    keep, (o, g) = dense(out, grad)
    gin = empty_like_layout(o, keep)
    n = int(gin.numel())
    if n > 0:
        launch_flat(_residual_bwd_kernel, n, g, o, gin, n, dtype=gin.dtype, ACT=act)
    return gin


# The op objects are what pygan.ops.residual_add calls (arguments validated there).
register_autograd_rules(residual_add, residual_add_backward)
