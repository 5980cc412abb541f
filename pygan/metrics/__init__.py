"""Metrics: NRDS, Fréchet distance / KID with pluggable extractors, Inception Score,
precision/recall and density/coverage, image quality (MSE, PSNR, SSIM, LPIPS-style), mode coverage
for 2-D mixtures and semantic agreement for coupled generators: pure functions of samples and
features (evaluating a whole run, ``pygan eval``, is :mod:`pygan.evaluate`). The feature networks
they use live in :mod:`pygan.backbones`. Nothing here downloads: weights come with pygan (the
digits classifier) or from local paths the user gives (Inception, AlexNet/VGG, LPIPS heads)."""

from pygan.backbones.digits import (
    DigitsClassifier,
    load_digits_classifier,
    train_digits_classifier,
    train_domain_classifier,
)
from pygan.backbones.inception import FIDInceptionV3, find_inception_weights, load_fid_inception
from pygan.metrics._util import quantize_uint8
from pygan.metrics.agreement import AgreementResult, per_domain_fid, semantic_agreement
from pygan.metrics.fidelity import (
    classifier_logits,
    density_coverage,
    inception_score,
    knn_radii,
    precision_recall,
)
from pygan.metrics.frechet import (
    FeatureStats,
    extract_features,
    fid,
    frechet_distance,
    gaussian_stats,
    kid,
    mmd2_unbiased,
    resolve_extractor,
)
from pygan.metrics.image_quality import (
    PerceptualDistance,
    mse,
    perceptual_distance,
    psnr,
    psnr_from_mse,
    ssim,
)
from pygan.metrics.modes import ModeCoverage, mode_coverage
from pygan.metrics.nrds import NRDSResult, nrds, plot_curves, trapezoid

__all__ = [
    "AgreementResult",
    "DigitsClassifier",
    "FIDInceptionV3",
    "FeatureStats",
    "ModeCoverage",
    "NRDSResult",
    "PerceptualDistance",
    "classifier_logits",
    "density_coverage",
    "extract_features",
    "fid",
    "find_inception_weights",
    "frechet_distance",
    "gaussian_stats",
    "inception_score",
    "kid",
    "knn_radii",
    "load_digits_classifier",
    "load_fid_inception",
    "mmd2_unbiased",
    "mode_coverage",
    "mse",
    "nrds",
    "per_domain_fid",
    "perceptual_distance",
    "plot_curves",
    "precision_recall",
    "psnr",
    "psnr_from_mse",
    "quantize_uint8",
    "resolve_extractor",
    "semantic_agreement",
    "ssim",
    "train_digits_classifier",
    "train_domain_classifier",
    "trapezoid",
]
