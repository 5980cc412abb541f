"""Writing pictures: image grids and 2-D scatter plots as PNG (Pillow; torchvision is not needed).

* :func:`make_grid` tiles ``[N, C, H, W]`` images in [-1, 1] into one ``[C, H', W']`` image with a
  ``pad`` px border (value ``pad_value``) around every tile, ``nrow`` tiles per row — the layout of
  torchvision's ``make_grid``.
* :func:`save_grid` writes that grid as an 8-bit PNG (gray for 1 channel, RGB for 3).
* :func:`save_points` draws ``[N, 2]`` points (and optional mode centres) on a white canvas.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

__all__ = ["make_grid", "save_grid", "save_points", "to_uint8"]


def make_grid(images: torch.Tensor, nrow: int = 8, pad: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tiles ``images`` ``[N, C, H, W]`` into ``[C, rows * (H + pad) + pad, nrow * (W + pad) + pad]``."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(
            f"images must be a [N, C, H, W] tensor, got {getattr(images, 'shape', type(images))}"
        )
    if images.shape[0] == 0:
        raise ValueError("images is empty")
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive int, got {nrow!r}")
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"pad must be a non-negative int, got {pad!r}")
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = images.new_full((c, rows * (h + pad) + pad, cols * (w + pad) + pad), pad_value)
    for i in range(n):
        r, k = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[:, top : top + h, left : left + w] = images[i]
    return grid


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` in [-1, 1] -> ``[H, W]`` or ``[H, W, C]`` uint8 (values clipped, rounded)."""
    a = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    a = a.permute(1, 2, 0).numpy()
    return a[:, :, 0] if a.shape[2] == 1 else a


def _save(a: np.ndarray, path: str, scale: int = 1) -> str:
    from PIL import Image

    im = Image.fromarray(a)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.png"
    im.save(tmp)
    os.replace(tmp, path)
    return path


def save_grid(images: torch.Tensor, path: str, nrow: int = 8, pad: int = 2, scale: int = 1) -> str:
    """Writes ``images`` ``[N, C, H, W]`` in [-1, 1] (C = 1 or 3) as one PNG grid; ``scale`` enlarges
    it with nearest-neighbour (for tiny images). Returns ``path``."""
    if images.dim() == 4 and images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {images.shape[1]}")
    return _save(to_uint8(make_grid(images, nrow, pad)), path, scale)


def save_points(
    points: torch.Tensor, path: str, centers=None, *, size: int = 400, extent: float | None = None
) -> str:
    """Draws 2-D ``points`` ``[N, 2]`` (blue) and ``centers`` ``[K, 2]`` (red crosses) as a PNG."""
    if not isinstance(points, torch.Tensor) or points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be a [N, 2] tensor, got {getattr(points, 'shape', type(points))}")
    p = points.detach().float().cpu()
    c = torch.as_tensor(centers, dtype=torch.float32) if centers is not None else torch.zeros(0, 2)
    if extent is None:
        ref = c if len(c) else p
        extent = float(ref.abs().max()) * 1.25 + 1e-6 if len(ref) else 1.0
    img = np.full((size, size, 3), 255, dtype=np.uint8)

    def pix(q: torch.Tensor) -> torch.Tensor:
        u = ((q / extent + 1) * 0.5 * (size - 1)).round().long()
        return torch.stack([size - 1 - u[:, 1], u[:, 0]], 1)  # (row, col), y up

    rc = pix(p)
    ok = ((rc >= 0) & (rc < size)).all(1)
    rc = rc[ok].numpy()
    img[rc[:, 0], rc[:, 1]] = (40, 90, 200)
    for r, k in pix(c).numpy():
        for d in range(-4, 5):
            for rr, kk in ((r + d, k), (r, k + d)):
                if 0 <= rr < size and 0 <= kk < size:
                    img[rr, kk] = (220, 30, 30)
    return _save(img, path)
