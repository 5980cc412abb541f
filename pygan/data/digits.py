"""The handwritten digits that scikit-learn ships (UCI optdigits test set: 1,797 images, 8x8,
values 0..16, 10 classes), as an embedded, offline dataset.

Images are scaled to [-1, 1] and resized (bilinear, align_corners=False) to ``size`` px. The
train/test split is fixed: a stratified 80/20 split drawn once with ``numpy.random.RandomState(0)``
(1,438 train / 359 test), so every run and every machine sees the same samples.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DIGITS_SPLITS", "load_digits"]

DIGITS_SPLITS = ("train", "test", "all")
_TEST_FRACTION = 0.2


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("the embedded digits come from scikit-learn: pip install scikit-learn") from exc
    d = _sk_load_digits()
    images = d.images.astype(np.float32)  # [1797, 8, 8], 0..16
    labels = d.target.astype(np.int64)
    rng = np.random.RandomState(0)
    is_test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        is_test[idx[: round(len(idx) * _TEST_FRACTION)]] = True
    return images, labels, is_test


def load_digits(size: int = 32, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``(images, labels)``: float32 ``[N, 1, size, size]`` in [-1, 1] and int64 ``[N]``.

    Args:
        size: output side in pixels (8 keeps the originals; 16, 28, 32 are the usual choices).
        split: ``"train"`` (1,438), ``"test"`` (359) or ``"all"`` (1,797).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if split not in DIGITS_SPLITS:
        raise ValueError(f"split must be one of {list(DIGITS_SPLITS)}, got {split!r}")
    images, labels, is_test = _raw()
    keep = {"train": ~is_test, "test": is_test, "all": np.ones_like(is_test)}[split]
    x = torch.from_numpy(images[keep]).unsqueeze(1) / 16.0 * 2.0 - 1.0
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(-1.0, 1.0)
    return x.contiguous(), torch.from_numpy(labels[keep]).clone()
