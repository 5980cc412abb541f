"""Synthetic 2-D mixtures of Gaussians with known mode centres (the Unrolled-GAN / VEEGAN toy sets).

* ``ring8``:  8 equal-weight modes on a circle of radius 2, sigma 0.02.
* ``grid25``: 25 equal-weight modes on the grid {-4, -2, 0, 2, 4}^2, sigma 0.05.
* ``square4``: 4 equal-weight modes at (+-2, +-2), sigma 0.1 (the ACL paper's "4-mode two-dimensional
  Gaussian" prior-analysis target, §5.6; the paper gives no centres or sigma, these are its spec's).

Points are in data coordinates (not scaled). The splits are fixed draws: 20,000 train points from
seed 0 and 5,000 test points from seed 1 (labels = the mode each point was drawn from).
"""

from __future__ import annotations

import math

import torch

from pygan.data.core import Dataset

__all__ = ["MIXTURES", "mixture", "mixture_centers", "sample_mixture"]

MIXTURES = {
    "ring8": {"std": 0.02, "radius": 2.0, "modes": 8},
    "grid25": {"std": 0.05, "step": 2.0, "modes": 25},
    "square4": {"std": 0.1, "half_side": 2.0, "modes": 4},
}
_SPLIT_SIZE = {"train": 20_000, "test": 5_000, "all": 25_000}
_SPLIT_SEED = {"train": 0, "test": 1}


def mixture_centers(name: str) -> torch.Tensor:
    """The mode centres ``[K, 2]`` (float32) of mixture ``name``."""
    if name not in MIXTURES:
        raise ValueError(f"name must be one of {list(MIXTURES)}, got {name!r}")
    p = MIXTURES[name]
    if name == "ring8":
        a = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        c = torch.stack([torch.cos(a), torch.sin(a)], 1) * p["radius"]
    elif name == "square4":
        g = torch.tensor([-1.0, 1.0], dtype=torch.float64) * p["half_side"]
        c = torch.cartesian_prod(g, g)
    else:
        g = (torch.arange(5, dtype=torch.float64) - 2) * p["step"]
        c = torch.cartesian_prod(g, g)
    return c.float()


def sample_mixture(name: str, n: int, generator: torch.Generator | None = None):
    """``n`` points ``[n, 2]`` and their mode ids ``[n]`` drawn from mixture ``name``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    centers = mixture_centers(name)
    k = torch.randint(len(centers), (n,), generator=generator)
    pts = centers[k] + MIXTURES[name]["std"] * torch.randn(n, 2, generator=generator)
    return pts, k


def mixture(name: str, split: str = "train") -> Dataset:
    """The fixed ``split`` of mixture ``name`` as a ``points`` dataset (meta: centers, std)."""
    if split not in _SPLIT_SIZE:
        raise ValueError(f"split must be one of {list(_SPLIT_SIZE)}, got {split!r}")
    if split == "all":
        a, b = mixture(name, "train"), mixture(name, "test")
        x, y = torch.cat([a.x, b.x]), torch.cat([a.y, b.y])
    else:
        g = torch.Generator().manual_seed(_SPLIT_SEED[split])
        x, y = sample_mixture(name, _SPLIT_SIZE[split], g)
    centers = mixture_centers(name)
    meta = {"centers": centers.tolist(), "std": MIXTURES[name]["std"]}
    return Dataset(name, "points", x, y, num_classes=len(centers), meta=meta)
