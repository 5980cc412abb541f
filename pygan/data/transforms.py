"""Image transforms on ``[N, C, H, W]`` float tensors in [-1, 1], including the domain transforms of
the Soft-Coupled GANs paper (Sec. 5).

* :func:`edge` — MNISTedge: ``dilate(img) - img`` with a 3x3 square structuring element, computed on
  the [0, 1] intensities (the thesis' ``cv2.dilate`` then subtract). The thesis does not state the
  kernel; 3x3 (one iteration) is pygan's choice. Borders do not dilate inwards from outside the
  image (max pooling pads with -inf, like OpenCV's default dilation border).
* :func:`negative` — MNISTnegative: ``1 - img`` on [0, 1] intensities, i.e. ``-x`` in [-1, 1].
* :func:`half_split` — the unpaired domain construction: a seeded random half of the rows stays as
  domain A, the *other* half is transformed into domain B, so the domains hold different samples.
  The thesis does not say which half goes where; pygan draws the halves with ``seed``.

The transforms are applied after resizing and scaling (the thesis does not state the order).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "DOMAIN_TRANSFORMS",
    "dilate",
    "edge",
    "from_unit",
    "gaussian_blur",
    "gray_to_rgb",
    "half_split",
    "negative",
    "resize",
    "rgb_to_gray",
    "set_channels",
    "to_unit",
]


def _check_images(name: str, x) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must be a batch of images [N, C, H, W], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {x.dtype}")


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (x + 1.0) * 0.5


def from_unit(u: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return u * 2.0 - 1.0


def dilate(x: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """Grey-level dilation with a ``kernel`` x ``kernel`` square: the max over each neighbourhood."""
    _check_images("x", x)
    if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd int, got {kernel!r}")
    return F.max_pool2d(x, kernel, stride=1, padding=kernel // 2)


def edge(x: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """Seed 003's MNISTedge: ``dilate(u) - u`` on ``u = (x + 1) / 2``, returned in [-1, 1]."""
    u = to_unit(x)
    return from_unit(dilate(u, kernel) - u)


def negative(x: torch.Tensor) -> torch.Tensor:
    """Seed 003's MNISTnegative: ``1 - u`` on [0, 1] intensities (``-x`` in [-1, 1])."""
    _check_images("x", x)
    return -x


DOMAIN_TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"edge": edge, "negative": negative}


def half_split(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices ``(a, b)`` of a seeded random half/half split of ``n`` rows (``a`` gets the extra
    row when ``n`` is odd). Domain A = rows ``a`` unaltered, domain B = rows ``b`` transformed."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = (n + 1) // 2
    return perm[:k].sort().values, perm[k:].sort().values


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize to ``size`` x ``size`` (antialiased when shrinking), clamped to [-1, 1]."""
    _check_images("x", x)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if tuple(x.shape[-2:]) == (size, size):
        return x
    shrink = size < x.shape[-1] or size < x.shape[-2]
    y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
    return y.clamp_(-1.0, 1.0)


_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """``[N, 3, H, W]`` -> ``[N, 1, H, W]`` with BT.601 luma weights (affine, so it commutes with the
    [-1, 1] scaling)."""
    _check_images("x", x)
    if x.shape[1] != 3:
        raise ValueError(f"x must have 3 channels, got {x.shape[1]}")
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def gray_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """``[N, 1, H, W]`` -> ``[N, 3, H, W]`` by repeating the channel (the SCoGAN code's 3-channel MNIST)."""
    _check_images("x", x)
    if x.shape[1] != 1:
        raise ValueError(f"x must have 1 channel, got {x.shape[1]}")
    return x.expand(-1, 3, -1, -1).contiguous()


def set_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Converts 1 <-> 3 channels (gray repeated / BT.601 luma); other counts must already match."""
    _check_images("x", x)
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return gray_to_rgb(x)
    if c == 3 and channels == 1:
        return rgb_to_gray(x)
    if c == 4 and channels in (1, 3):  # RGBA: drop alpha
        return set_channels(x[:, :3].contiguous(), channels)
    raise ValueError(f"cannot convert {c} channels to channels={channels} (supported: 1 <-> 3)")


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (radius ``ceil(3 sigma)``, reflect padding) of each channel."""
    _check_images("x", x)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or sigma <= 0:
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    r = max(1, math.ceil(3 * sigma))
    if r >= min(x.shape[-2:]):
        raise ValueError(f"sigma={sigma} is too large for {tuple(x.shape[-2:])} images")
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(x, (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
