"""The vanilla GAN baseline of the ACL paper's Table 1 ("GAN"): an unconditional DCGAN (Radford et al.
2016) with the standard non-saturating losses, on images (conv nets) or 2-D points (MLPs).

Objective (Goodfellow et al. 2014; the ACL paper's Eq. 5 with ``c ~ N(0, I)``), with ``D`` returning logits
and ``softplus(-l) = -log sigmoid(l)``, ``softplus(l) = -log(1 - sigmoid(l))``::

    L_D = mean softplus(-D(x)) + mean softplus(D(G(z)))         (D maximises log D(x) + log(1 - D(G(z))))
    L_G = mean softplus(-D(G(z)))                                (non-saturating: G maximises log D(G(z)))

One iteration = one discriminator update on a real batch and ``G(z)`` (detached), then one generator
update on the same ``G(z)`` through the just-updated ``D`` (frozen), as in the DCGAN reference code.
The ACL paper says only that its GAN baseline "follow[s] the original specifications in their published
papers and code repositories" without naming one; pygan takes DCGAN, the convolutional
GAN most such comparisons use, and builds the ACL paper's ACL-GAN on exactly these networks and settings
(:mod:`pygan.models.acl`).

Networks (:mod:`pygan.models.nets`): generator ``ConvDecoder`` (BatchNorm, ReLU, ``tanh``),
discriminator ``ConvEncoder`` with BatchNorm after every conv but the first and LeakyReLU(0.2), one
logit per sample; DCGAN initialisation. Points: ``mlp_layers`` hidden ReLU layers of ``mlp_hidden``
units for both networks and 2-D noise (the same toy nets as ``wgan-gp``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from pygan.data.core import Batch, DataInfo, Dataset
from pygan.metrics.modes import mode_log
from pygan.models import (
    COUNT,
    LAYERS,
    Model,
    ModelConfig,
    batch_size_field,
    betas_field,
    ema_decay_field,
    ema_rampup_field,
    eval_mode,
    frozen,
    knob,
    lr_field,
    register,
)
from pygan.models.losses import d_loss_bce, g_loss_bce
from pygan.models.nets import ConvDecoder, ConvEncoder, Squeeze, init_dcgan, mlp

__all__ = ["DCGAN", "DCGANConfig"]


@dataclass(frozen=True)
class DCGANConfig(ModelConfig):
    """DCGAN settings; defaults are the DCGAN paper's (Radford et al. 2016, §4): Adam ``lr = 2e-4``,
    ``betas = (0.5, 0.999)``, batch 128, 100-dimensional ``z ~ N(0, I)`` (the paper draws uniform
    noise; the DCGAN reference code and most re-implementations use a normal), ``width`` (ngf/ndf)
    64, BatchNorm in both networks, LeakyReLU slope 0.2.

    Attributes:
        z_dim: noise size; None = 100 for images, 2 for points.
        mlp_hidden, mlp_layers: the toy MLPs for points.
    """

    batch_size: int = batch_size_field(128)
    lr: float = lr_field(2e-4)
    betas: tuple[float, float] = betas_field((0.5, 0.999))
    z_dim: int | None = knob(None, COUNT)
    width: int = knob(64, COUNT)
    mlp_hidden: int = knob(512, COUNT)
    mlp_layers: int = knob(3, LAYERS)
    ema_decay: float = ema_decay_field(0.0)
    ema_rampup: float = ema_rampup_field(0.05)

    def resolve(self, info: DataInfo):
        """This Config with ``z_dim`` set for data ``info`` (None: 100 for images, 2 for points)."""
        if self.z_dim is not None:
            return self
        return replace(self, z_dim=2 if info.kind == "points" else 100)


@register("dcgan")
class DCGAN(Model):
    """Unconditional DCGAN (the "GAN" baseline of the ACL paper); see the module docstring."""

    #: the networks that make the outputs (averaged by the generator EMA, written by pygan export)
    generator_networks = ("generator",)

    Config = DCGANConfig
    # small: the ACL comparison's baseline (docs/experiments/acl.md: width 32, batch 64)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 32, "batch_size": 64}}
    default_data = "digits32"
    data_kinds = ("images", "points")

    def __init__(self, config: DCGANConfig, info: DataInfo):
        super().__init__(config, info)
        c = config
        self.points = info.kind == "points"
        self.z_dim = self.resolved_config.z_dim
        if self.points:
            (d,) = info.shape
            self.generator = mlp(self.z_dim, d, c.mlp_hidden, c.mlp_layers)
            self.discriminator = Squeeze(mlp(d, 1, c.mlp_hidden, c.mlp_layers))
        else:
            ch, h, w = info.shape
            if h != w:
                raise ValueError(f"dcgan needs square images, got {h}x{w}")
            self.generator = ConvDecoder(self.z_dim, ch, h, c.width, norm="batch")
            self.discriminator = ConvEncoder(ch, h, c.width, out_dim=1, norm="batch")
            self.apply(init_dcgan)

    def configure_optimizers(self):
        return {"discriminator": self.adam(self.discriminator), "generator": self.adam(self.generator)}

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.z_dim, generator=generator, device=self.device)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        G, D = self.wrapped("generator"), self.wrapped("discriminator")
        real = batch.x
        fake = G(self.noise(len(real)))
        # discriminator: real vs G(z), G(z) detached (no gradient reaches G)
        d_real, d_fake = D(real), D(fake.detach())
        loss_d = d_loss_bce(d_real, d_fake)
        self.update("discriminator", loss_d)
        # generator: the same G(z) through the updated, frozen discriminator
        with frozen(self.discriminator):
            loss_g = g_loss_bce(self.discriminator(fake))
        self.update("generator", loss_g)
        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": torch.sigmoid(d_real.detach().float()).mean(),
            "d_fake": torch.sigmoid(d_fake.detach().float()).mean(),
        }

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, batch: Batch | None = None):
        with eval_mode(self.generator):
            return self.generator(self.noise(n, generator)).float()

    @torch.no_grad()
    def evaluate(self, data: Dataset, generator: torch.Generator) -> dict[str, float]:
        """For points: mode coverage of 2,500 samples (:func:`pygan.metrics.modes.mode_log`)."""
        if not (self.points and "centers" in data.meta):
            return {}
        return mode_log(self.sample(2500, generator), data.meta["centers"], data.meta["std"])

    def compile_networks(self) -> list[str]:
        """Both networks (no double backward anywhere in this model)."""
        self.generator.compile()
        self.discriminator.compile()
        return ["generator", "discriminator"]
