"""The contract of the native ``pygan::gram_diff`` / ``gram_diff_backward`` ops and of their Triton
twins: fake (meta) kernels, registered here on the native ops and given to ``pygan_triton::`` in
:mod:`pygan.ops.style_loss.triton`, and the autograd formulas of the Triton ops. The native ops'
autograd is C++ (``csrc/autograd/style_loss.cpp``): the same formulas.
"""

from __future__ import annotations

import torch

from pygan.ops._registration import register_autograd_pair, register_native
from pygan.ops.style_loss.reference import _norm

__all__ = ["fake_gram_diff", "fake_gram_diff_backward", "register_autograd_rules"]


def fake_gram_diff(fx, fy, normalize):
    torch._check(fx.dim() in (3, 4), lambda: f"gram_diff: fx must be 3-D or 4-D, got {fx.dim()}-D")
    return fx.new_empty((fx.shape[0], fx.shape[1], fx.shape[1]))


def fake_gram_diff_backward(grad, fx, fy, normalize, need_x, need_y):
    gx = fx.new_empty(fx.shape) if need_x else fx.new_empty((0,))
    gy = fx.new_empty(fx.shape) if need_y and fy is not None else fx.new_empty((0,))
    return gx, gy


def register_autograd_rules(fwd, bwd) -> None:
    """Registers the autograd formulas of ``gram_diff`` on the op ``fwd`` and of its backward on
    ``bwd`` (the Triton custom ops; the native ``pygan::`` ops' are C++, see above). The backward op
    has its own formula, which calls it again, so double backward through a style loss is exact."""

    def setup_context(ctx, inputs, output):
        fx, fy, normalize = inputs
        ctx.normalize = normalize
        ctx.save_for_backward(fx, fy)

    def backward(ctx, grad):
        # grad is dL/dD; with style_loss it is 2 D s / (B C^2) (s = 1 for "sum"), formed by autograd
        # from the saved difference D. The op turns it into the feature gradients in one pass.
        fx, fy = ctx.saved_tensors
        need_x = ctx.needs_input_grad[0]
        need_y = fy is not None and ctx.needs_input_grad[1]
        if not (need_x or need_y):
            return None, None, None
        gx, gy = bwd(grad, fx, fy, ctx.normalize, need_x, need_y)
        return (gx if need_x else None), (gy if need_y else None), None

    def setup_context_bwd(ctx, inputs, output):
        grad, fx, fy, normalize, need_x, need_y = inputs
        ctx.normalize = normalize
        ctx.need_x = need_x
        ctx.need_y = need_y and fy is not None
        ctx.save_for_backward(grad, fx, fy)

    def backward_bwd(ctx, gg_x, gg_y):
        """Double backward. The backward is bilinear in (grad, features): with S = grad + grad^T and
        n the norm, (gx, gy) = (S Fx / n, -S Fy / n), so for incoming gg_x, gg_y

            d/d grad = (gg_x Fx^T + Fx gg_x^T - gg_y Fy^T - Fy gg_y^T) / n
            d/d Fx   =  S gg_x / n        d/d Fy = -S gg_y / n

        The last two are the backward op itself (differentiable again, to any order); the first is
        formed from torch ops. An output that was not computed (need_x/need_y false: an empty tensor)
        contributes nothing."""
        grad, fx, fy = ctx.saved_tensors
        use_x = ctx.need_x and gg_x is not None
        use_y = ctx.need_y and gg_y is not None
        d_grad = d_fx = d_fy = None
        if ctx.needs_input_grad[0] and (use_x or use_y):
            p = None
            if use_x:
                p = torch.bmm(gg_x.flatten(2), fx.flatten(2).transpose(1, 2))
            if use_y:
                q = torch.bmm(gg_y.flatten(2), fy.flatten(2).transpose(1, 2))
                p = -q if p is None else p - q
            d_grad = (p + p.transpose(1, 2)) / _norm(fx, ctx.normalize)
        want_x = use_x and ctx.needs_input_grad[1]
        want_y = use_y and ctx.needs_input_grad[2]
        if want_x or want_y:
            # fx's slot only carries the shape when want_x is false (its values are then not read).
            a, b = bwd(grad, gg_x if want_x else fx, gg_y if want_y else None, ctx.normalize, want_x, want_y)
            d_fx = a if want_x else None
            d_fy = b if want_y else None
        return d_grad, d_fx, d_fy, None, None, None

    register_autograd_pair(fwd, bwd, (backward, setup_context), (backward_bwd, setup_context_bwd))


register_native("gram_diff", fake_gram_diff, fake_gram_diff_backward)
