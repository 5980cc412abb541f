"""Inception Score, precision/recall and density/coverage.

* :func:`inception_score` (Salimans et al. 2016) in torch-fidelity's convention: softmax of the
  classifier's logits in float64, the samples shuffled with ``numpy.random.RandomState(2020)`` (set
  ``shuffle=False`` for Salimans' original order), cut into ``splits`` (10) consecutive parts
  ``[i N // splits, (i + 1) N // splits)``; per part ``exp(mean_i KL(p(y|x_i) || p(y)))`` with ``p(y)``
  the part's mean prediction; returns the mean and the (population, ``ddof=0``) standard deviation
  over the parts. On Inception the logits are the 1008-way ones *without* the classifier's bias
  (:meth:`pygan.backbones.inception.FIDInceptionV3.logits_unbiased`, what Salimans' code and
  torch-fidelity use); on the digits classifier its 10-way logits (an IS-like number comparable
  between pygan runs only: at most 10).
* :func:`precision_recall` (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for
  Assessing Generative Models"): each real feature vector gets a ball of radius its distance to its
  ``k``-th nearest *other* real one (``k = 3``, the paper's default); precision is the fraction of
  fake vectors inside at least one real ball (``<=``, the paper's Eq. 1), recall the fraction of real
  vectors inside at least one fake ball (fake radii from the fakes).
* :func:`density_coverage` (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
  Generative Models"): with the same real balls (``k = 5``, the paper's default), density
  ``= 1/(k M) sum_j sum_i 1[Y_j in B(X_i)]`` and coverage ``= 1/N sum_i 1[some Y_j in B(X_i)]``,
  strict ``<`` as in the authors' ``prdc`` code.

All three take features (or logits) ``[N, d]``; :func:`classifier_logits` and
:func:`pygan.metrics.frechet.extract_features` make them from images. Distances are Euclidean in
float64, computed in blocks of rows (memory ``block x N``, not ``N x N``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from pygan.metrics._util import as_float_tensor, batches, check_images, quantize

__all__ = [
    "classifier_logits",
    "density_coverage",
    "inception_score",
    "knn_radii",
    "precision_recall",
    "resolve_classifier",
]

_BLOCK = 1024


def _check_features(x: Any, name: str) -> torch.Tensor:
    f = as_float_tensor(x, name, dtype=torch.float64)
    if f.dim() != 2:
        raise ValueError(f"{name} must be [N, d] features, got shape {tuple(f.shape)}")
    if not torch.isfinite(f).all():
        raise ValueError(f"{name} contains non-finite values")
    return f.cpu()


def _check_k(k: Any, n: int, name: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if n < k + 1:
        raise ValueError(f"{name} needs more than k = {k} samples for k-th neighbour radii, got {n}")
    return k


def _cdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # float64 through the matrix-product form (fast for 2048-d Inception features; ~1e-12 relative)
    return torch.cdist(a, b)


def knn_radii(features: Any, k: int) -> torch.Tensor:
    """Each row's distance to its ``k``-th nearest other row (float64 ``[N]``): the (k+1)-th smallest
    distance including the row itself (0), as both papers' code computes it."""
    f = _check_features(features, "features")
    _check_k(k, f.shape[0], "features")
    out = [
        torch.kthvalue(_cdist(f[i : i + _BLOCK], f), k + 1, dim=1).values for i in range(0, len(f), _BLOCK)
    ]
    return torch.cat(out)


def precision_recall(real: Any, fake: Any, *, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of ``fake`` features against ``real``
    ones (``[N, d]`` and ``[M, d]``): ``{"precision", "recall", "k", "num_real", "num_fake"}``."""
    fr, ff = _check_features(real, "real"), _check_features(fake, "fake")
    if fr.shape[1] != ff.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: {fr.shape[1]} vs {ff.shape[1]}")
    _check_k(k, len(fr), "real")
    _check_k(k, len(ff), "fake")
    r_real, r_fake = knn_radii(fr, k), knn_radii(ff, k)
    fake_in = torch.zeros(len(ff), dtype=torch.bool)
    real_in = torch.zeros(len(fr), dtype=torch.bool)
    for i in range(0, len(fr), _BLOCK):
        d = _cdist(fr[i : i + _BLOCK], ff)  # [b, M]
        fake_in |= (d <= r_real[i : i + _BLOCK, None]).any(0)
        real_in[i : i + _BLOCK] = (d <= r_fake[None, :]).any(1)
    return {
        "precision": float(fake_in.double().mean()),
        "recall": float(real_in.double().mean()),
        "k": k,
        "num_real": len(fr),
        "num_fake": len(ff),
    }


def density_coverage(real: Any, fake: Any, *, k: int = 5) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020) of ``fake`` features against ``real`` ones:
    ``{"density", "coverage", "k", "num_real", "num_fake"}``. Density can exceed 1 (fakes packed
    where reals are dense); coverage is in [0, 1]."""
    fr, ff = _check_features(real, "real"), _check_features(fake, "fake")
    if fr.shape[1] != ff.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: {fr.shape[1]} vs {ff.shape[1]}")
    _check_k(k, len(fr), "real")
    r_real = knn_radii(fr, k)
    inside = 0
    covered = torch.zeros(len(fr), dtype=torch.bool)
    for i in range(0, len(fr), _BLOCK):
        d = _cdist(fr[i : i + _BLOCK], ff)
        hit = d < r_real[i : i + _BLOCK, None]
        inside += int(hit.sum())
        covered[i : i + _BLOCK] = hit.any(1)
    return {
        "density": inside / (k * len(ff)),
        "coverage": float(covered.double().mean()),
        "k": k,
        "num_real": len(fr),
        "num_fake": len(ff),
    }


def inception_score(
    logits: Any, *, splits: int = 10, shuffle: bool = True, seed: int = 2020
) -> tuple[float, float]:
    """Inception Score ``(mean, std)`` over ``splits`` parts of classifier ``logits`` ``[N, C]``
    (torch-fidelity's convention; see the module docstring). Needs ``N >= splits``."""
    x = _check_features(logits, "logits")
    n = x.shape[0]
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
        raise ValueError(f"splits must be a positive int, got {splits!r}")
    if n < splits:
        raise ValueError(f"inception_score needs at least splits = {splits} samples, got {n}")
    if shuffle:
        x = x[torch.from_numpy(np.random.RandomState(seed).permutation(n))]
    p = x.softmax(dim=1)
    log_p = x.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        p_part, log_part = p[lo:hi], log_p[lo:hi]
        log_py = p_part.mean(0, keepdim=True).log()
        kl = (p_part * (log_part - log_py)).sum(1).mean()
        scores.append(float(kl.exp()))
    s = np.asarray(scores)
    return float(s.mean()), float(s.std())


def resolve_classifier(
    classifier: Any = "inception", *, weights_path: str | None = None, device: str | torch.device = "cpu"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``"inception"`` (unbiased 1008-way logits), ``"digits"`` (the shipped digits classifier's
    10-way logits), or an ``nn.Module``/callable mapping images to logits."""
    if classifier == "inception":
        from pygan.backbones.inception import load_fid_inception

        return load_fid_inception(weights_path).to(device).logits_unbiased
    if classifier == "digits":
        from pygan.backbones.digits import load_digits_classifier

        return load_digits_classifier(weights_path).to(device)
    if isinstance(classifier, str):
        raise ValueError(
            f"classifier must be 'inception', 'digits', a module or a callable; got {classifier!r}"
        )
    if isinstance(classifier, torch.nn.Module):
        classifier.eval()
    if not callable(classifier):
        raise TypeError(f"classifier must be a str, nn.Module or callable, got {type(classifier).__name__}")
    return classifier


def classifier_logits(
    images: Any,
    classifier: Any = "inception",
    *,
    weights_path: str | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    quantize_mode: str | None = None,
) -> torch.Tensor:
    """Logits ``[N, C]`` (float32, CPU) of ``images`` ``[N, C, H, W]`` in [-1, 1] under ``classifier``
    (:func:`resolve_classifier`), in batches without gradients. ``quantize_mode``: ``"uint8"``,
    ``"float"`` or None (uint8 for Inception, as for FID)."""
    from pygan.metrics.frechet import default_quantize

    q = default_quantize(classifier, quantize_mode)
    fn = resolve_classifier(classifier, weights_path=weights_path, device=device)
    x = check_images(images, "images")
    out = []
    with torch.no_grad():
        for b in batches(x, batch_size):
            out.append(fn(quantize(b, q).to(device=device, dtype=torch.float32)).float().cpu())
    return torch.cat(out)
