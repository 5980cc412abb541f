"""Pure-PyTorch reference of ``feature_regularizer`` (the ground truth every kernel matches) and the
argument checks every backend shares."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pygan.ops import _check

__all__ = ["REDUCTIONS", "feature_regularizer_ref"]

REDUCTIONS = ("mean", "sum")
_SEQ = (list, tuple)
Tensor = torch.Tensor


def _layers_fast(feats_a, feats_b) -> bool:
    """The common valid case of the layer lists, in a handful of attribute reads per layer: two
    lists/tuples of one length >= 1 of floating-point tensors, pairwise of one shape, all of one
    dtype and device. False sends the call through the full checks (which name what is wrong)."""
    if not (isinstance(feats_a, _SEQ) and isinstance(feats_b, _SEQ)):
        return False
    k = len(feats_a)
    if k == 0 or len(feats_b) != k:
        return False
    x0 = feats_a[0]
    if not isinstance(x0, Tensor):
        return False
    dt, dev = x0.dtype, x0.device
    if not dt.is_floating_point:
        return False
    for x, y in zip(feats_a, feats_b):
        if not (
            isinstance(x, Tensor)
            and isinstance(y, Tensor)
            and x.dtype is dt
            and y.dtype is dt
            and x.shape == y.shape
            and x.device == dev
            and y.device == dev
        ):
            return False
    return True


def _validate(feats_a, feats_b, p, reduction, weights, detach_b):
    if _layers_fast(feats_a, feats_b):
        a = feats_a if isinstance(feats_a, list) else list(feats_a)
        b = feats_b if isinstance(feats_b, list) else list(feats_b)
    else:
        a = _check.tensor_list("feats_a", feats_a)
        b = _check.tensor_list("feats_b", feats_b)
        if len(a) != len(b):
            raise ValueError(
                f"feats_a and feats_b must hold the same number of layers, got {len(a)} and {len(b)}"
            )
        for i, (x, y) in enumerate(zip(a, b)):
            _check.same(f"feats_a[{i}]", x, f"feats_b[{i}]", y)
            _check.same("feats_a[0]", a[0], f"feats_a[{i}]", x, shape=False)
    if isinstance(p, bool) or p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    _check.choice("reduction", reduction, REDUCTIONS)
    if weights is None:
        w = [1.0] * len(a)
    else:
        if isinstance(weights, torch.Tensor):
            # The schema takes float[]: a tensor is read to the host (a device sync on CUDA; pass
            # floats inside a captured CUDA-graph step).
            weights = weights.tolist()
        if not isinstance(weights, Sequence) or isinstance(weights, str):
            raise TypeError(f"weights must be a sequence of floats, got {type(weights).__name__}")
        if len(weights) != len(a):
            raise ValueError(f"weights must have one entry per layer ({len(a)}), got {len(weights)}")
        try:
            w = [float(x) for x in weights]
        except (TypeError, ValueError):
            raise TypeError(f"weights must be a sequence of floats, got {weights!r}") from None
    if not isinstance(detach_b, bool):
        raise TypeError(f"detach_b must be a bool, got {type(detach_b).__name__}")
    return a, b, int(p), w


def feature_regularizer_ref(
    feats_a,
    feats_b,
    p: int = 2,
    reduction: str = "mean",
    weights: Sequence[float] | None = None,
    detach_b: bool = False,
) -> torch.Tensor:
    """Pure-PyTorch reference of :func:`pygan.ops.feature_regularizer`."""
    a, b, p, w = _validate(feats_a, feats_b, p, reduction, weights, detach_b)
    if detach_b:
        b = [y.detach() for y in b]
    return _feature_regularizer(a, b, p, reduction, w)


def _feature_regularizer(a: list, b: list, p: int, reduction: str, w: list[float]) -> torch.Tensor:
    """The reference of the ``pygan::feature_regularizer`` schema, on arguments already checked
    (:func:`_validate`) and ``b`` already detached for ``detach_b``: the registered ``reference``
    backend (the public op has validated them)."""
    total = None
    for x, y, wk in zip(a, b, w):
        d = x - y
        term = d.square() if p == 2 else d.abs()
        term = term.mean() if reduction == "mean" else term.sum()
        term = term * wk
        total = term if total is None else total + term
    return total
