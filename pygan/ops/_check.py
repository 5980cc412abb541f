"""Argument validation shared by every op: clear errors that name the argument, raised before any
kernel runs. Type problems (not a tensor, non-floating dtype, dtype mismatch) raise ``TypeError``;
shape, rank, device and value problems raise ``ValueError``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

__all__ = ["choice", "pair", "same", "tensor", "tensor_list"]

Tensor = torch.Tensor


def tensor(name: str, x, *, ndim: Iterable[int] | None = None, min_ndim: int | None = None) -> torch.Tensor:
    """``x`` must be a floating-point tensor (of one of the ranks ``ndim``, or at least ``min_ndim``)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None:
        ndim = tuple(ndim)
        if x.dim() not in ndim:
            want = " or ".join(str(n) for n in ndim)
            raise ValueError(f"{name} must be a {want}-D tensor, got shape {tuple(x.shape)}")
    if min_ndim is not None and x.dim() < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {tuple(x.shape)}")
    return x


def same(
    name_a: str,
    a: torch.Tensor,
    name_b: str,
    b: torch.Tensor,
    *,
    shape: bool = True,
    dtype: bool = True,
    device: bool = True,
) -> None:
    """``a`` and ``b`` must agree in shape, dtype and device (each check optional)."""
    if device and a.device != b.device:
        raise ValueError(f"{name_a} and {name_b} must be on the same device, got {a.device} and {b.device}")
    if dtype and a.dtype != b.dtype:
        raise TypeError(f"{name_a} and {name_b} must have the same dtype, got {a.dtype} and {b.dtype}")
    if shape and a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def pair(name_a: str, a, name_b: str, b, *, min_ndim: int = 0) -> None:
    """``a`` and ``b`` must be floating-point tensors of one shape, dtype and device (and at least
    ``min_ndim`` dimensions): :func:`tensor` on each and :func:`same`, with a fast path for the valid
    case (a handful of attribute reads; the full checks run, and raise, only when it fails)."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        dt = a.dtype
        if (
            dt is b.dtype
            and dt.is_floating_point
            and a.shape == b.shape
            and a.device == b.device
            and a.dim() >= min_ndim
        ):
            return
    tensor(name_a, a, min_ndim=min_ndim or None)
    tensor(name_b, b, min_ndim=min_ndim or None)
    same(name_a, a, name_b, b)


def tensor_list(name: str, xs, *, min_len: int = 1) -> list[torch.Tensor]:
    """``xs`` must be a list/tuple of floating-point tensors (a single tensor is accepted as one item)."""
    if isinstance(xs, torch.Tensor):
        xs = [xs]
    if not isinstance(xs, Sequence) or isinstance(xs, str):
        raise TypeError(f"{name} must be a tensor or a list/tuple of tensors, got {type(xs).__name__}")
    if len(xs) < min_len:
        raise ValueError(f"{name} must hold at least {min_len} tensor(s), got {len(xs)}")
    return [tensor(f"{name}[{i}]", x) for i, x in enumerate(xs)]


def choice(name: str, value, choices: Sequence):
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value
