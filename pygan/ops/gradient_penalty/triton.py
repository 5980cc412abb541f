"""Triton kernels for the fused pieces of ``gradient_penalty``: ``interpolate`` and
``grad_norm_penalty`` (``torch.ops.pygan_triton.*`` with their backward ops).

Same contracts as the ``pygan::`` ops:

* ``interpolate(real, fake, alpha[B]) = real + alpha_b (fake - real)``, layout rule on
  ``{real, fake}`` (batch is outermost in every dense layout, so row b is storage
  ``[b*D, (b+1)*D)``); backward ``((1 - alpha_b) g, alpha_b g)``, an empty ``[0]`` tensor for a side
  not needed.
* ``grad_norm_penalty(grads, target, weight, one_sided) -> (penalty, norms)``: ``n_b = ||row b||_2``,
  ``penalty = weight * mean_b h(n_b - target)^2`` (h = identity, or max(0, .) one-sided), 0-dim in
  grads' dtype; ``norms`` float32 (float64 for float64); B = 0 gives NaN. Backward:
  ``c_b g_b`` with ``c_b = grad_penalty 2 weight h(n_b - t) / (B n_b) + grad_norms_b / n_b``,
  ``c_b = 0`` where ``n_b == 0``; its output follows the layout rule on ``grads``.

Kernels: elementwise ones walk the flat storage with the row ``offs // D``; the norm is a
deterministic two-stage reduction: programs over (row block, slice of the row) write partial sums of
squares, one program combines them per row (fixed order), takes the square root and reduces the
penalty. Scalars that must keep float64 precision travel as float32 pairs (see
:mod:`pygan.ops._triton_common`). Fake kernels and autograd are the C++ ops'
(:mod:`pygan.ops.gradient_penalty.contract`): the gradient for ``alpha`` (when it requires grad) in
tensor ops, and every backward made of these ops or tensor ops, so gradients of any order are exact
(double backward of ``grad_norm_penalty`` included).
"""

import torch
import triton
import triton.language as tl

from pygan.ops._layout import empty_like_layout
from pygan.ops._triton_common import (
    INTERPRET,
    acc_tl,
    acc_torch,
    dense,
    f64_arg,
    launch,
    launch_flat,
    num_sms,
    op,
    split_f64,
    to_out,
)
from pygan.ops.gradient_penalty.contract import (
    fake_grad_norm_penalty,
    fake_grad_norm_penalty_backward,
    fake_interpolate,
    fake_interpolate_backward,
    register_grad_norm_penalty_autograd,
    register_interpolate_autograd,
)

__all__ = ["grad_norm_penalty", "grad_norm_penalty_backward", "interpolate", "interpolate_backward"]

PROGRAMS_PER_SM = 4


def _rows(t: torch.Tensor) -> tuple[int, int]:
    # Plain ints: under torch.compile a symbolic size is specialized here (launch geometry).
    b = int(t.shape[0])
    return b, (int(t.numel()) // b if b else 0)


# ---- interpolate ------------------------------------------------------------------------------


@triton.jit
def _interp_fwd_kernel(
    real_ptr,
    fake_ptr,
    alpha_ptr,
    out_ptr,
    n,
    D,
    s_alpha,
    ACC: tl.constexpr,
    INTERP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(alpha_ptr + (offs // D) * s_alpha, mask=mask, other=0.0).to(ACC)
    r = tl.load(real_ptr + offs, mask=mask, other=0.0).to(ACC)
    f = tl.load(fake_ptr + offs, mask=mask, other=0.0).to(ACC)
    tl.store(out_ptr + offs, to_out(r + a * (f - r), out_ptr.dtype.element_ty, INTERP), mask=mask)


@triton.jit
def _interp_bwd_kernel(
    grad_ptr,
    alpha_ptr,
    gr_ptr,
    gf_ptr,
    n,
    D,
    s_alpha,
    NEED_R: tl.constexpr,
    NEED_F: tl.constexpr,
    ACC: tl.constexpr,
    INTERP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(alpha_ptr + (offs // D) * s_alpha, mask=mask, other=0.0).to(ACC)
    g = tl.load(grad_ptr + offs, mask=mask, other=0.0).to(ACC)
    if NEED_R:
        tl.store(gr_ptr + offs, to_out((1.0 - a) * g, gr_ptr.dtype.element_ty, INTERP), mask=mask)
    if NEED_F:
        tl.store(gf_ptr + offs, to_out(a * g, gf_ptr.dtype.element_ty, INTERP), mask=mask)


@op("interpolate", fake_interpolate)
def interpolate(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    keep, (r, f) = dense(real, fake)
    out = empty_like_layout(r, keep)
    n = int(out.numel())
    if n > 0:
        launch_flat(
            _interp_fwd_kernel, n, r, f, alpha, out, n, _rows(out)[1], alpha.stride(0), dtype=out.dtype
        )
    return out


@op("interpolate_backward", fake_interpolate_backward)
def interpolate_backward(
    grad: torch.Tensor, alpha: torch.Tensor, need_real: bool, need_fake: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    keep, (g,) = dense(grad)
    gr = empty_like_layout(g, keep) if need_real else grad.new_empty((0,))
    gf = empty_like_layout(g, keep) if need_fake else grad.new_empty((0,))
    n = int(g.numel())
    if n > 0 and (need_real or need_fake):
        launch_flat(
            _interp_bwd_kernel,
            n,
            g,
            alpha,
            gr if need_real else gf,
            gf if need_fake else gr,
            n,
            _rows(g)[1],
            alpha.stride(0),
            dtype=g.dtype,
            NEED_R=need_real,
            NEED_F=need_fake,
        )
    return gr, gf


register_interpolate_autograd(interpolate, interpolate_backward)


# ---- grad_norm_penalty --------------------------------------------------------------------------


@triton.jit
def _sumsq_kernel(
    g_ptr,
    part_ptr,
    B,
    D,
    cols_per_split,
    SPLIT: tl.constexpr,
    ACC: tl.constexpr,
    R: tl.constexpr,
    BD: tl.constexpr,
):
    """Program (row block, split): partial sums of squares of rows [pb*R, pb*R+R) over the columns
    [split*cols_per_split, ...), into part[row, split]."""
    rows = tl.program_id(0).to(tl.int64) * R + tl.arange(0, R)
    split = tl.program_id(1)
    rmask = rows < B
    c0 = split.to(tl.int64) * cols_per_split
    c1 = tl.minimum(c0 + cols_per_split, D)
    acc = tl.zeros([R, BD], dtype=ACC)
    for c in range(c0, c1, BD):
        cols = c + tl.arange(0, BD)
        m = rmask[:, None] & (cols < c1)[None, :]
        x = tl.load(g_ptr + rows[:, None] * D + cols[None, :], mask=m, other=0.0).to(ACC)
        acc += x * x
    tl.store(part_ptr + rows * SPLIT + split, tl.sum(acc, axis=1), mask=rmask)


@triton.jit
def _penalty_kernel(
    part_ptr,
    norms_ptr,
    pen_ptr,
    B,
    t_hi,
    t_lo,
    w_hi,
    w_lo,
    ONE_SIDED: tl.constexpr,
    SPLIT: tl.constexpr,
    ACC: tl.constexpr,
    INTERP: tl.constexpr,
    BB: tl.constexpr,
):
    target = f64_arg(t_hi, t_lo, ACC)
    acc = tl.zeros([BB], dtype=ACC)
    for b0 in range(0, B, BB):
        rows = b0 + tl.arange(0, BB)
        rmask = rows < B
        parts = tl.load(
            part_ptr + rows[:, None] * SPLIT + tl.arange(0, SPLIT)[None, :], mask=rmask[:, None], other=0.0
        )
        ss = tl.sum(parts, axis=1)
        if ACC == tl.float64:
            nb = tl.sqrt(ss)
        else:
            nb = tl.sqrt_rn(ss)  # correctly rounded (plain tl.sqrt is approximate in float32)
        tl.store(norms_ptr + rows, nb.to(norms_ptr.dtype.element_ty), mask=rmask)
        gap = nb - target
        if ONE_SIDED:
            gap = tl.maximum(gap, 0.0)
        acc += tl.where(rmask, gap * gap, 0.0)
    pen = f64_arg(w_hi, w_lo, ACC) * (tl.sum(acc, axis=0) / B)
    tl.store(pen_ptr, to_out(pen, pen_ptr.dtype.element_ty, INTERP))


@triton.jit
def _gnp_bwd_kernel(
    g_ptr,
    gp_ptr,
    gn_ptr,
    s_gn,
    norms_ptr,
    out_ptr,
    n,
    D,
    t_hi,
    t_lo,
    w_hi,
    w_lo,
    B,
    ONE_SIDED: tl.constexpr,
    ACC: tl.constexpr,
    INTERP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """out = c_b g with c_b = (gp 2 weight h(n_b - t) / B + gn_b) / n_b, 0 at n_b = 0."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    row = offs // D
    nb = tl.load(norms_ptr + row, mask=mask, other=1.0).to(ACC)
    gn = tl.load(gn_ptr + row * s_gn, mask=mask, other=0.0).to(ACC)
    gp = tl.load(gp_ptr).to(ACC)
    gap = nb - f64_arg(t_hi, t_lo, ACC)
    if ONE_SIDED:
        gap = tl.maximum(gap, 0.0)
    zero = nb == 0.0
    w = f64_arg(w_hi, w_lo, ACC)
    c = (gp * (w + w) * gap / B + gn) / tl.where(zero, 1.0, nb)
    c = tl.where(zero, 0.0, c)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(ACC)
    tl.store(out_ptr + offs, to_out(c * g, out_ptr.dtype.element_ty, INTERP), mask=mask)


def _split_rows(b: int, d: int, device) -> tuple[int, int, int, int]:
    """(R rows per program, BD columns per step, SPLIT slices per row, cols per slice)."""
    if INTERPRET:
        bd = min(max(triton.next_power_of_2(max(d, 1)), 16), 1 << 14)
        r = max(1, min((1 << 14) // bd, triton.next_power_of_2(max(b, 1))))
        return r, bd, 1, max(d, 1)
    bd = min(max(triton.next_power_of_2(max(d, 1)), 16), 2048)
    r = max(1, 2048 // bd)
    blocks = triton.cdiv(b, r)
    want = triton.cdiv(PROGRAMS_PER_SM * num_sms(device), blocks)
    split = max(1, min(triton.next_power_of_2(want), 64, triton.next_power_of_2(triton.cdiv(d, bd))))
    cols = triton.cdiv(triton.cdiv(d, split), bd) * bd
    return r, bd, split, max(cols, 1)


@op("grad_norm_penalty", fake_grad_norm_penalty)
def grad_norm_penalty(
    grads: torch.Tensor, target: float, weight: float, one_sided: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    _, (g,) = dense(grads)
    b, d = _rows(g)
    acc = acc_torch(g.dtype)
    norms = torch.empty((b,), dtype=acc, device=g.device)
    penalty = torch.empty((), dtype=g.dtype, device=g.device)
    if b == 0:
        return penalty.fill_(float("nan")), norms
    r, bd, split, cols = _split_rows(b, d, g.device)
    part = torch.empty((b, split), dtype=acc, device=g.device)
    launch(_sumsq_kernel)[(triton.cdiv(b, r), split)](
        g, part, b, d, cols, SPLIT=split, ACC=acc_tl(g.dtype), R=r, BD=bd, num_warps=4
    )
    bb = min(triton.next_power_of_2(b), 1024 // split if split <= 64 else 16)
    launch(_penalty_kernel)[(1,)](
        part,
        norms,
        penalty,
        b,
        *split_f64(target),
        *split_f64(weight),
        ONE_SIDED=one_sided,
        SPLIT=split,
        ACC=acc_tl(g.dtype),
        INTERP=INTERPRET,
        BB=max(bb, 1),
        num_warps=4,
    )
    return penalty, norms


@op("grad_norm_penalty_backward", fake_grad_norm_penalty_backward)
def grad_norm_penalty_backward(
    grad_penalty: torch.Tensor,
    grad_norms: torch.Tensor,
    grads: torch.Tensor,
    norms: torch.Tensor,
    target: float,
    weight: float,
    one_sided: bool,
) -> torch.Tensor:
    keep, (g,) = dense(grads)
    out = empty_like_layout(g, keep)
    n = int(g.numel())
    if n == 0:
        return out
    b, d = _rows(g)
    launch_flat(
        _gnp_bwd_kernel,
        n,
        g,
        grad_penalty,
        grad_norms,
        grad_norms.stride(0),
        norms.contiguous(),
        out,
        n,
        d,
        *split_f64(target),
        *split_f64(weight),
        b,
        dtype=g.dtype,
        ONE_SIDED=one_sided,
    )
    return out


# The op objects are what pygan.ops.interpolate / grad_norm_penalty call (arguments validated there:
# alpha as [B], float target and weight, bool one_sided).
register_grad_norm_penalty_autograd(grad_norm_penalty, grad_norm_penalty_backward)
