"""``residual_add``: ED//GAN's pixel-residual addition ``Î = I_ED + I_G`` (seed 000, Sec. 2.2, Eq. 8).

``out = act(base + residual)`` with ``act`` one of

* ``None`` (or ``"none"``) - the paper's plain sum (it states no clipping; Î lies in [-2, 2]);
* ``"tanh"``               - squash back to (-1, 1);
* ``"clamp"``              - ``F.hardtanh`` to [-1, 1]: the gradient is 1 strictly inside and 0 at
  and beyond the bounds (hardtanh's convention; ``torch.clamp`` would pass it at exactly ±1). This
  makes the backward a function of the saved output alone.

``detach_base=True`` (the default, ED//GAN's G update: "treat I_ED as a constant in Î") sends no
gradient to ``base``; ``residual`` always receives one.

The fused kernel reads each input once and writes once; the backward reads the incoming gradient
and (for tanh/clamp) the saved output, and writes one gradient shared by both inputs. Double
backward is supported (a residual block can sit inside a critic that a gradient penalty
differentiates twice): the backward is itself a registered op with its own autograd formula.

Without an activation there is nothing to fuse: the op is one add, which torch's own add does in the
same single pass (and its backward passes the gradient through, as the kernel's does). So the
default (no ``backend=``, no ``PYGAN_BACKEND``) runs ``base.detach() + residual`` (``base +
residual`` without ``detach_base``) on every device: an op call's fixed cost (argument checks, the
dispatcher's boxed call from Python, the graph node) is then not paid for nothing, and at the models'
tiny sizes it would show (``bench/overhead.py``; pygan issue 13). A named backend (``"cpp"``,
``"cuda"``, ``"triton"``) runs its kernel for every activation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pygan import _ext
from pygan.ops import _backend, _check
from pygan.ops._layout import empty_like_layout, same_dense_layout
from pygan.ops._registration import register_autograd_pair, register_native

__all__ = ["ACTIVATIONS", "residual_add", "residual_add_ref"]

ACTIVATIONS = (None, "none", "tanh", "clamp")
_ACT_NAME = {None: "none", "none": "none", "tanh": "tanh", "clamp": "clamp"}


def _activation(activation) -> str:
    try:
        return _ACT_NAME[activation]
    except (KeyError, TypeError):  # TypeError: unhashable
        _check.choice("activation", activation, ACTIVATIONS)
        raise


# The native op, looked up once (None without the C++ library: every call then runs the reference).
_OP = torch.ops.pygan.residual_add.default if _ext.native_loaded() else None
_NATIVE = ("cpp", "cuda")
Tensor = torch.Tensor


def residual_add_ref(
    base: torch.Tensor, residual: torch.Tensor, activation: str | None = None, detach_base: bool = True
) -> torch.Tensor:
    """Pure-PyTorch reference of :func:`residual_add` (the ground truth every kernel matches)."""
    act = _activation(activation)
    x = (base.detach() if detach_base else base) + residual
    if act == "tanh":
        return torch.tanh(x)
    if act == "clamp":
        return F.hardtanh(x, -1.0, 1.0)
    return x


def residual_add(
    base: torch.Tensor,
    residual: torch.Tensor,
    activation: str | None = None,
    detach_base: bool = True,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """``act(base + residual)`` in one fused pass; see the module docstring.

    Args:
        base: ``I_ED``, any shape, floating point.
        residual: ``I_G``, same shape, dtype and device as ``base``.
        activation: ``None``/``"none"``, ``"tanh"`` or ``"clamp"``.
        detach_base: when True no gradient reaches ``base``.
        backend: ``"reference"``, ``"cpp"``, ``"cuda"`` or ``"triton"``; default from
            ``PYGAN_BACKEND`` or the device (see :mod:`pygan.ops._backend`).
    """
    # The checks of _check.pair inlined (this op's plain form is one add: every 0.1 us shows).
    if not (
        isinstance(base, Tensor)
        and isinstance(residual, Tensor)
        and (dtype := base.dtype) is residual.dtype
        and dtype.is_floating_point
        and base.shape == residual.shape
        and (device := base.device) == residual.device
    ):
        _check.pair("base", base, "residual", residual)  # raises, naming the argument
        device = base.device
    act = _activation(activation)
    if not isinstance(detach_base, bool):
        raise TypeError(f"detach_base must be a bool, got {type(detach_base).__name__}")
    if act == "none" and not _backend.named(backend):
        return (base.detach() if detach_base else base) + residual
    impl = _backend.resolve("residual_add", device, (base,), backend)
    if impl in _NATIVE:
        return _OP(base, residual, act, detach_base)
    if impl == "reference":
        return residual_add_ref(base, residual, act, detach_base)
    from pygan.ops._triton import residual as _tk

    return _tk.residual_add(base, residual, act, detach_base)


# ---- fake kernels (native and Triton ops) and the Triton ops' autograd ---------------------------
# (csrc/autograd.cpp holds the native ops' autograd: the same formulas, in C++.)
# (pygan/ops/_triton/residual.py registers the same functions on pygan_triton::residual_add.)


def fake_residual_add(base, residual, activation, detach_base):
    return empty_like_layout(base, same_dense_layout(base, residual))


def fake_residual_add_backward(grad, out, activation):
    return empty_like_layout(out, same_dense_layout(out, grad))


def register_autograd_rules(fwd, bwd) -> None:
    """Registers the autograd formulas of ``residual_add`` on the op ``fwd`` and of its backward on
    ``bwd`` (the Triton custom ops; the native ``pygan::`` ops' are in csrc/autograd.cpp). The backward calls
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
