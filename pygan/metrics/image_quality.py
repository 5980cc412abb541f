"""Image quality for translation / reconstruction: MSE, PSNR, SSIM, and an LPIPS-style learned
perceptual distance.

Conventions (the seed paper 002 states none of them):

* Images are ``[N, C, H, W]``; pygan's range is [-1, 1], so ``data_range`` defaults to **2.0** (the
  max-minus-min of the range). Pass ``data_range=1.0`` for [0, 1] images or 255 for 8-bit values.
* ``reduction="mean"`` (default) averages per-image values over the batch; ``"none"`` returns the
  per-image values ``[N]``. PSNR is computed per image and then averaged (a dataset-level PSNR is
  ``10 log10(R² / mse(x, y))``: call :func:`psnr_from_mse`).
* SSIM is Wang et al. (2004): Gaussian window 11 x 11 with sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``,
  ``C1 = (K1 R)²``, ``C2 = (K2 R)²``, population (biased) local variances, computed per channel on the
  "valid" region (no padding), averaged over pixels and channels. This equals
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=R)``, which filters with reflection and then crops the
  5-pixel border. Images must be at least 11 x 11.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pygan.backbones.digits import DigitsFeatures, load_digits_classifier
from pygan.backbones.taps import AlexNetFeatures, VGG16Features, load_state_dict_file
from pygan.metrics._util import batches, check_images

__all__ = [
    "AlexNetFeatures",
    "PerceptualDistance",
    "VGG16Features",
    "gaussian_window",
    "mse",
    "perceptual_distance",
    "psnr",
    "psnr_from_mse",
    "ssim",
]


def _pair(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x = check_images(x, "x")
    y = check_images(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    dt = torch.promote_types(x.dtype, y.dtype)
    if dt not in (torch.float32, torch.float64):
        dt = torch.float32
    return x.to(dt), y.to(dt)


def _reduce(v: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return v.mean()
    if reduction == "none":
        return v
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _check_range(data_range: float) -> float:
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float)) or not data_range > 0:
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    return float(data_range)


def mse(x: Any, y: Any, *, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error per image (over C, H, W), then averaged over the batch."""
    x, y = _pair(x, y)
    return _reduce((x - y).pow(2).flatten(1).mean(1), reduction)


def psnr_from_mse(m: Any, data_range: float = 2.0) -> torch.Tensor:
    """``10 log10(R² / MSE)`` (``inf`` where MSE is 0)."""
    r = _check_range(data_range)
    m = torch.as_tensor(m, dtype=torch.float64)
    return 10.0 * torch.log10(r * r / m)


def psnr(x: Any, y: Any, *, data_range: float = 2.0, reduction: str = "mean") -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, per image ``10 log10(R² / MSE_i)``, then averaged. Identical
    images give ``inf``."""
    r = _check_range(data_range)
    per = psnr_from_mse(mse(x, y, reduction="none"), r)
    return _reduce(per, reduction)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps (centred)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd int, got {size!r}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    t = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(t * t) / (2 * sigma * sigma))
    return g / g.sum()


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = g.numel()
    x = F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def ssim(
    x: Any,
    y: Any,
    *,
    data_range: float = 2.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: str = "mean",
    full: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Structural similarity (Wang et al. 2004), computed in float64; see the module docstring for the
    exact convention. ``full=True`` also returns the SSIM map ``[N, C, H-10, W-10]``."""
    r = _check_range(data_range)
    x, y = _pair(x, y)
    if min(x.shape[-2:]) < win_size:
        raise ValueError(
            f"images must be at least {win_size} x {win_size} for SSIM, got {tuple(x.shape[-2:])}"
        )
    x, y = x.double(), y.double()
    g = gaussian_window(win_size, sigma).to(x.device)
    c1, c2 = (k1 * r) ** 2, (k2 * r) ** 2
    mx, my = _filter(x, g), _filter(y, g)
    sxx = _filter(x * x, g) - mx * mx
    syy = _filter(y * y, g) - my * my
    sxy = _filter(x * y, g) - mx * my
    smap = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    val = _reduce(smap.flatten(1).mean(1), reduction)
    return (val, smap) if full else val


# ----------------------------------------------------------------------------------------------
# LPIPS-style perceptual distance
# ----------------------------------------------------------------------------------------------


def _normalize(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + eps)


class PerceptualDistance(nn.Module):
    """LPIPS-style distance ``d(x, y) = Σ_l mean_{h,w} Σ_c w_{l,c} (f̂_l(x) - f̂_l(y))²_{c,h,w}`` where
    ``f̂_l`` are a frozen backbone's layer-``l`` features normalised to unit length over channels at
    each position, and ``w_l`` per-channel weights (all ones without a linear head).

    Backbones:

    * ``backbone="alex"`` / ``"vgg"`` with ``backbone_weights=`` a local torchvision-format state dict
      (e.g. ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``) and optionally
      ``head_weights=`` LPIPS linear heads (``lin{l}.model.1.weight``, e.g. the ``v0.1/alex.pth`` the
      ``lpips`` package ships). Inputs in [-1, 1] go through LPIPS v0.1's input scaling layer
      (shift ``[-.030, -.088, -.188]``, scale ``[.458, .448, .450]``); grey inputs are repeated to 3
      channels. With both files this is the LPIPS v0.1 formula with those weights.
    * any ``nn.Module`` returning a list of feature maps (``channels`` attribute optional), with
      ``head_weights`` a list of per-layer weight tensors if wanted.
    * ``backbone=None`` (default): the pygan digits classifier's three conv maps, unit weights.
      **LPIPS-style, not comparable to published LPIPS numbers** (different network, no learned
      heads); useful to compare pygan models on digit data with each other.

    pygan never downloads; a missing file is an error, not a download.
    """

    _SHIFT = (-0.030, -0.088, -0.188)
    _SCALE = (0.458, 0.448, 0.450)

    def __init__(
        self,
        backbone: Any = None,
        *,
        backbone_weights: str | os.PathLike | None = None,
        head_weights: Any = None,
    ):
        super().__init__()
        self.imagenet_input = False
        if backbone is None:
            if backbone_weights is not None:
                raise ValueError("backbone_weights needs backbone='alex' or 'vgg'")
            self.net = DigitsFeatures(load_digits_classifier())  # the cached classifier, shared
            self.kind = "digits"
        elif isinstance(backbone, str):
            nets = {"alex": AlexNetFeatures, "vgg": VGG16Features}
            if backbone not in nets:
                raise ValueError(f"backbone must be None, 'alex', 'vgg' or an nn.Module, got {backbone!r}")
            if backbone_weights is None:
                raise FileNotFoundError(
                    f"backbone={backbone!r} needs backbone_weights= a local torchvision {backbone} state "
                    "dict "
                    "(pygan never downloads weights); or use backbone=None for the LPIPS-style digits "
                    "backbone"
                )
            self.net = nets[backbone]()
            state = load_state_dict_file(backbone_weights, f"{backbone} backbone")
            state = {k: v for k, v in state.items() if k.startswith("features.")}
            missing, unexpected = self.net.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise ValueError(
                    f"{str(backbone_weights)!r} is not a torchvision {backbone} state dict: missing "
                    f"{list(missing)[:3]}, unexpected {list(unexpected)[:3]}"
                )
            self.imagenet_input = True
            self.kind = backbone
            self.register_buffer("shift", torch.tensor(self._SHIFT).view(1, 3, 1, 1))
            self.register_buffer("scale", torch.tensor(self._SCALE).view(1, 3, 1, 1))
        elif isinstance(backbone, nn.Module):
            self.net = backbone
            self.kind = "custom"
        else:
            raise TypeError(f"backbone must be None, a str or an nn.Module, got {type(backbone).__name__}")
        self.heads: list[torch.Tensor] | None = None
        if head_weights is not None:
            self.heads = self._load_heads(head_weights)
        self.net.eval()
        self.requires_grad_(False)

    def _load_heads(self, head_weights: Any) -> list[torch.Tensor]:
        if isinstance(head_weights, (str, os.PathLike)):
            state = load_state_dict_file(head_weights, "LPIPS linear head")
            heads = []
            for layer in range(len(state)):
                w = state.get(f"lin{layer}.model.1.weight", state.get(f"lin{layer}.model.0.weight"))
                if w is None:
                    break
                heads.append(w.detach().float().reshape(-1))
            if not heads:
                raise ValueError(f"{str(head_weights)!r} holds no LPIPS heads (keys lin<l>.model.1.weight)")
        else:
            heads = [torch.as_tensor(w, dtype=torch.float32).reshape(-1) for w in head_weights]
        chans = getattr(self.net, "channels", None)
        if chans is not None:
            if len(heads) != len(chans) or any(h.numel() != c for h, c in zip(heads, chans)):
                raise ValueError(
                    f"head weights have sizes {[h.numel() for h in heads]}, the backbone's layers "
                    f"{list(chans)}"
                )
        return heads

    def layer_distances(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer distances, each ``[N]``."""
        if self.imagenet_input:
            if x.shape[1] == 1:
                x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
            x = (x - self.shift) / self.scale
            y = (y - self.shift) / self.scale
        fx, fy = self.net(x), self.net(y)
        if self.heads is not None and len(self.heads) != len(fx):
            raise ValueError(f"{len(self.heads)} head weights for {len(fx)} backbone layers")
        out = []
        for i, (a, b) in enumerate(zip(fx, fy)):
            d = (_normalize(a) - _normalize(b)).pow(2)
            if self.heads is not None:
                d = d * self.heads[i].to(d).view(1, -1, 1, 1)
            out.append(d.sum(1).mean((1, 2)))
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Distances ``[N]`` for image pairs in [-1, 1]."""
        return torch.stack(self.layer_distances(x, y)).sum(0)


def perceptual_distance(
    x: Any,
    y: Any,
    *,
    metric: PerceptualDistance | None = None,
    batch_size: int = 128,
    reduction: str = "mean",
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Average (``reduction="mean"``) or per-pair (``"none"``) :class:`PerceptualDistance` between the
    pairs ``(x_i, y_i)``; ``metric`` defaults to the digits-backbone LPIPS-style distance."""
    x, y = _pair(x, y)
    metric = metric if metric is not None else PerceptualDistance()
    metric = metric.to(device)
    out = []
    with torch.no_grad():
        for xb, yb in zip(batches(x, batch_size), batches(y, batch_size)):
            out.append(metric(xb.to(device, torch.float32), yb.to(device, torch.float32)).cpu())
    return _reduce(torch.cat(out), reduction)
