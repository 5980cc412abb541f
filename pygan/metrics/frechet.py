"""Fréchet distance (FID family) and KID over features from a pluggable extractor.

Extractors (``extractor=``):

* ``"digits"`` (default for digit data): the penultimate layer (128-d) of the small CNN that pygan
  trains on the embedded digits (:mod:`pygan.backbones.digits`). Numbers are comparable across
  pygan runs only — they are *not* FID values in the published (Inception) sense.
* ``"inception"``: the FID Inception-v3 (pool3, 2048-d) of :mod:`pygan.backbones.inception`, with the
  standard ``pt_inception-2015-12-05-6726825d.pth`` weights loaded from a local path
  (``weights_path=``, ``PYGAN_INCEPTION_WEIGHTS``, or pytorch-fid's copy in
  ``$TORCH_HOME/hub/checkpoints/``). Never downloads: without the file it fails with a message
  saying which file to get and where to put it.

Quantization (``quantize=``). pytorch-fid, torch-fidelity and clean-fid read 8-bit image files, so
the images their Inception sees are quantized to 256 levels; a generator's float output is not.
``quantize="uint8"`` rounds both sides to 8 bits first (:func:`pygan.metrics._util.quantize_uint8`:
exactly what ``pygan sample --png-dir`` writes), ``"float"`` feeds the floats as they are. The default
(``None``) is ``"uint8"`` for the Inception extractor — comparable with those tools' numbers — and
``"float"`` otherwise (the digits FD of the docs; quantizing moves it only slightly). Resizing to 299
px follows pytorch-fid (bilinear, ``align_corners=False``); torch-fidelity resizes like TensorFlow 1
and clean-fid with PIL's bicubic filter, so their FIDs differ from pytorch-fid's (and pygan's) by
the resize alone; for their exact numbers, write PNGs (``pygan sample RUN --png-dir DIR --n N``) and
run the tool on the folder.
* any ``nn.Module`` (or callable) mapping an image batch to ``[N, d]`` features (extra dimensions
  are flattened).

Why not torchmetrics / torch-fidelity / pytorch-fid: torch-fidelity and pytorch-fid require
torchvision, and the torchvision build pinned to this torch (0.28.0, PyPI) fails to import with the
CPU build of torch 2.13.0 (``operator torchvision::nms does not exist``); torchmetrics' FID needs
torch-fidelity for its Inception. The Fréchet distance itself is a few lines, written here in
float64 with a symmetric eigen-decomposition (see :func:`frechet_distance`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from pygan.metrics._util import as_float_tensor, batches, check_images, quantize

__all__ = [
    "FeatureStats",
    "default_quantize",
    "extract_features",
    "fid",
    "frechet_distance",
    "gaussian_stats",
    "kid",
    "mmd2_unbiased",
    "resolve_extractor",
    "trace_sqrt_product",
]


def _sym_psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr sqrt(Σ1 Σ2)`` for symmetric PSD ``Σ1, Σ2``, in float64.

    ``Σ1 Σ2`` is not symmetric, so ``scipy.linalg.sqrtm`` of it can return complex values or fail
    when the product is near-singular (pytorch-fid then adds ``eps·I``). Instead: with
    ``S = Σ1^{1/2}`` (symmetric, from ``eigh``), ``Σ1 Σ2 = S (S Σ2 S) S^{-1}`` is similar to
    ``M = S Σ2 S``, which is symmetric PSD; similar matrices share eigenvalues, and the eigenvalues
    of the principal square root are the square roots of those, so
    ``Tr sqrt(Σ1 Σ2) = Σ_i sqrt(λ_i(M))``. (For singular ``Σ1`` the identity holds by continuity.)
    Tiny negative eigenvalues from rounding are clipped to 0. Two ``eigh`` calls, no complex
    arithmetic, no ``eps``. Accuracy: ~1e-12 relative for full-rank covariances; when they are singular
    (fewer samples than dimensions) null-space eigenvalues of ~1e-15 contribute square roots of ~3e-8
    each, so expect errors of ~sqrt(machine eps) relative to ``Tr Σ`` (the same holds for ``sqrtm``).
    """
    s1 = _sym_psd_sqrt(sigma1)
    m = s1 @ sigma2 @ s1
    m = 0.5 * (m + m.T)
    lam = np.linalg.eigvalsh(m)
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def _as_stats(mu: Any, sigma: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.atleast_1d(np.asarray(mu.cpu() if isinstance(mu, torch.Tensor) else mu, dtype=np.float64))
    sigma = np.atleast_2d(
        np.asarray(sigma.cpu() if isinstance(sigma, torch.Tensor) else sigma, dtype=np.float64)
    )
    if mu.ndim != 1:
        raise ValueError(f"mu{name} must be a vector, got shape {mu.shape}")
    if sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"sigma{name} must be [{mu.shape[0]}, {mu.shape[0]}], got {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"mu{name}/sigma{name} contain non-finite values")
    return mu, 0.5 * (sigma + sigma.T)


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Fréchet (2-Wasserstein) distance² between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``:
    ``|mu1 - mu2|² + Tr(Σ1) + Tr(Σ2) - 2 Tr sqrt(Σ1 Σ2)``, in float64 (inputs are converted).

    The value is not clamped: rounding can make it a tiny negative number (~1e-12) for equal inputs.
    """
    mu1, sigma1 = _as_stats(mu1, sigma1, "1")
    mu2, sigma2 = _as_stats(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 differ in dimension: {mu1.shape[0]} vs {mu2.shape[0]}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2))


class FeatureStats:
    """Streaming mean and covariance of features in float64 (sums of x and of x xᵀ), so that large
    sample sets need not be held in memory. The covariance is the unbiased one (divides by n-1),
    like ``numpy.cov`` (pytorch-fid) and torchmetrics."""

    def __init__(self, dim: int | None = None):
        self.n = 0
        self.dim = dim
        self._sum: torch.Tensor | None = None
        self._outer: torch.Tensor | None = None

    def update(self, features: torch.Tensor) -> FeatureStats:
        f = as_float_tensor(features, "features").detach().reshape(features.shape[0], -1)
        f = f.to(device="cpu", dtype=torch.float64)
        if self.dim is None:
            self.dim = f.shape[1]
        if f.shape[1] != self.dim:
            raise ValueError(f"features have dimension {f.shape[1]}, expected {self.dim}")
        if self._sum is None:
            self._sum = torch.zeros(self.dim, dtype=torch.float64)
            self._outer = torch.zeros(self.dim, self.dim, dtype=torch.float64)
        self._sum += f.sum(0)
        self._outer += f.T @ f
        self.n += f.shape[0]
        return self

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {self.n}")
        mu = self._sum / self.n
        cov = (self._outer - self.n * torch.outer(mu, mu)) / (self.n - 1)
        return mu.numpy(), (0.5 * (cov + cov.T)).numpy()


def gaussian_stats(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (float64 numpy) of ``features`` ``[N, d]``."""
    f = as_float_tensor(features, "features")
    if f.dim() != 2:
        raise ValueError(f"features must be [N, d], got shape {tuple(f.shape)}")
    return FeatureStats().update(f).mean_cov()


def resolve_extractor(
    extractor: Any = "digits", *, weights_path: str | None = None, device: str | torch.device = "cpu"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``"digits"``, ``"inception"`` (needs ``weights_path`` or ``PYGAN_INCEPTION_WEIGHTS``), an
    ``nn.Module`` or a callable -> a callable mapping an image batch to ``[N, d]`` features."""
    if isinstance(extractor, str):
        if extractor == "digits":
            from pygan.backbones.digits import load_digits_classifier

            clf = load_digits_classifier(weights_path).to(device)
            return clf.features
        if extractor == "inception":
            from pygan.backbones.inception import load_fid_inception

            return load_fid_inception(weights_path).to(device)
        raise ValueError(
            f"extractor must be 'digits', 'inception', an nn.Module or a callable; got {extractor!r}"
        )
    if isinstance(extractor, nn.Module):
        extractor.eval()
        return extractor
    if callable(extractor):
        return extractor
    raise TypeError(f"extractor must be a str, nn.Module or callable, got {type(extractor).__name__}")


def default_quantize(extractor: Any, quantize_mode: str | None) -> str:
    """``quantize_mode`` when given, else ``"uint8"`` for the Inception extractor, ``"float"`` for any
    other (see the module docstring)."""
    if quantize_mode is not None:
        if quantize_mode not in ("uint8", "float"):
            raise ValueError(f"quantize must be 'uint8' or 'float', got {quantize_mode!r}")
        return quantize_mode
    is_inception = extractor == "inception" or type(extractor).__name__ == "FIDInceptionV3"
    return "uint8" if is_inception else "float"


def extract_features(
    images: Any,
    extractor: Callable[[torch.Tensor], torch.Tensor],
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    quantize_mode: str | None = "float",
) -> torch.Tensor:
    """Runs ``extractor`` over ``images`` ``[N, C, H, W]`` in batches without gradients; returns
    ``[N, d]`` float32 features on the CPU. ``quantize_mode="uint8"`` rounds the images to 8 bits
    first."""
    x = check_images(images, "images")
    out = []
    with torch.no_grad():
        for b in batches(x, batch_size):
            b = quantize(b, quantize_mode)
            f = extractor(b.to(device=device, dtype=torch.float32))
            if isinstance(f, (tuple, list)):
                f = f[-1]
            out.append(f.reshape(f.shape[0], -1).float().cpu())
    return torch.cat(out)


def _features(
    x: Any, name: str, extractor: Any, batch_size: int, device: Any, quantize_mode: str = "float"
) -> torch.Tensor:
    if isinstance(x, FeatureStats):
        raise TypeError(f"{name}: pass raw images or features, not FeatureStats, to kid()")
    return extract_features(x, extractor, batch_size=batch_size, device=device, quantize_mode=quantize_mode)


def fid(
    real: Any,
    fake: Any,
    *,
    extractor: Any = "digits",
    weights_path: str | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    quantize: str | None = None,
) -> float:
    """Fréchet distance between the features of ``real`` and ``fake`` image batches ``[N, C, H, W]``
    in [-1, 1] (either side may also be precomputed ``(mu, sigma)`` or a :class:`FeatureStats`).
    ``quantize``: ``"uint8"``, ``"float"`` or None (uint8 for Inception; see the module docstring).

    With ``extractor="digits"`` this is an FID-like number in the digits classifier's feature space
    (comparable between pygan runs, not with published FIDs); ``"inception"`` gives the standard FID
    network (pool3) when the weights file is given. At least ``d + 1`` samples per side are needed for
    a full-rank covariance (``d`` = 128 for ``"digits"``, 2048 for Inception); fewer still gives a
    number, but a biased one."""
    ext = None
    q = default_quantize(extractor, quantize)

    def stats(x: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
        nonlocal ext
        if isinstance(x, FeatureStats):
            return x.mean_cov()
        if isinstance(x, tuple) and len(x) == 2 and np.ndim(x[0]) == 1 and np.ndim(x[1]) == 2:
            return x
        if ext is None:
            ext = resolve_extractor(extractor, weights_path=weights_path, device=device)
        return FeatureStats().update(_features(x, name, ext, batch_size, device, q)).mean_cov()

    mu1, s1 = stats(real, "real")
    mu2, s2 = stats(fake, "fake")
    return frechet_distance(mu1, s1, mu2, s2)


def _poly_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD² with the cubic polynomial kernel ``k(a, b) = (aᵀb / d + 1)³`` (Bińkowski et al.,
    KID): ``mean_{i≠j} k(x_i, x_j) + mean_{i≠j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j)``, float64."""
    x = as_float_tensor(x, "x", dtype=torch.float64)
    y = as_float_tensor(y, "y", dtype=torch.float64)
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"need at least 2 samples per side, got {m} and {n}")
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kid(
    real: Any,
    fake: Any,
    *,
    extractor: Any = "digits",
    weights_path: str | None = None,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    features: bool = False,
    quantize: str | None = None,
) -> tuple[float, float]:
    """Kernel Inception Distance: the unbiased MMD² (cubic polynomial kernel) averaged over
    ``subsets`` random subsets of ``min(subset_size, N_real, N_fake)`` samples per side (drawn
    without replacement within a subset, with a ``torch.Generator`` seeded by ``seed``). Returns
    ``(mean, std)`` over the subsets. ``features=True`` means ``real``/``fake`` already are ``[N, d]``
    features (no extractor runs). ``quantize`` as for :func:`fid`."""
    if isinstance(subsets, bool) or not isinstance(subsets, int) or subsets < 1:
        raise ValueError(f"subsets must be a positive int, got {subsets!r}")
    if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 2:
        raise ValueError(f"subset_size must be an int >= 2, got {subset_size!r}")
    if features:
        fr = as_float_tensor(real, "real", dtype=torch.float64)
        ff = as_float_tensor(fake, "fake", dtype=torch.float64)
    else:
        ext = resolve_extractor(extractor, weights_path=weights_path, device=device)
        q = default_quantize(extractor, quantize)
        fr = _features(real, "real", ext, batch_size, device, q).double()
        ff = _features(fake, "fake", ext, batch_size, device, q).double()
    if fr.shape[1] != ff.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: {fr.shape[1]} vs {ff.shape[1]}")
    s = min(subset_size, fr.shape[0], ff.shape[0])
    if s < 2:
        raise ValueError("KID needs at least 2 samples per side")
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        ir = torch.randperm(fr.shape[0], generator=g)[:s]
        jf = torch.randperm(ff.shape[0], generator=g)[:s]
        vals.append(mmd2_unbiased(fr[ir], ff[jf]))
    v = np.asarray(vals)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
