"""The contract of the native ``pygan::interpolate`` / ``grad_norm_penalty`` ops (and their
``_backward`` ops) and of their Triton twins: fake (meta) kernels, registered here on the native ops
and given to ``pygan_triton::`` in :mod:`pygan.ops.gradient_penalty.triton`, and the autograd
formulas of the Triton ops. The native ops' autograd is C++ (``csrc/autograd/gradient_penalty.cpp``): the same
formulas.
"""

from __future__ import annotations

import torch

from pygan.ops._layout import empty_like_layout, same_dense_layout
from pygan.ops._registration import register_autograd_pair, register_native

__all__ = [
    "fake_grad_norm_penalty",
    "fake_grad_norm_penalty_backward",
    "fake_interpolate",
    "fake_interpolate_backward",
    "register_grad_norm_penalty_autograd",
    "register_interpolate_autograd",
]


def _norm_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _row_sum(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Sum over every non-batch dim: ``[B, ...] -> [B]`` (rank 1: the tensor itself)."""
    if t.dim() == 1:
        return t if dtype is None else t.to(dtype)
    return t.sum(dim=tuple(range(1, t.dim())), dtype=dtype)


def fake_interpolate(real, fake, alpha):
    return empty_like_layout(real, same_dense_layout(real, fake))


def fake_interpolate_backward(grad, alpha, need_real, need_fake):
    keep = same_dense_layout(grad)
    gr = empty_like_layout(grad, keep) if need_real else grad.new_empty((0,))
    gf = empty_like_layout(grad, keep) if need_fake else grad.new_empty((0,))
    return gr, gf


def fake_grad_norm_penalty(grads, target, weight, one_sided):
    penalty = grads.new_empty(())
    norms = grads.new_empty((grads.shape[0],), dtype=_norm_dtype(grads.dtype))
    return penalty, norms


def fake_grad_norm_penalty_backward(grad_penalty, grad_norms, grads, norms, target, weight, one_sided):
    return empty_like_layout(grads, same_dense_layout(grads))


def register_interpolate_autograd(fwd, bwd) -> None:
    """Registers the autograd formulas of ``interpolate`` on the op ``fwd`` and of its backward on
    ``bwd`` (the Triton custom ops; the native ``pygan::`` ops' are C++, see above). Every backward is
    made of these ops (or torch ops), so gradients of any order are exact.

    ``out = real + alpha_b (fake - real)``: ``d real = (1 - alpha_b) g`` and ``d fake = alpha_b g`` in
    one call of ``bwd``; ``d alpha_b = sum over the row of g (fake - real)`` in torch ops, only when
    alpha requires grad (``real`` and ``fake`` are saved only then)."""

    def setup_context(ctx, inputs, output):
        real, fake, alpha = inputs
        ctx.need_alpha = ctx.needs_input_grad[2]
        ctx.save_for_backward(alpha, real if ctx.need_alpha else None, fake if ctx.need_alpha else None)

    def backward(ctx, grad):
        alpha, real, fake = ctx.saved_tensors
        need_real, need_fake = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        d_real = d_fake = d_alpha = None
        if need_real or need_fake:
            gr, gf = bwd(grad, alpha, need_real, need_fake)
            d_real = gr if need_real else None
            d_fake = gf if need_fake else None
        if ctx.need_alpha:
            d_alpha = _row_sum(grad * (fake - real))
        return d_real, d_fake, d_alpha

    # interpolate_backward: (gr, gf) = ((1 - alpha_b) g, alpha_b g), linear in g and in alpha.
    def setup_context_bwd(ctx, inputs, output):
        grad, alpha, need_real, need_fake = inputs
        ctx.need_real, ctx.need_fake = need_real, need_fake
        ctx.save_for_backward(grad if ctx.needs_input_grad[1] else None, alpha)

    def backward_bwd(ctx, ggr, ggf):
        grad, alpha = ctx.saved_tensors
        # Outputs that were not requested are empty [0] tensors: their incoming gradient is ignored.
        ggr = ggr if ctx.need_real else None
        ggf = ggf if ctx.need_fake else None
        d_grad = d_alpha = None
        if ctx.needs_input_grad[0]:
            # d/dg of (1 - a) g . ggr + a g . ggf  =  ggr + a (ggf - ggr): interpolate itself.
            if ggr is not None and ggf is not None:
                d_grad = fwd(ggr, ggf, alpha)
            elif ggr is not None:
                d_grad = bwd(ggr, alpha, True, False)[0]
            elif ggf is not None:
                d_grad = bwd(ggf, alpha, False, True)[1]
        if ctx.needs_input_grad[1]:
            d_alpha = torch.zeros_like(alpha)
            if ggf is not None:
                d_alpha = d_alpha + _row_sum(grad * ggf)
            if ggr is not None:
                d_alpha = d_alpha - _row_sum(grad * ggr)
        return d_grad, d_alpha, None, None

    register_autograd_pair(fwd, bwd, (backward, setup_context), (backward_bwd, setup_context_bwd))


def register_grad_norm_penalty_autograd(fwd, bwd) -> None:
    """Registers the autograd formulas of ``grad_norm_penalty`` (outputs ``(penalty, norms)``) on the
    op ``fwd`` and of its backward on ``bwd`` (op handles as for
    :func:`register_interpolate_autograd`). The backward op's formula calls it again and torch ops,
    so gradients of any order are exact (``gradgradcheck`` passes on every backend)."""

    def setup_context(ctx, inputs, output):
        grads, target, weight, one_sided = inputs
        ctx.args = (target, weight, one_sided)
        ctx.save_for_backward(grads, output[1])

    def backward(ctx, grad_penalty, grad_norms):
        grads, norms = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        if grad_penalty is None:
            grad_penalty = torch.zeros((), dtype=grads.dtype, device=grads.device)
        if grad_norms is None:
            grad_norms = torch.zeros_like(norms)
        return bwd(grad_penalty, grad_norms, grads, norms, *ctx.args), None, None, None

    # grad_norm_penalty_backward: out_b = c_b(gp, gn, n) * g_b with
    #   c_b = gp * 2w h(n_b - t) / (B n_b) + gn_b / n_b   (0 where n_b == 0).
    def setup_context_bwd(ctx, inputs, output):
        grad_penalty, grad_norms, grads, norms, target, weight, one_sided = inputs
        ctx.args = (target, weight, one_sided)
        ctx.save_for_backward(grad_penalty, grad_norms, grads, norms)

    def backward_bwd(ctx, gg):
        grad_penalty, grad_norms, grads, norms = ctx.saved_tensors
        target, weight, one_sided = ctx.args
        need_gp, need_gn, need_g, need_n = ctx.needs_input_grad[:4]
        d_gp = d_gn = d_g = d_n = None
        if need_g:
            # c does not depend on g: d/dg = c * gg, the same op applied to gg.
            d_g = bwd(grad_penalty, grad_norms, gg, norms, target, weight, one_sided)
        if need_gp or need_gn or need_n:
            b = grads.shape[0]
            # s_b = <gg_b, g_b>, then the chain through c_b (every factor 0 where n_b == 0).
            s = _row_sum(gg * grads, dtype=norms.dtype)
            zero = norms == 0
            n = torch.where(zero, torch.ones_like(norms), norms)
            gap = norms - target
            h = gap.clamp_min(0) if one_sided else gap
            scale = 2.0 * weight / max(b, 1)
            if need_gp:
                d_gp = (s * torch.where(zero, 0.0, scale * h / n)).sum().to(grad_penalty.dtype)
            if need_gn:
                d_gn = torch.where(zero, 0.0, s / n).to(grad_norms.dtype)
            if need_n:
                dh = (gap >= 0).to(norms.dtype) if one_sided else torch.ones_like(norms)
                dc_dn = (
                    grad_penalty.to(norms.dtype) * scale * (dh * n - h) / n.square() - grad_norms / n.square()
                )
                d_n = torch.where(zero, 0.0, s * dc_dn)
        return d_gp, d_gn, d_g, d_n, None, None, None

    register_autograd_pair(fwd, bwd, (backward, setup_context), (backward_bwd, setup_context_bwd))


register_native("interpolate", fake_interpolate, fake_interpolate_backward)
register_native("grad_norm_penalty", fake_grad_norm_penalty, fake_grad_norm_penalty_backward)
