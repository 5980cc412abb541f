"""The UCI handwritten digits (optdigits test set: 1,797 images, 8x8, values 0..16, 10 classes), as an
embedded, offline dataset.

The array ships inside pygan (``pygan/data/digits_8x8.npz``, 45 KB: ``images`` uint8 ``[1797, 8, 8]``,
``labels`` uint8 ``[1797]``), so the default data needs no scikit-learn. It is a copy of the array
scikit-learn ships as ``sklearn.datasets.load_digits()`` (same rows, same order: bit-identical, checked by
tests/test_packaging.py when scikit-learn is installed); attribution in THIRD_PARTY_NOTICES.md.
Regenerate it with ``python -m pygan.data.digits --out pygan/data/digits_8x8.npz`` (needs scikit-learn).

Images are scaled to [-1, 1] and resized (bilinear, align_corners=False) to ``size`` px. The
train/test split is fixed: a stratified 80/20 split drawn once with ``numpy.random.RandomState(0)``
(1,438 train / 359 test), so every run and every machine sees the same samples.
"""

from __future__ import annotations

import functools
import hashlib
import os

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DIGITS_FILE", "DIGITS_SPLITS", "load_digits"]

DIGITS_SPLITS = ("train", "test", "all")
DIGITS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits_8x8.npz")
# SHA-256 of images.tobytes() + labels.tobytes() (uint8, C order) of the shipped array.
_DIGITS_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"
_TEST_FRACTION = 0.2


def _digest(images: np.ndarray, labels: np.ndarray) -> str:
    return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()


def _read_shipped(path: str = DIGITS_FILE) -> tuple[np.ndarray, np.ndarray]:
    """The shipped ``(images, labels)`` as uint8 arrays, checked against the recorded digest."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"the embedded digits file {path} is missing from this pygan install (it is package data); "
            "reinstall pygan"
        )
    with np.load(path, allow_pickle=False) as f:
        images, labels = np.ascontiguousarray(f["images"]), np.ascontiguousarray(f["labels"])
    if images.dtype != np.uint8 or images.shape != (1797, 8, 8) or labels.shape != (1797,):
        raise ValueError(
            f"{path}: expected uint8 images [1797, 8, 8] and labels [1797], got "
            f"{images.dtype} {images.shape} / {labels.shape}"
        )
    if _digest(images, labels) != _DIGITS_SHA256:
        raise ValueError(f"{path}: contents differ from the shipped digits (corrupt file?); reinstall pygan")
    return images, labels


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images_u8, labels_u8 = _read_shipped()
    images = images_u8.astype(np.float32)  # [1797, 8, 8], 0..16
    labels = labels_u8.astype(np.int64)
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


def from_sklearn() -> tuple[np.ndarray, np.ndarray]:
    """``sklearn.datasets.load_digits()`` as the shipped uint8 ``(images, labels)`` (needs scikit-learn)."""
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as exc:
        msg = "regenerating the digits file needs scikit-learn: pip install scikit-learn"
        raise ImportError(msg) from exc
    d = _sk_load_digits()
    images, labels = d.images, d.target
    if not (np.array_equal(images, np.round(images)) and images.min() >= 0 and images.max() <= 16):
        raise ValueError("scikit-learn's digits are no longer integers in 0..16")
    return images.astype(np.uint8), labels.astype(np.uint8)


def _main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Write the embedded digits file from scikit-learn's copy.")
    ap.add_argument("--out", default=DIGITS_FILE, help="output .npz (default: the package's file)")
    args = ap.parse_args(argv)
    images, labels = from_sklearn()
    np.savez_compressed(args.out, images=images, labels=labels)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, sha256 {_digest(images, labels)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
