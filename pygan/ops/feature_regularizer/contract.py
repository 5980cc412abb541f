"""The contract of the native ``pygan::feature_regularizer`` / ``feature_regularizer_backward`` ops
and of their Triton twins: fake (meta) kernels, registered here on the native ops and given to
``pygan_triton::`` in :mod:`pygan.ops.feature_regularizer.triton`, and the autograd formulas of the
Triton ops. The native ops' autograd is C++ (``csrc/autograd/feature_regularizer.cpp``): the same formulas.
"""

from __future__ import annotations

import torch

from pygan.ops._layout import empty_like_layout, same_dense_layout
from pygan.ops._registration import register_autograd_pair, register_native

__all__ = ["fake_feature_regularizer", "fake_feature_regularizer_backward", "register_autograd_rules"]


def fake_feature_regularizer(a, b, p, reduction, weights):
    return a[0].new_empty(())


def _fake_grads(a, b):
    return [empty_like_layout(x, same_dense_layout(x, y)) for x, y in zip(a, b)]


def fake_feature_regularizer_backward(grad, a, b, p, reduction, weights, need_a, need_b):
    return (_fake_grads(a, b) if need_a else []), (_fake_grads(a, b) if need_b else [])


def register_autograd_rules(fwd, bwd) -> None:
    """Registers the autograd formulas of ``feature_regularizer`` on the op ``fwd`` and of its
    backward on ``bwd`` (the Triton custom ops; the native ``pygan::`` ops' are C++, see above)."""

    def setup_context(ctx, inputs, output):
        a, b, p, reduction, weights = inputs
        ctx.p, ctx.reduction, ctx.weights = p, reduction, weights
        ctx.save_for_backward(*a, *b)

    def backward(ctx, grad):
        # needs_input_grad mirrors the inputs: one bool per tensor of `a` and of `b`.
        need_a, need_b = any(ctx.needs_input_grad[0]), any(ctx.needs_input_grad[1])
        saved = ctx.saved_tensors
        k = len(saved) // 2
        none = [None] * k  # autograd wants a list (of None) for a Tensor[] input
        if not (need_a or need_b):
            return none, none, None, None, None
        grad_a, grad_b = bwd(
            grad, list(saved[:k]), list(saved[k:]), ctx.p, ctx.reduction, ctx.weights, need_a, need_b
        )
        return (grad_a if need_a else none), (grad_b if need_b else none), None, None, None

    def setup_context_bwd(ctx, inputs, output):
        grad, a, b, p, reduction, weights, need_a, need_b = inputs
        ctx.p, ctx.reduction, ctx.weights = p, reduction, weights
        ctx.need_a, ctx.need_b = need_a, need_b
        ctx.save_for_backward(grad, *a, *b)
        # Missing incoming gradients stay None (no zero tensors materialised).
        ctx.set_materialize_grads(False)

    def backward_bwd(ctx, gg_a, gg_b):
        """Autograd of the backward op, in torch ops (so it is differentiable again).

        The op computes ``ga_k = grad * c_k * phi'(d_k)`` and ``gb_k = -ga_k`` with ``d_k = a_k - b_k``,
        ``c_k = w_k * s_k``. With ``u_k = gg_a[k] - gg_b[k]`` (a missing one counts as 0):
        ``d/d grad = sum_k c_k <phi'(d_k), u_k>`` (accumulated in float32, float64 for float64),
        ``d/d a_k = grad * c_k * phi''(d_k) * u_k`` and ``d/d b_k = -d/d a_k``; ``phi' = 2d, phi'' = 2``
        for p=2, ``phi' = sign(d), phi'' = 0`` for p=1.
        """
        saved = ctx.saved_tensors
        grad, rest = saved[0], saved[1:]
        k = len(rest) // 2
        a, b = rest[:k], rest[k:]
        gg_a = list(gg_a) if ctx.need_a and gg_a is not None else [None] * k
        gg_b = list(gg_b) if ctx.need_b and gg_b is not None else [None] * k
        need_grad, need_a, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        acc = torch.float64 if grad.dtype == torch.float64 else torch.float32
        d_grad = None
        d_a, d_b = [None] * k, [None] * k
        for i in range(k):
            ga, gb = gg_a[i], gg_b[i]
            if ga is None and gb is None:
                continue
            u = ga if gb is None else (-gb if ga is None else ga - gb)
            n = a[i].numel()
            c = ctx.weights[i] / n if ctx.reduction == "mean" and n else ctx.weights[i]
            if need_grad and n:
                d = a[i] - b[i]
                dphi = 2.0 * d if ctx.p == 2 else torch.sign(d)
                term = (dphi * u).sum(dtype=acc) * c
                d_grad = term if d_grad is None else d_grad + term
            if ctx.p == 2 and (need_a[i] or need_b[i]):
                da = (2.0 * c) * grad.to(u.dtype) * u
                if need_a[i]:
                    d_a[i] = da
                if need_b[i]:
                    d_b[i] = -da
        if d_grad is not None:
            d_grad = d_grad.to(grad.dtype)
        elif need_grad:
            d_grad = torch.zeros_like(grad)
        return d_grad, d_a, d_b, None, None, None, None, None

    register_autograd_pair(fwd, bwd, (backward, setup_context), (backward_bwd, setup_context_bwd))


register_native("feature_regularizer", fake_feature_regularizer, fake_feature_regularizer_backward)
