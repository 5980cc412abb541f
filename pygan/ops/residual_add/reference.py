"""Pure-PyTorch reference of ``residual_add`` (the ground truth every kernel matches) and its
activation argument's check."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pygan.ops import _check

__all__ = ["ACTIVATIONS", "residual_add_ref"]

ACTIVATIONS = (None, "none", "tanh", "clamp")
_ACT_NAME = {None: "none", "none": "none", "tanh": "tanh", "clamp": "clamp"}


def _activation(activation) -> str:
    """The kernels' name of ``activation`` (``None`` -> ``"none"``); ValueError naming the argument."""
    try:
        return _ACT_NAME[activation]
    except (KeyError, TypeError):  # TypeError: unhashable
        _check.choice("activation", activation, ACTIVATIONS)
        raise


def residual_add_ref(
    base: torch.Tensor, residual: torch.Tensor, activation: str | None = None, detach_base: bool = True
) -> torch.Tensor:
    """Pure-PyTorch reference of :func:`pygan.ops.residual_add`."""
    act = _activation(activation)
    x = (base.detach() if detach_base else base) + residual
    if act == "tanh":
        return torch.tanh(x)
    if act == "clamp":
        return F.hardtanh(x, -1.0, 1.0)
    return x
