"""The contract of the native ``pygan::residual_add`` / ``residual_add_backward`` ops and of their
Triton twins: fake (meta) kernels, registered here on the native ops and given to
``pygan_triton::`` in :mod:`pygan.ops.residual_add.triton`, and the autograd formulas of the Triton
ops. The native ops' autograd is C++ (``csrc/autograd/residual_add.cpp``): the same formulas.

Layout: operands with one dense layout (contiguous / channels_last / channels_last_3d, equal strides)
give an output of that layout; otherwise a contiguous one (:mod:`pygan.ops._layout`).
"""

from __future__ import annotations

from pygan.ops._layout import empty_like_layout, same_dense_layout
from pygan.ops._registration import register_autograd_pair, register_native

__all__ = ["fake_residual_add", "fake_residual_add_backward", "register_autograd_rules"]


def fake_residual_add(base, residual, activation, detach_base):
    return empty_like_layout(base, same_dense_layout(base, residual))


def fake_residual_add_backward(grad, out, activation):
    return empty_like_layout(out, same_dense_layout(out, grad))


def register_autograd_rules(fwd, bwd) -> None:
    """Registers the autograd formulas of ``residual_add`` on the op ``fwd`` and of its backward on
    ``bwd`` (the Triton custom ops; the native ``pygan::`` ops' are C++, see above). The backward calls
    ``bwd``, whose own formula calls ``bwd`` again, so gradients of any order go through the kernel."""

    def setup_context(ctx, inputs, output):
        _, _, activation, detach_base = inputs
        ctx.activation = activation
        ctx.detach_base = detach_base
        ctx.save_for_backward(output if activation != "none" else None)

    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        g = grad if ctx.activation == "none" else bwd(grad, out, ctx.activation)
        return (None if ctx.detach_base else g), g, None, None

    def setup_context_bwd(ctx, inputs, output):
        grad, out, activation = inputs
        ctx.activation = activation
        ctx.save_for_backward(grad, out)

    def backward_bwd(ctx, gg):
        # d/d grad of grad * act'(out) is act'(out): the same op on gg.
        # d/d out: tanh' = 1 - out^2 gives -2 * out * grad; hardtanh' is piecewise constant, so 0.
        grad, out = ctx.saved_tensors
        d_grad = d_out = None
        if ctx.needs_input_grad[0]:
            d_grad = bwd(gg, out, ctx.activation)
        if ctx.needs_input_grad[1] and ctx.activation == "tanh":
            d_out = -2.0 * gg * grad * out
        return d_grad, d_out, None

    register_autograd_pair(fwd, bwd, (backward, setup_context), (backward_bwd, setup_context_bwd))


register_native("residual_add", fake_residual_add, fake_residual_add_backward)
