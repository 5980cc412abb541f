"""The output-layout rule of pygan's elementwise kernels, for fake (meta) kernels.

Mirrors ``csrc/cpu/common.h`` (``same_dense_layout``): when every operand has the same sizes and
strides and that layout is contiguous, channels_last or channels_last_3d, kernels walk storage
linearly and the output gets exactly those strides; otherwise operands are made contiguous and so is
the output. A fake kernel must return exactly the strides the real kernel returns.
"""

from __future__ import annotations

import torch

__all__ = ["empty_like_layout", "same_dense_layout"]


def _dense(t: torch.Tensor) -> bool:
    if t.is_contiguous():
        return True
    if t.dim() == 4:
        return t.is_contiguous(memory_format=torch.channels_last)
    if t.dim() == 5:
        return t.is_contiguous(memory_format=torch.channels_last_3d)
    return False


def same_dense_layout(*tensors: torch.Tensor) -> bool:
    first = tensors[0]
    for t in tensors:
        if t.shape != first.shape or t.stride() != first.stride():
            return False
    return _dense(first)


def empty_like_layout(like: torch.Tensor, keep: bool, dtype: torch.dtype | None = None) -> torch.Tensor:
    dtype = like.dtype if dtype is None else dtype
    if keep:
        return torch.empty_strided(like.shape, like.stride(), dtype=dtype, device=like.device)
    return torch.empty(like.shape, dtype=dtype, device=like.device)
