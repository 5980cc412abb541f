"""Pure-PyTorch references of ``gram_matrix`` and ``style_loss`` (``bmm`` based, as users write
them; the ground truth every kernel matches), the Gram's norm every backend uses, and the argument
checks they share."""

from __future__ import annotations

from collections.abc import Callable

import torch

from pygan.ops import _check

__all__ = ["NORMALIZE", "REDUCTIONS", "gram_diff_ref", "gram_matrix_ref", "gram_norm", "style_loss_ref"]

NORMALIZE = ("chw", "hw")
REDUCTIONS = ("mean", "sum")


def gram_norm(c: int, k: int, normalize: str) -> int:
    """The Gram's divisor: C*K ("chw") or K ("hw"), K = H*W (or N); at least 1, so that an empty
    feature map (K = 0) has an all-zero Gram (an empty sum) rather than 0/0. Every backend uses it."""
    return max(c * k if normalize == "chw" else k, 1)


def _norm(f: torch.Tensor, normalize: str) -> int:
    k = 1
    for s in f.shape[2:]:
        k *= s
    return gram_norm(f.shape[1], k, normalize)


def _validate_features(name: str, f) -> torch.Tensor:
    if isinstance(f, torch.Tensor) and f.dtype.is_floating_point and 3 <= f.dim() <= 4:
        return f
    return _check.tensor(name, f, ndim=(3, 4))


def _split_target(fx: torch.Tensor, target, target_is_gram):
    """Returns (fy, gram): exactly one is a tensor."""
    _check.tensor("target", target)
    if target_is_gram is None:
        c = fx.shape[1]
        target_is_gram = target.shape != fx.shape and target.dim() in (2, 3) and target.shape[-2:] == (c, c)
    elif not isinstance(target_is_gram, bool):
        raise TypeError(f"target_is_gram must be a bool or None, got {type(target_is_gram).__name__}")
    if target_is_gram:
        c = fx.shape[1]
        if target.dim() not in (2, 3) or target.shape[-2:] != (c, c):
            raise ValueError(
                f"target (a Gram) must have shape [C, C] or [B, C, C] with C={c}, got {tuple(target.shape)}"
            )
        if target.dim() == 3 and target.shape[0] != fx.shape[0]:
            raise ValueError(f"target (a Gram) must have batch {fx.shape[0]} like fx, got {target.shape[0]}")
        _check.same("fx", fx, "target", target, shape=False)
        return None, target
    _validate_features("target", target)
    _check.same("fx", fx, "target", target)
    return target, None


def gram_matrix_ref(f: torch.Tensor, normalize: str = "chw") -> torch.Tensor:
    """Pure-PyTorch reference of :func:`pygan.ops.gram_matrix` (``bmm`` based, as users write it)."""
    _validate_features("f", f)
    _check.choice("normalize", normalize, NORMALIZE)
    return _gram(f, normalize)


def _gram(f: torch.Tensor, normalize: str) -> torch.Tensor:
    """:func:`gram_matrix_ref` on arguments already checked."""
    F = f.flatten(2)
    return torch.bmm(F, F.transpose(1, 2)) / _norm(f, normalize)


def style_loss_ref(
    fx: torch.Tensor,
    target: torch.Tensor,
    normalize: str = "chw",
    reduction: str = "mean",
    *,
    target_is_gram: bool | None = None,
) -> torch.Tensor:
    """Pure-PyTorch reference of :func:`pygan.ops.style_loss`: two ``bmm`` Grams and their squared
    difference."""
    return _style_loss(fx, target, normalize, reduction, target_is_gram, gram_diff_ref)


def _style_loss(
    fx: torch.Tensor,
    target: torch.Tensor,
    normalize: str,
    reduction: str,
    target_is_gram: bool | None,
    gram_diff_of: Callable[[torch.Tensor, torch.Tensor | None, str], torch.Tensor],
) -> torch.Tensor:
    """:func:`pygan.ops.style_loss` and its reference, but for the Gram difference: the arguments
    checked, then ``gram_diff_of(fx, fy, normalize)`` (the ``pygan::gram_diff`` schema: ``G(fx) -
    G(fy)``, ``G(fx)`` for ``fy`` None; called only once the arguments are valid), less a Gram
    target, squared and reduced."""
    _validate_features("fx", fx)
    _check.choice("normalize", normalize, NORMALIZE)
    _check.choice("reduction", reduction, REDUCTIONS)
    fy, gram = _split_target(fx, target, target_is_gram)
    d = gram_diff_of(fx, fy, normalize)
    if gram is not None:
        d = d - gram
    return d.square().mean() if reduction == "mean" else d.square().sum()


def gram_diff_ref(fx: torch.Tensor, fy: torch.Tensor | None, normalize: str) -> torch.Tensor:
    """The reference of the ``pygan::gram_diff`` schema: ``G(fx) - G(fy)``, or ``G(fx)`` when ``fy``
    is None (arguments validated by the caller, and not again here)."""
    gx = _gram(fx, normalize)
    return gx if fy is None else gx - _gram(fy, normalize)
