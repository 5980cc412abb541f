"""Triton kernels for ``feature_regularizer``: ``sum_k w_k R(|a_k - b_k|^p)`` (R = mean or sum) and
its backward, as ``torch.ops.pygan_triton.feature_regularizer`` / ``feature_regularizer_backward``.

Same contract as ``pygan::feature_regularizer``: a 0-dim result in ``a[0]``'s dtype, accumulated in
float32 (float64 for float64); an empty layer's mean is NaN (its sum 0). Backward:
``grad_a[k] = grad * w_k * s_k * phi'(a_k - b_k)`` with ``s_k = 1/numel_k`` (mean) or 1, ``phi' = 2d``
(p=2) or ``sign(d)`` with sign(0) = 0 (p=1); ``grad_b = -grad_a``; a list is empty when not needed;
gradient strides follow the layout rule with ``a_k`` first.

Forward, deterministic two-stage reduction (no float atomics): one launch per layer in which each
of a fixed number of programs sums its grid-stride share of ``|a-b|^p`` and writes one partial,
already scaled by ``w_k s_k``, into a float32 (float64) buffer; then one program sums all partials
in a fixed order and writes the result. Backward: one elementwise launch per layer writing
``grad_a`` and/or ``grad_b`` (the incoming 0-dim gradient is read on the device: no host sync).
Double backward is supported through plain tensor ops (the backward is linear in the gradient and,
for p=2, in ``a - b``).
"""

import torch
import triton
import triton.language as tl

from pygan.ops._layout import empty_like_layout, same_dense_layout
from pygan.ops._triton._common import (
    INTERPRET,
    acc_tl,
    acc_torch,
    block_1d,
    f64_arg,
    launch,
    num_sms,
    op,
    split_f64,
    to_out,
)

__all__ = ["feature_regularizer", "feature_regularizer_backward"]

# Programs per layer in the forward's first stage: a few waves of the GPU; each loops grid-stride.
WAVES = 4


@triton.jit
def _partial_kernel(
    a_ptr,
    b_ptr,
    part_ptr,
    part_off,
    n,
    scale_hi,
    scale_lo,
    P: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    acc = tl.zeros([BLOCK], dtype=ACC)
    start = pid.to(tl.int64) * BLOCK
    step = nprog.to(tl.int64) * BLOCK
    for s in range(start, n, step):
        offs = s + tl.arange(0, BLOCK)
        mask = offs < n
        d = tl.load(a_ptr + offs, mask=mask, other=0.0).to(ACC) - tl.load(
            b_ptr + offs, mask=mask, other=0.0
        ).to(ACC)
        if P == 2:
            acc += d * d
        else:
            acc += tl.abs(d)
    total = tl.sum(acc, axis=0) * f64_arg(scale_hi, scale_lo, ACC)
    tl.store(part_ptr + part_off + pid, total)


@triton.jit
def _final_kernel(part_ptr, out_ptr, n, ACC: tl.constexpr, INTERP: tl.constexpr, BLOCK: tl.constexpr):
    acc = tl.zeros([BLOCK], dtype=ACC)
    for s in range(0, n, BLOCK):
        offs = s + tl.arange(0, BLOCK)
        acc += tl.load(part_ptr + offs, mask=offs < n, other=0.0)
    tl.store(out_ptr, to_out(tl.sum(acc, axis=0), out_ptr.dtype.element_ty, INTERP))


@triton.jit
def _backward_kernel(
    grad_ptr,
    a_ptr,
    b_ptr,
    ga_ptr,
    gb_ptr,
    n,
    c_hi,
    c_lo,
    P: tl.constexpr,
    NEED_A: tl.constexpr,
    NEED_B: tl.constexpr,
    ACC: tl.constexpr,
    INTERP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    c = tl.load(grad_ptr).to(ACC) * f64_arg(c_hi, c_lo, ACC)
    d = tl.load(a_ptr + offs, mask=mask, other=0.0).to(ACC) - tl.load(b_ptr + offs, mask=mask, other=0.0).to(
        ACC
    )
    if P == 2:
        g = c * (d + d)
    else:
        g = tl.where(d > 0, c, tl.where(d < 0, -c, d * 0.0))
    if NEED_A:
        tl.store(ga_ptr + offs, to_out(g, ga_ptr.dtype.element_ty, INTERP), mask=mask)
    if NEED_B:
        tl.store(gb_ptr + offs, to_out(-g, gb_ptr.dtype.element_ty, INTERP), mask=mask)


def _scales(a, reduction, weights):
    """w_k * s_k per layer (NaN for the mean of an empty layer)."""
    out = []
    for x, w in zip(a, weights):
        if reduction == "mean":
            n = int(x.numel())
            out.append(float(w) / n if n else float("nan"))
        else:
            out.append(float(w))
    return out


def _check_args(a, b, p, reduction, weights):
    if len(a) == 0 or len(a) != len(b) or len(weights) != len(a):
        raise ValueError(
            f"feature_regularizer: a, b and weights must have the same non-zero length, got "
            f"{len(a)}, {len(b)}, {len(weights)}"
        )
    if p not in (1, 2):
        raise ValueError(f"feature_regularizer: p must be 1 or 2, got {p}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"feature_regularizer: reduction must be 'mean' or 'sum', got {reduction!r}")


def _fake_fwd(a, b, p, reduction, weights):
    return a[0].new_empty(())


@op("feature_regularizer", _fake_fwd)
def _feature_regularizer(
    a: list[torch.Tensor], b: list[torch.Tensor], p: int, reduction: str, weights: list[float]
) -> torch.Tensor:
    _check_args(a, b, p, reduction, weights)
    dtype, device = a[0].dtype, a[0].device
    acc = acc_tl(dtype)
    layers = []
    for x, y in zip(a, b):
        keep = same_dense_layout(x, y)
        layers.append((x if keep else x.contiguous(), y if keep else y.contiguous()))
    progs = []
    for x, _ in layers:
        n = int(x.numel())
        block, _ = block_1d(n)
        progs.append(max(1, min(triton.cdiv(n, block), WAVES * num_sms(device))))
    partials = torch.empty(sum(progs), dtype=acc_torch(dtype), device=device)
    offset = 0
    for (x, y), nprog, scale in zip(layers, progs, _scales(a, reduction, weights)):
        n = int(x.numel())
        block, warps = block_1d(n)
        hi, lo = split_f64(scale)
        launch(_partial_kernel)[(nprog,)](
            x, y, partials, offset, n, hi, lo, P=p, ACC=acc, BLOCK=block, num_warps=warps
        )
        offset += nprog
    out = torch.empty((), dtype=dtype, device=device)
    block = min(triton.next_power_of_2(offset), 1024)
    launch(_final_kernel)[(1,)](partials, out, offset, ACC=acc, INTERP=INTERPRET, BLOCK=block, num_warps=4)
    return out


def _fake_bwd(grad, a, b, p, reduction, weights, need_a, need_b):
    ga = [empty_like_layout(x, same_dense_layout(x, y)) for x, y in zip(a, b)] if need_a else []
    gb = [empty_like_layout(x, same_dense_layout(x, y)) for x, y in zip(a, b)] if need_b else []
    return ga, gb


@op("feature_regularizer_backward", _fake_bwd)
def _feature_regularizer_backward(
    grad: torch.Tensor,
    a: list[torch.Tensor],
    b: list[torch.Tensor],
    p: int,
    reduction: str,
    weights: list[float],
    need_a: bool,
    need_b: bool,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    _check_args(a, b, p, reduction, weights)
    grad_a, grad_b = [], []
    for x, y, c in zip(a, b, _scales(a, reduction, weights)):
        keep = same_dense_layout(x, y)
        xc = x if keep else x.contiguous()
        yc = y if keep else y.contiguous()
        ga = empty_like_layout(xc, keep) if need_a else None
        gb = empty_like_layout(xc, keep) if need_b else None
        n = int(xc.numel())
        if n > 0 and (need_a or need_b):
            block, warps = block_1d(n)
            hi, lo = split_f64(c)
            launch(_backward_kernel)[(triton.cdiv(n, block),)](
                grad,
                xc,
                yc,
                ga if need_a else gb,
                gb if need_b else ga,
                n,
                hi,
                lo,
                P=p,
                NEED_A=need_a,
                NEED_B=need_b,
                ACC=acc_tl(xc.dtype),
                INTERP=INTERPRET,
                BLOCK=block,
                num_warps=warps,
            )
        if need_a:
            grad_a.append(ga)
        if need_b:
            grad_b.append(gb)
    return grad_a, grad_b


def _needs(flag) -> bool:
    """ctx.needs_input_grad entry of a Tensor[] argument is a list of bools."""
    return any(flag) if isinstance(flag, (list, tuple)) else bool(flag)


def _setup(ctx, inputs, output):
    a, b, p, reduction, weights = inputs
    ctx.p, ctx.reduction, ctx.weights, ctx.k = p, reduction, weights, len(a)
    ctx.save_for_backward(*a, *b)


def _backward(ctx, grad):
    saved = ctx.saved_tensors
    a, b = list(saved[: ctx.k]), list(saved[ctx.k :])
    need_a, need_b = _needs(ctx.needs_input_grad[0]), _needs(ctx.needs_input_grad[1])
    none = [None] * ctx.k  # autograd wants a list (of None) for a Tensor[] input
    if not (need_a or need_b):
        return none, none, None, None, None
    ga, gb = _feature_regularizer_backward(grad, a, b, ctx.p, ctx.reduction, ctx.weights, need_a, need_b)
    return (ga if need_a else none), (gb if need_b else none), None, None, None


def _setup_bwd(ctx, inputs, output):
    grad, a, b, p, reduction, weights, need_a, need_b = inputs
    ctx.p, ctx.reduction, ctx.weights, ctx.k = p, reduction, weights, len(a)
    ctx.need_a, ctx.need_b = need_a, need_b
    ctx.save_for_backward(grad, *a, *b)


def _backward_bwd(ctx, gg_a, gg_b):
    """Double backward in tensor ops. With m_k = gg_a_k - gg_b_k and c_k = w_k s_k:
    d grad = sum_k c_k <m_k, phi'(a_k - b_k)>; d a_k = -d b_k = grad c_k phi''(.) m_k (2 for p=2, 0 for
    p=1 almost everywhere)."""
    saved = ctx.saved_tensors
    grad, a, b = saved[0], saved[1 : 1 + ctx.k], saved[1 + ctx.k :]
    scales = _scales(a, ctx.reduction, ctx.weights)
    ms = []
    for k in range(ctx.k):
        m = None
        if ctx.need_a and gg_a is not None and gg_a[k] is not None:
            m = gg_a[k]
        if ctx.need_b and gg_b is not None and gg_b[k] is not None:
            m = -gg_b[k] if m is None else m - gg_b[k]
        ms.append(m)
    d_grad = None
    d_a, d_b = [None] * ctx.k, [None] * ctx.k
    if ctx.needs_input_grad[0]:
        total = torch.zeros((), dtype=acc_torch(grad.dtype), device=grad.device)
        for x, y, m, c in zip(a, b, ms, scales):
            if m is None or x.numel() == 0:
                continue
            d = x - y
            phi = 2 * d if ctx.p == 2 else torch.sign(d)
            total = total + c * (m * phi).sum(dtype=total.dtype)
        d_grad = total.to(grad.dtype)
    need_da, need_db = _needs(ctx.needs_input_grad[1]), _needs(ctx.needs_input_grad[2])
    if ctx.p == 2 and (need_da or need_db):
        da = []
        for x, m, c in zip(a, ms, scales):
            da.append(torch.zeros_like(x) if m is None else (2 * c) * grad * m)
        if need_da:
            d_a = da
        if need_db:
            d_b = [-t for t in da]
    return d_grad, d_a, d_b, None, None, None, None, None


_feature_regularizer.register_autograd(_backward, setup_context=_setup)
_feature_regularizer_backward.register_autograd(_backward_bwd, setup_context=_setup_bwd)


def feature_regularizer(a, b, p: int, reduction: str, weights, detach_b: bool):
    """``sum_k w_k R(|a_k - b_k|^p)`` on the Triton kernels; arguments validated by the caller
    (:func:`pygan.ops.feature_regularizer`)."""
    a = list(a)
    b = [y.detach() for y in b] if detach_b else list(b)
    return _feature_regularizer(a, b, int(p), reduction, [float(w) for w in weights])


def feature_regularizer_backward(grad, a, b, p, reduction, weights, need_a, need_b):
    return _feature_regularizer_backward(
        grad, list(a), list(b), int(p), reduction, list(weights), need_a, need_b
    )
