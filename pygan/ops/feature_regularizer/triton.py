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
Fake kernels and autograd (double backward included, in tensor ops: the backward is linear in the
gradient and, for p=2, in ``a - b``) are the C++ op's (:mod:`pygan.ops.feature_regularizer.contract`).
"""

import torch
import triton
import triton.language as tl

from pygan.ops._layout import empty_like_layout
from pygan.ops._triton_common import (
    INTERPRET,
    acc_tl,
    acc_torch,
    block_1d,
    dense,
    f64_arg,
    launch,
    launch_flat,
    num_sms,
    op,
    split_f64,
    to_out,
)
from pygan.ops.feature_regularizer.contract import (
    fake_feature_regularizer,
    fake_feature_regularizer_backward,
    register_autograd_rules,
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


@op("feature_regularizer", fake_feature_regularizer)
def feature_regularizer(
    a: list[torch.Tensor], b: list[torch.Tensor], p: int, reduction: str, weights: list[float]
) -> torch.Tensor:
    _check_args(a, b, p, reduction, weights)
    dtype, device = a[0].dtype, a[0].device
    acc = acc_tl(dtype)
    layers = [dense(x, y)[1] for x, y in zip(a, b)]
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


@op("feature_regularizer_backward", fake_feature_regularizer_backward)
def feature_regularizer_backward(
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
        keep, (xc, yc) = dense(x, y)
        ga = empty_like_layout(xc, keep) if need_a else None
        gb = empty_like_layout(xc, keep) if need_b else None
        n = int(xc.numel())
        if n > 0 and (need_a or need_b):
            launch_flat(
                _backward_kernel,
                n,
                grad,
                xc,
                yc,
                ga if need_a else gb,
                gb if need_b else ga,
                n,
                *split_f64(c),
                dtype=xc.dtype,
                P=p,
                NEED_A=need_a,
                NEED_B=need_b,
            )
        if need_a:
            grad_a.append(ga)
        if need_b:
            grad_b.append(gb)
    return grad_a, grad_b


# The op objects are what pygan.ops.feature_regularizer calls (arguments validated, lists, int p,
# float weights, and ``b`` detached for ``detach_b`` there).
register_autograd_rules(feature_regularizer, feature_regularizer_backward)
