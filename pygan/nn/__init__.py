"""``nn.Module`` wrappers of :mod:`pygan.ops`: the op's settings live on the module, the call takes
tensors. Each forwards to the fused op (``backend=None``: the device default / ``PYGAN_BACKEND``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from pygan import ops
from pygan.nn.perceptual import VGG19, DigitsFeatures, PerceptualLoss, load_vgg19
from pygan.ops.gradient_penalty import KINDS
from pygan.ops.residual_add import _activation

__all__ = [
    "VGG19",
    "DigitsFeatures",
    "FeatureRegularizer",
    "GradientPenalty",
    "PerceptualLoss",
    "ResidualAdd",
    "StyleLoss",
    "load_vgg19",
]


class ResidualAdd(nn.Module):
    """``act(base + residual)``; ED//GAN's ``Î = I_ED + I_G`` (see :func:`pygan.ops.residual_add`)."""

    def __init__(self, activation: str | None = None, detach_base: bool = True, backend: str | None = None):
        super().__init__()
        _activation(activation)  # validate early
        self.activation, self.detach_base, self.backend = activation, detach_base, backend

    def forward(self, base: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return ops.residual_add(base, residual, self.activation, self.detach_base, backend=self.backend)

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}, detach_base={self.detach_base}"


class FeatureRegularizer(nn.Module):
    """SCoGAN's feature regulariser over layer lists (see :func:`pygan.ops.feature_regularizer`)."""

    def __init__(
        self,
        p: int = 2,
        reduction: str = "mean",
        weights: Sequence[float] | None = None,
        detach_b: bool = False,
        backend: str | None = None,
    ):
        super().__init__()
        self.p, self.reduction, self.detach_b, self.backend = p, reduction, detach_b, backend
        self.weights = None if weights is None else [float(w) for w in weights]

    def forward(self, feats_a, feats_b) -> torch.Tensor:
        return ops.feature_regularizer(
            feats_a, feats_b, self.p, self.reduction, self.weights, self.detach_b, backend=self.backend
        )

    def extra_repr(self) -> str:
        return f"p={self.p}, reduction={self.reduction!r}, weights={self.weights}, detach_b={self.detach_b}"


class StyleLoss(nn.Module):
    """Gram-matrix style loss (see :func:`pygan.ops.style_loss`)."""

    def __init__(self, normalize: str = "chw", reduction: str = "mean", backend: str | None = None):
        super().__init__()
        self.normalize, self.reduction, self.backend = normalize, reduction, backend

    def forward(
        self, fx: torch.Tensor, target: torch.Tensor, target_is_gram: bool | None = None
    ) -> torch.Tensor:
        return ops.style_loss(
            fx, target, self.normalize, self.reduction, target_is_gram=target_is_gram, backend=self.backend
        )

    def extra_repr(self) -> str:
        return f"normalize={self.normalize!r}, reduction={self.reduction!r}"


class GradientPenalty(nn.Module):
    """WGAN-GP / one-sided / R1 penalty of a critic (see :func:`pygan.ops.gradient_penalty`).

    ``every`` > 1 applies lazy regularisation (StyleGAN2): the penalty is computed on every
    ``every``-th call, scaled by ``every`` so its expected contribution is unchanged, and 0 otherwise.
    """

    def __init__(
        self,
        weight: float = 10.0,
        target: float = 1.0,
        kind: str = "wgan-gp",
        every: int = 1,
        backend: str | None = None,
    ):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        self.weight, self.target, self.kind, self.every, self.backend = weight, target, kind, every, backend
        self._calls = 0

    def forward(
        self,
        critic: Callable,
        real: torch.Tensor,
        fake: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        self._calls += 1
        if (self._calls - 1) % self.every:
            return real.new_zeros(())
        weight = self.weight * self.every
        return ops.gradient_penalty(
            critic, real, fake, weight, self.target, self.kind, generator=generator, backend=self.backend
        )

    def extra_repr(self) -> str:
        return f"weight={self.weight}, target={self.target}, kind={self.kind!r}, every={self.every}"
