"""Triton kernels for ``residual_add``: ``out = act(base + residual)`` and its backward
``grad * act'(out)`` from the saved output, as ``torch.ops.pygan_triton.residual_add`` /
``residual_add_backward`` with autograd (double backward included: the backward op has its own
autograd formula, as the C++ op's).

Same contract as ``pygan::residual_add`` (csrc/cpu/residual.cpp): operands with one dense layout
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

from pygan.ops._layout import empty_like_layout, same_dense_layout
from pygan.ops._triton._common import INTERPRET, acc_tl, block_1d, launch, op, to_out

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


def _fake_fwd(base, residual, activation, detach_base):
    return empty_like_layout(base, same_dense_layout(base, residual))


@op("residual_add", _fake_fwd)
def _residual_add(
    base: torch.Tensor, residual: torch.Tensor, activation: str, detach_base: bool
) -> torch.Tensor:
    act = _act_code(activation)
    keep = same_dense_layout(base, residual)
    b = base if keep else base.contiguous()
    r = residual if keep else residual.contiguous()
    out = empty_like_layout(b, keep)
    n = int(out.numel())
    if n > 0:
        block, warps = block_1d(n)
        launch(_residual_fwd_kernel)[(triton.cdiv(n, block),)](
            b, r, out, n, ACT=act, ACC=acc_tl(out.dtype), INTERP=INTERPRET, BLOCK=block, num_warps=warps
        )
    return out


def _fake_bwd(grad, out, activation):
    return empty_like_layout(out, same_dense_layout(out, grad))


@op("residual_add_backward", _fake_bwd)
def _residual_add_backward(grad: torch.Tensor, out: torch.Tensor, activation: str) -> torch.Tensor:
    act = _act_code(activation)
    keep = same_dense_layout(out, grad)
    g = grad if keep else grad.contiguous()
    o = out if keep else out.contiguous()
    gin = empty_like_layout(o, keep)
    n = int(gin.numel())
    if n > 0:
        block, warps = block_1d(n)
        launch(_residual_bwd_kernel)[(triton.cdiv(n, block),)](
            g, o, gin, n, ACT=act, ACC=acc_tl(gin.dtype), INTERP=INTERPRET, BLOCK=block, num_warps=warps
        )
    return gin


def _setup_context(ctx, inputs, output):
    _, _, activation, detach_base = inputs
    ctx.activation = activation
    ctx.detach_base = detach_base
    ctx.save_for_backward(output if activation != "none" else None)


def _backward(ctx, grad):
    (out,) = ctx.saved_tensors
    g = grad if ctx.activation == "none" else _residual_add_backward(grad, out, ctx.activation)
    return (None if ctx.detach_base else g), g, None, None


def _setup_context_bwd(ctx, inputs, output):
    grad, out, activation = inputs
    ctx.activation = activation
    ctx.save_for_backward(grad, out)


def _backward_bwd(ctx, gg):
    # d/d grad of grad * act'(out) is act'(out): the same op on gg. d/d out: tanh' = 1 - out^2 gives
    # -2 * out * grad; hardtanh' is piecewise constant, so 0.
    grad, out = ctx.saved_tensors
    d_grad = d_out = None
    if ctx.needs_input_grad[0]:
        d_grad = _residual_add_backward(gg, out, ctx.activation)
    if ctx.needs_input_grad[1] and ctx.activation == "tanh":
        d_out = -2.0 * gg * grad * out
    return d_grad, d_out, None


_residual_add.register_autograd(_backward, setup_context=_setup_context)
_residual_add_backward.register_autograd(_backward_bwd, setup_context=_setup_context_bwd)


def residual_add(base, residual, activation: str, detach_base: bool):
    """``act(base + residual)`` on the Triton kernel; arguments validated by the caller
    (:func:`pygan.ops.residual_add`)."""
    return _residual_add(base, residual, activation, detach_base)


def residual_add_backward(grad, out, activation: str):
    return _residual_add_backward(grad, out, activation)
