"""pix2pix's pieces (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
Networks"), defined once for the two models built on them:

* ``pix2pix`` (:class:`pygan.models.uunet.Pix2Pix`), the UU-Nets paper's baseline (batch 8,
  BatchNorm, Table 1 of "UU-Nets Connecting Discriminator and Generator for Image to Image
  Translation");
* ``edgan-pix2pix`` and ``edgan-pix2pix-coupled`` (:mod:`pygan.models.edgan`), the ED//GAN paper's
  adaptation (Sec. 4.2.1; batch 1, instance norm).

The objective, with ``D`` a PatchGAN reading the pair ``[x, img]`` (one logit per patch)::

    L_D = BCE(D(x, y), 1) + BCE(D(x, sg(G(x))), 0)          (pix2pix halves it)
    L_G = BCE(D(x, G(x)), 1) + lambda |G(x) - y|_1

(:func:`pygan.models.losses.d_loss_bce`, :func:`~pygan.models.losses.g_loss_bce`,
:func:`~pygan.models.losses.l1`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from pygan.data.core import DataInfo
from pygan.errors import ConfigError
from pygan.models import (
    COUNT,
    DROPOUT_LEVELS,
    WEIGHT,
    ModelConfig,
    batch_size_field,
    betas_field,
    ema_decay_field,
    ema_rampup_field,
    knob,
    lr_field,
)
from pygan.models.nets import PatchDiscriminator, UNet

__all__ = [
    "Norm",
    "Pix2PixSettings",
    "default_d_layers",
    "default_depth",
    "pair_logits",
    "patch_discriminator",
    "resolve_sizes",
    "unet",
]


Norm = Literal["batch", "instance", "none"]


@dataclass(frozen=True)
class Pix2PixSettings(ModelConfig):
    """pix2pix's published settings, the fields both pix2pix configs share: Adam ``lr = 2e-4``,
    ``betas = (0.5, 0.999)``, ``ngf = ndf = 64`` (``width``, ``d_width``), a U-Net down to 1x1
    (``depth`` None = ``log2(size)``) with dropout in the 3 innermost up blocks, a 70x70 PatchGAN
    (``d_layers`` None = 3, fewer for small images so that the patch map keeps a side >= 1: 2
    layers at 16 px). Each model's config sets its ``batch_size`` and ``norm``.

    Attributes:
        depth: U-Net depth; None = log2(size) (down to 1x1, pix2pix's choice).
    """

    batch_size: int = batch_size_field(1)
    lr: float = lr_field(2e-4)
    betas: tuple[float, float] = betas_field((0.5, 0.999))
    width: int = knob(64, COUNT)
    d_width: int = knob(64, COUNT)
    depth: int | None = knob(None, COUNT)
    norm: Norm = "batch"
    dropout: int = knob(3, DROPOUT_LEVELS)
    d_layers: int | None = knob(None, COUNT)
    adv_weight: float = knob(1.0, WEIGHT)
    ema_decay: float = ema_decay_field(0.0)
    ema_rampup: float = ema_rampup_field(0.05)

    def resolve(self, info: DataInfo):
        """This Config with ``depth`` and ``d_layers`` set for the data's image side."""
        return resolve_sizes(self, info)


def default_depth(size: int) -> int:
    """pix2pix's U-Net depth for ``size`` px: down to 1x1 (``log2(size)``)."""
    return size.bit_length() - 1


def default_d_layers(size: int) -> int:
    """pix2pix's PatchGAN depth for ``size`` px: 3 (70x70 patches) from 32 px, fewer below."""
    return max(1, min(3, size.bit_length() - 3))


def resolve_sizes(config, info: DataInfo):
    """``config`` with its None ``depth`` (and ``d_layers``, where it has one) set for the images of
    ``info`` (unchanged when ``info`` does not describe images: the model says what is wrong). Below
    2 px ``depth`` stays None: ``log2(size)`` = 0 is no valid depth (the field's check would reject
    it before the model could name the real problem, the image side)."""
    if len(info.shape) != 3:
        return config
    size, fill = info.shape[-1], {}
    if config.depth is None and size >= 2:
        fill["depth"] = default_depth(size)
    if getattr(config, "d_layers", 0) is None:
        fill["d_layers"] = default_d_layers(size)
    return replace(config, **fill) if fill else config


def unet(in_channels: int, out_channels: int, size: int, config, **options) -> UNet:
    """pix2pix's U-Net generator for ``size`` px images with ``config``'s width, depth, norm and
    dropout (``options``: :class:`~pygan.models.nets.UNet`'s, e.g. a VAE bottleneck)."""
    c = config
    return UNet(in_channels, out_channels, size, c.width, c.depth, c.norm, c.dropout, **options)


def patch_discriminator(in_channels: int, size: int, config) -> PatchDiscriminator:
    """The PatchGAN on pairs of ``in_channels`` channels in all, ``config.d_layers`` strided convs
    (``config`` is the resolved Config: a None ``d_layers`` is already :func:`default_d_layers`)."""
    n = config.d_layers
    if n < 1 or size // 2**n < 3:
        raise ConfigError(
            f"d_layers={n} leaves no patches at {size} px (need d_layers >= 1 and size / 2^d_layers >= 3)"
        )
    return PatchDiscriminator(in_channels, config.d_width, n, config.norm)


def pair_logits(D: nn.Module, x: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """The conditional D's logits for the pair ``[x, img]`` (``img`` in ``x``'s dtype)."""
    return D(torch.cat([x, img.to(x.dtype)], 1))
