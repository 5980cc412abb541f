"""``residual_add``: ED//GAN's pixel-residual addition ``Î = I_ED + I_G`` (ED//GAN paper, Sec. 2.2, Eq. 8).

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

from pygan.ops import _backend, _check
from pygan.ops.residual_add import contract  # noqa: F401  (the native ops' fake kernels)
from pygan.ops.residual_add.reference import ACTIVATIONS, _activation, residual_add_ref

__all__ = ["ACTIVATIONS", "residual_add", "residual_add_ref"]

Tensor = torch.Tensor


def _triton_module():
    from pygan.ops.residual_add import triton  # imported on first use of backend="triton"

    return triton


# One signature for every backend: (base, residual, activation name, detach_base).
_backend.register_op("residual_add", reference=residual_add_ref, triton_module=_triton_module)


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
    return _backend.implementation("residual_add", device, (base,), backend)(base, residual, act, detach_base)
