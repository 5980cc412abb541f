"""Shared input handling for the metrics: argument checks, batching, image folders, sampling models."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "IMAGE_EXTENSIONS",
    "as_float_tensor",
    "batches",
    "check_images",
    "load_image_folder",
    "quantize",
    "quantize_uint8",
    "resolve_samples",
]

QUANTIZE = ("uint8", "float")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def as_float_tensor(x: Any, name: str, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``x`` as a floating tensor (numpy arrays are converted); TypeError naming ``name`` otherwise."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if not (x.is_floating_point() or x.dtype == torch.uint8):
        raise TypeError(f"{name} must be a floating tensor (or uint8 images), got dtype {x.dtype}")
    if x.dtype == torch.uint8:
        x = x.float() / 127.5 - 1.0
    if dtype is not None:
        x = x.to(dtype)
    return x


def check_images(x: Any, name: str, *, channels: tuple[int, ...] | None = None) -> torch.Tensor:
    """Validates an image batch ``[N, C, H, W]`` (float, or uint8 mapped to [-1, 1])."""
    x = as_float_tensor(x, name)
    if x.dim() != 4:
        raise ValueError(f"{name} must be a 4-D image batch [N, C, H, W], got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (batch size 0)")
    if channels is not None and x.shape[1] not in channels:
        raise ValueError(f"{name} must have {' or '.join(map(str, channels))} channels, got {x.shape[1]}")
    return x


def quantize_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as an 8-bit PNG holds them, back in [-1, 1]: ``round((clip(x) + 1) * 127.5)
    / 127.5 - 1`` — exactly the pixels ``pygan sample --png-dir`` (and every pygan PNG) writes and
    :func:`load_image_folder` reads back, so features of quantized samples equal features of their PNG
    files. The FID tools people trust (pytorch-fid, torch-fidelity, clean-fid) read 8-bit image files,
    so this is what makes pygan's numbers comparable with theirs."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def quantize(x: torch.Tensor, mode: str | None) -> torch.Tensor:
    """``mode="uint8"``: :func:`quantize_uint8`; ``"float"``/None: ``x`` unchanged."""
    if mode in (None, "float"):
        return x
    if mode == "uint8":
        return quantize_uint8(x)
    raise ValueError(f"quantize must be 'uint8' or 'float', got {mode!r}")


def batches(x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    for i in range(0, x.shape[0], batch_size):
        yield x[i : i + batch_size]


def load_image_folder(path: str | os.PathLike, *, size: int | None = None, grayscale: bool | None = None):
    """Loads every image file directly inside ``path`` (sorted by name) as ``[N, C, H, W]`` in [-1, 1].

    Files are read with Pillow (8-bit: ``x / 127.5 - 1``). ``grayscale=None`` keeps one channel when
    every file is single-channel (mode ``L``/``1``/``P`` without colour) and converts all to RGB
    otherwise; ``size`` resizes (bilinear) to ``size x size``; without it all images must share a size.
    """
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow is a dependency
        raise ImportError("reading image folders needs Pillow: pip install pillow") from exc
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"image folder {str(folder)!r} does not exist or is not a directory")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise ValueError(f"image folder {str(folder)!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    images = [Image.open(p) for p in files]
    if grayscale is None:
        grayscale = all(im.mode in ("L", "1", "I;16", "I") for im in images)
    arrays = []
    for p, im in zip(files, images):
        im = im.convert("L" if grayscale else "RGB")
        if size is not None:
            im = im.resize((size, size), Image.BILINEAR)
        a = np.asarray(im, dtype=np.float32)
        if a.ndim == 2:
            a = a[None]
        else:
            a = a.transpose(2, 0, 1)
        if arrays and a.shape != arrays[0].shape:
            raise ValueError(
                f"images in {str(folder)!r} differ in size ({p.name}: {a.shape} vs {arrays[0].shape}); "
                "pass size= to resize them"
            )
        arrays.append(a)
    return torch.from_numpy(np.stack(arrays)) / 127.5 - 1.0


def _sample_model(model: Any, n: int, generator: torch.Generator | None, batch_size: int) -> Any:
    """Draws ``n`` samples from an object with ``sample(n, generator=None)`` (or a callable ``f(n)``),
    in batches, without gradients. Tuples (coupled generators) are concatenated per element."""
    fn: Callable = model.sample if hasattr(model, "sample") else model
    try:
        params = inspect.signature(fn).parameters
        takes_generator = "generator" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):  # builtins without a signature
        takes_generator = False
    outs = []
    with torch.no_grad():
        done = 0
        while done < n:
            b = min(batch_size, n - done)
            outs.append(fn(b, generator=generator) if takes_generator else fn(b))
            done += b
    if isinstance(outs[0], (tuple, list)):
        return tuple(torch.cat([o[i].detach().cpu() for o in outs]) for i in range(len(outs[0])))
    return torch.cat([o.detach().cpu() for o in outs])


def resolve_samples(
    source: Any,
    name: str,
    *,
    n: int | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
    image_size: int | None = None,
) -> Any:
    """A tensor from one of: a tensor/array, a folder of images (str/Path), or a model to sample from
    (an object with ``sample(n, generator=None)`` or a callable ``f(n)``; needs ``n``)."""
    if isinstance(source, (torch.Tensor, np.ndarray)):
        x = as_float_tensor(source, name)
        if n is not None and x.shape[0] > n:
            x = x[:n]
        return x
    if isinstance(source, (str, os.PathLike)):
        x = load_image_folder(source, size=image_size)
        if n is not None and x.shape[0] > n:
            x = x[:n]
        return x
    if hasattr(source, "sample") or callable(source):
        if n is None:
            raise ValueError(f"{name} is a model to sample from: the number of samples n is needed")
        return _sample_model(source, n, generator, batch_size)
    raise TypeError(
        f"{name} must be a tensor, a folder of images, or a model with sample(n, generator=None); "
        f"got {type(source).__name__}"
    )
