"""Mode coverage for 2-D (or any-D) Gaussian mixtures: the ring of 8 and the grid of 25 of the
VEEGAN / Unrolled-GAN / PacGAN toy experiments (the ACL and IDVAE papers propose them; neither reports
numbers).

Definitions used (the papers leave them open):

* each sample is assigned to its **nearest** mode centre (Euclidean);
* a sample is **high quality** when that distance is at most ``3 std`` (``std`` the mixture
  components' isotropic standard deviation, one number or one per mode);
* a mode is **covered** when at least ``min_count`` high-quality samples are assigned to it. The
  default ``min_count=None`` means 20 % of a uniform share, ``ceil(0.2 · N / K)`` (at least 1): 20 of
  2,500 samples on the 25-grid, the threshold commonly used with that protocol; a single stray
  sample does not count as covering a mode. Pass ``min_count=1`` for "any high-quality sample".

Centres and std come from the caller (pygan.data's synthetic sets define them).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from pygan.metrics._util import as_float_tensor

__all__ = ["ModeCoverage", "mode_coverage", "mode_log"]


@dataclass
class ModeCoverage:
    modes_covered: int
    num_modes: int
    high_quality_fraction: float  # in [0, 1]
    counts: list[int]  # high-quality samples per mode
    min_count: int
    num_samples: int

    @property
    def high_quality_percent(self) -> float:
        return 100.0 * self.high_quality_fraction

    def to_dict(self) -> dict:
        d = asdict(self)
        d["high_quality_percent"] = self.high_quality_percent
        return d


def mode_coverage(
    samples: Any, centres: Any, std: Any, *, min_count: int | None = None, radius: float = 3.0
) -> ModeCoverage:
    """Modes covered and the fraction of high-quality samples (see the module docstring).

    Args:
        samples: ``[N, D]`` generated points.
        centres: ``[K, D]`` mode centres.
        std: the components' standard deviation: a number, or ``[K]`` per mode.
        min_count: high-quality samples a mode needs to count as covered (default 20 % of N/K).
        radius: the high-quality radius in units of ``std`` (3).
    """
    x = as_float_tensor(samples, "samples", dtype=torch.float64)
    c = as_float_tensor(centres, "centres", dtype=torch.float64)
    if x.dim() != 2:
        raise ValueError(f"samples must be [N, D], got shape {tuple(x.shape)}")
    if c.dim() != 2 or c.shape[1] != x.shape[1] or c.shape[0] == 0:
        raise ValueError(f"centres must be [K, {x.shape[1]}] with K >= 1, got shape {tuple(c.shape)}")
    if x.shape[0] == 0:
        raise ValueError("samples is empty")
    k = c.shape[0]
    s = torch.as_tensor(std, dtype=torch.float64).reshape(-1)
    if s.numel() == 1:
        s = s.expand(k)
    if s.numel() != k or not bool((s > 0).all()):
        raise ValueError(f"std must be a positive number or {k} positive numbers, got {std!r}")
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius!r}")
    n = x.shape[0]
    if min_count is None:
        min_count = max(1, math.ceil(0.2 * n / k))
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be a positive int, got {min_count!r}")
    d = torch.cdist(x, c)  # [N, K]
    dist, idx = d.min(1)
    hq = dist <= radius * s[idx]
    counts = torch.bincount(idx[hq], minlength=k)
    return ModeCoverage(
        modes_covered=int((counts >= min_count).sum()),
        num_modes=k,
        high_quality_fraction=float(hq.double().mean()),
        counts=[int(v) for v in counts],
        min_count=min_count,
        num_samples=n,
    )


def mode_log(samples: Any, centres: Any, std: Any) -> dict[str, float]:
    """What a model's ``evaluate`` logs for points: :func:`mode_coverage` with its defaults as
    ``{"modes": covered, "modes_total": K, "high_quality": fraction in [0, 1]}``."""
    mc = mode_coverage(torch.as_tensor(samples).detach().cpu(), torch.as_tensor(centres), std)
    return {
        "modes": float(mc.modes_covered),
        "modes_total": float(mc.num_modes),
        "high_quality": mc.high_quality_fraction,
    }
