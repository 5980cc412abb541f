"""NRDS — Normalized Relative Discriminative Score (ED//GAN paper, Zhang, Song & Qi, Sec. 3 / Eq. 11).

Ranks several generative models *relative to each other* (the value for one model alone means
nothing):

1. one binary classifier D is trained on real samples (label 1) against the **pooled** fakes of all
   ``n`` models (label 0);
2. after every epoch, D (sigmoid output) is run on *all* fakes of each model — the same samples it
   trains on — and the mean output is recorded: a curve ``C_i(t)``, ``t = 1..T`` per model (the mean on
   the real samples is recorded too, for the plot only);
3. ``A_i`` = area under ``C_i`` by the trapezoid rule with unit spacing (MATLAB ``trapz``, as the
   authors' ``NRDS.m``: ``T`` points span a width of ``T - 1``);
4. ``NRDS_i = A_i / Σ_j A_j``.

The training loop follows the authors' ``NRDS/NRDS.py`` (Appendix A of pygan's spec): each epoch
shuffles the real set and the pooled fake set, takes ``min(#real, #pooled) // batch_size`` steps
(the remainder is dropped), each step one real batch and one fake batch with loss
``BCE(D(real), 1) + BCE(D(fake), 0)`` (each a batch mean), Adam lr 2e-4, beta1 0.5.

Decisions where paper and code are silent or impractical (documented, all arguments):

* ``batch_size`` defaults to 64 (the authors' ``main.py`` uses 1 on 128 x 128 images, which is
  impractically slow on a CPU); ``epochs`` defaults to 100 (their ``main.py``); the toy of Fig. 6
  uses 300.
* Default D for images ``[N, C, H, W]``: the authors' NRDS discriminator — 4 x [conv 5x5, stride 2,
  "same" padding; 64, 128, 256, 512 channels; ReLU] (their BN is off by default), FC 1024,
  LeakyReLU(0.2), FC 1; weights N(0, 0.02) (convs truncated at 2 std), biases 0. (The paper says the
  D of its Table 1 was used; the authors' code differs — we follow the code.) For vectors
  ``[N, D]``: the toy's MLP, two hidden layers of 32 units with ReLU, PyTorch's default init.
* Models given as samplers draw ``n_samples`` fakes each (default: as many as there are real
  samples), once, before training.
* Everything random (init, shuffles, sampling) is seeded by ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pygan.metrics._util import resolve_samples

__all__ = ["NRDSResult", "mlp_discriminator", "nrds", "nrds_discriminator", "plot_curves", "trapezoid"]


def trapezoid(curve: Any) -> float:
    """Area under ``curve`` by the trapezoid rule with unit spacing (MATLAB ``trapz(y)``)."""
    c = torch.as_tensor(curve, dtype=torch.float64).reshape(-1)
    if c.numel() < 2:
        return 0.0
    return float(((c[1:] + c[:-1]) * 0.5).sum())


def mlp_discriminator(in_features: int = 2, hidden: int = 32) -> nn.Module:
    """The toy example's D: two hidden layers of ``hidden`` units, ReLU, one logit."""
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
    )


class _NRDSConvD(nn.Module):
    def __init__(self, channels: int, size: tuple[int, int]):
        super().__init__()
        chans = [channels, 64, 128, 256, 512]
        self.convs = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 5, stride=2, padding=2) for i in range(4)
        )
        h, w = size
        for _ in range(4):
            h, w = (h + 1) // 2, (w + 1) // 2
        self.fc1 = nn.Linear(512 * h * w, 1024)
        self.fc2 = nn.Linear(1024, 1)
        for conv in self.convs:
            nn.init.trunc_normal_(conv.weight, std=0.02, a=-0.04, b=0.04)
            nn.init.zeros_(conv.bias)
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, std=0.02)
            nn.init.zeros_(fc.bias)

    def forward(self, x):
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.fc2(F.leaky_relu(self.fc1(x.flatten(1)), 0.2))


def nrds_discriminator(sample_shape: tuple[int, ...]) -> nn.Module:
    """The default D for samples of shape ``sample_shape`` (without the batch dimension): the authors'
    conv D for images ``(C, H, W)``, the toy MLP for vectors ``(D,)``."""
    if len(sample_shape) == 3:
        return _NRDSConvD(sample_shape[0], sample_shape[1:])
    if len(sample_shape) == 1:
        return mlp_discriminator(sample_shape[0])
    raise ValueError(f"no default NRDS discriminator for samples of shape {sample_shape}; pass classifier=")


@dataclass
class NRDSResult:
    scores: dict[str, float]
    areas: dict[str, float]
    curves: dict[str, list[float]]  # mean D output on each model's fakes after epochs 1..T
    real_curve: list[float]  # mean D output on the real samples (plot only)
    config: dict = field(default_factory=dict)
    plot_path: str | None = None

    def ranking(self) -> list[str]:
        """Model names, best (highest NRDS) first."""
        return sorted(self.scores, key=lambda k: -self.scores[k])

    def to_dict(self) -> dict:
        return {
            "scores": self.scores,
            "areas": self.areas,
            "curves": self.curves,
            "real_curve": self.real_curve,
            "config": self.config,
            "plot_path": self.plot_path,
        }

    def plot(self, path: str | Path, title: str = "NRDS: mean D output per epoch") -> Path:
        self.plot_path = str(
            plot_curves(self.curves, path, real_curve=self.real_curve, scores=self.scores, title=title)
        )
        return Path(self.plot_path)


def _mean_output(d: nn.Module, x: torch.Tensor, batch_size: int, device: Any) -> float:
    tot = 0.0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            tot += float(torch.sigmoid(d(x[i : i + batch_size].to(device)).reshape(-1)).double().sum())
    return tot / x.shape[0]


def nrds(
    real: Any,
    fakes: Mapping[str, Any],
    *,
    epochs: int = 100,
    batch_size: int = 64,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    classifier: nn.Module | Callable[[tuple[int, ...]], nn.Module] | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    eval_batch_size: int = 1024,
    plot: str | Path | None = None,
    image_size: int | None = None,
) -> NRDSResult:
    """Computes NRDS for the named fake sets against ``real``.

    Args:
        real: real samples ``[N, ...]`` (tensor/array) or a folder of images.
        fakes: ``{name: source}`` with at least one entry; a source is a tensor, a folder of images, or a
            model with ``sample(n, generator=None)`` (or a callable ``f(n)``).
        epochs, batch_size, lr, betas: D's training (see the module docstring).
        classifier: ``None`` (default D for the sample shape), a callable ``f(sample_shape) -> Module``
            (a fresh D), or an ``nn.Module`` (trained in place). D outputs one logit per sample.
        n_samples: how many fakes to draw from each model given as a sampler (default: ``len(real)``).
        plot: if given, a PNG of the curves is written there.
        image_size: resize images read from folders to this size.
    Returns:
        :class:`NRDSResult` (scores sum to 1).
    """
    if not isinstance(fakes, Mapping) or len(fakes) == 0:
        raise ValueError("fakes must be a non-empty mapping {name: samples, folder or model}")
    for k in fakes:
        if not isinstance(k, str):
            raise TypeError(f"fakes keys must be model names (str), got {type(k).__name__}")
    for name, v, lo in (
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
        ("eval_batch_size", eval_batch_size, 1),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    g = torch.Generator().manual_seed(seed)
    xr = resolve_samples(real, "real", image_size=image_size).float()
    n = n_samples if n_samples is not None else xr.shape[0]
    sets: dict[str, torch.Tensor] = {}
    for name, src in fakes.items():
        x = resolve_samples(src, f"fakes[{name!r}]", n=n, generator=g, image_size=image_size)
        if isinstance(x, tuple):
            raise ValueError(f"fakes[{name!r}] returned several outputs (a coupled model?); pass one domain")
        x = x.float()
        if x.shape[1:] != xr.shape[1:]:
            raise ValueError(
                f"fakes[{name!r}] samples have shape {tuple(x.shape[1:])}, real {tuple(xr.shape[1:])}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"fakes[{name!r}] is empty")
        sets[name] = x
    pooled = torch.cat(list(sets.values()))
    steps = min(xr.shape[0], pooled.shape[0]) // batch_size
    if steps == 0:
        raise ValueError(
            f"batch_size {batch_size} exceeds min(#real, #pooled fakes) = {min(xr.shape[0], pooled.shape[0])}"
        )

    torch.manual_seed(seed)
    if classifier is None:
        d = nrds_discriminator(tuple(xr.shape[1:]))
    elif isinstance(classifier, nn.Module):
        d = classifier
    elif callable(classifier):
        d = classifier(tuple(xr.shape[1:]))
        if not isinstance(d, nn.Module):
            raise TypeError(f"classifier factory must return an nn.Module, got {type(d).__name__}")
    else:
        raise TypeError(
            f"classifier must be None, an nn.Module or a factory, got {type(classifier).__name__}"
        )
    d = d.to(device)
    opt = torch.optim.Adam(d.parameters(), lr=lr, betas=betas)
    ones = torch.ones(batch_size, device=device)
    zeros = torch.zeros(batch_size, device=device)

    curves: dict[str, list[float]] = {k: [] for k in sets}
    real_curve: list[float] = []
    for _ in range(epochs):
        d.train()
        pr = torch.randperm(xr.shape[0], generator=g)
        pf = torch.randperm(pooled.shape[0], generator=g)
        for s in range(steps):
            br = xr[pr[s * batch_size : (s + 1) * batch_size]].to(device)
            bf = pooled[pf[s * batch_size : (s + 1) * batch_size]].to(device)
            loss = F.binary_cross_entropy_with_logits(
                d(br).reshape(-1), ones
            ) + F.binary_cross_entropy_with_logits(d(bf).reshape(-1), zeros)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        d.eval()
        for k, x in sets.items():
            curves[k].append(_mean_output(d, x, eval_batch_size, device))
        real_curve.append(_mean_output(d, xr, eval_batch_size, device))

    areas = {k: trapezoid(c) for k, c in curves.items()}
    total = sum(areas.values())
    if not total > 0:
        raise RuntimeError(
            "all NRDS areas are zero (D separated every fake set at once); use fewer epochs or a weaker D"
        )
    result = NRDSResult(
        scores={k: a / total for k, a in areas.items()},
        areas=areas,
        curves=curves,
        real_curve=real_curve,
        config=dict(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            betas=list(betas),
            seed=seed,
            num_real=int(xr.shape[0]),
            num_fake={k: int(v.shape[0]) for k, v in sets.items()},
            steps_per_epoch=steps,
            classifier=type(d).__name__ if classifier is not None else "default",
        ),
    )
    if plot is not None:
        result.plot(plot)
    return result


# ----------------------------------------------------------------------------------------------
# A small line plot with Pillow (matplotlib is not a dependency)
# ----------------------------------------------------------------------------------------------

_COLOURS = [(31, 119, 180), (214, 39, 40), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # fmt: skip


def _nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.ceil(lo / step) * step
    ticks = []
    t = start
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def plot_curves(
    curves: Mapping[str, list[float]],
    path: str | Path,
    *,
    real_curve: list[float] | None = None,
    scores: Mapping[str, float] | None = None,
    title: str = "",
    size: tuple[int, int] = (800, 500),
) -> Path:
    """Writes a PNG line plot of per-epoch curves (x: epoch 1..T, y: mean D output in [0, 1])."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as exc:  # pragma: no cover - pillow is a dependency
        raise ImportError("plotting NRDS curves needs Pillow: pip install pillow") from exc
    w, h = size
    img = Image.new("RGB", (w, h), "white")
    dr = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        font = ImageFont.load_default()
    left, right, top, bottom = 60, 20, 30, 45
    pw, ph = w - left - right, h - top - bottom
    series = list(curves.items())
    if real_curve is not None:
        series = [("real", real_curve), *series]
    t_max = max((len(c) for _, c in series), default=1)

    def px(t: float, v: float) -> tuple[float, float]:
        fx = (t - 1) / max(t_max - 1, 1)
        return left + fx * pw, top + (1.0 - min(max(v, 0.0), 1.0)) * ph

    dr.rectangle([left, top, left + pw, top + ph], outline=(0, 0, 0))
    for v in _nice_ticks(0.0, 1.0, 5):
        _, y = px(1, v)
        dr.line([left - 4, y, left, y], fill=(0, 0, 0))
        dr.line([left + 1, y, left + pw - 1, y], fill=(230, 230, 230))
        dr.text((left - 8, y), f"{v:g}", fill=(0, 0, 0), font=font, anchor="rm")
    for t in _nice_ticks(1, t_max, 8):
        x, _ = px(t, 0.0)
        dr.line([x, top + ph, x, top + ph + 4], fill=(0, 0, 0))
        dr.text((x, top + ph + 6), f"{t:g}", fill=(0, 0, 0), font=font, anchor="mt")
    dr.text((left + pw / 2, h - 6), "epoch", fill=(0, 0, 0), font=font, anchor="mb")
    dr.text((6, top - 6), "mean D output", fill=(0, 0, 0), font=font, anchor="ls")
    if title:
        dr.text((left + pw / 2, 6), title, fill=(0, 0, 0), font=font, anchor="mt")
    legend_y = top + 8
    for i, (name, c) in enumerate(series):
        colour = (
            (0, 0, 0) if name == "real" and real_curve is not None and i == 0 else _COLOURS[i % len(_COLOURS)]
        )
        pts = [px(t + 1, float(v)) for t, v in enumerate(c)]
        if len(pts) == 1:
            x, y = pts[0]
            dr.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        elif pts:
            dr.line(pts, fill=colour, width=2)
        label = name
        if scores is not None and name in scores:
            label += f"  NRDS {scores[name]:.4f}"
        lx = left + pw - 220
        dr.line([lx, legend_y + 5, lx + 20, legend_y + 5], fill=colour, width=3)
        dr.text((lx + 26, legend_y), label, fill=(0, 0, 0), font=font)
        legend_y += 14
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, format="PNG")
    return out
