"""The baseline: an unconditional DCGAN-style WGAN-GP (Gulrajani et al. 2017), a baseline of the
ACL and SCoGAN papers, on images (conv nets) or 2-D points (MLPs).

Objective (Gulrajani et al. 2017, Algorithm 1)::

    L_D = mean D(G(z)) - mean D(x) + lambda * mean_b (||grad_x_hat D(x_hat_b)||_2 - 1)^2
    L_G = -mean D(G(z))

with ``x_hat = x + alpha (G(z) - x)``, one ``alpha ~ U[0, 1]`` per sample — computed by
:func:`pygan.ops.gradient_penalty` (the fused op; its double backward into the critic runs through
autograd). One iteration = ``n_critic`` critic updates, each on a fresh real batch and fresh noise,
then one generator update on fresh noise (Gulrajani et al.'s Algorithm 1). The critic sees
the generator's output detached (``no_grad``); the generator's update runs with the critic frozen,
so no gradient reaches the network that the step does not update.

Networks. Images of side ``s = b * 2^k`` (``k >= 2``, ``b >= 3``: 16, 28, 32, 64, 128, ...):

* generator: ``z -> Linear -> [BN] -> ReLU -> (w 2^(k-1), b, b)``, then ``k`` transposed convs
  (4x4, stride 2, pad 1) halving the channels, BN + ReLU between them, the last to ``C`` channels
  with ``tanh``;
* critic: ``k`` convs (4x4, stride 2, pad 1) ``C -> w -> 2w -> ...`` with LeakyReLU(0.2), then
  ``Linear -> 1``. No BatchNorm in the critic (WGAN-GP's rule: the penalty is per sample);
  ``critic_norm="layer"`` puts a LayerNorm (over C, H, W) after every conv but the first.

Weights are drawn as in DCGAN (conv/linear ``N(0, 0.02)``, BN scale ``N(1, 0.02)``, biases 0).
Points (``ring8``, ``grid25``): Gulrajani et al.'s toy nets, ``mlp_layers`` hidden ReLU layers of
``mlp_hidden`` units for both networks; noise of 2 dimensions (their toy setting).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import torch

from pygan.data.core import Batch, DataInfo, Dataset
from pygan.metrics.modes import mode_log
from pygan.models import (
    COUNT,
    GP_EVERY,
    LAYERS,
    WEIGHT,
    LazyPenalty,
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
from pygan.models.losses import d_loss_wgan, g_loss_wgan
from pygan.models.nets import ConvDecoder, ConvEncoder, Squeeze, conv_plan, init_dcgan, mlp
from pygan.ops import gradient_penalty

__all__ = ["WGANGP", "ConvCritic", "ConvGenerator", "WGANGPConfig", "conv_plan"]


@dataclass(frozen=True)
class WGANGPConfig(ModelConfig):
    """WGAN-GP settings. Defaults are the paper's (Gulrajani et al. 2017, restated in the Soft-Coupled
    GANs paper, Sec. 2.5 and 3.2): Adam ``lr = 1e-4``, ``betas = (0, 0.9)``, ``n_critic = 5`` critic
    steps per generator step, ``gp_weight`` (lambda) ``= 10``, batch 64, latent 128, ``width`` (their
    DIM) 64, no normalisation in the critic; toy nets: 3 hidden layers of 512 units, 2-D noise.

    Attributes:
        z_dim: latent size; None = 128 for images, 2 for points.
        gp_kind: ``"wgan-gp"`` (two-sided, the paper), ``"one-sided"`` or ``"r1"``
            (see :func:`pygan.ops.gradient_penalty`).
        g_batchnorm: BatchNorm in the generator (DCGAN style; the paper's CIFAR/LSUN generators).
        critic_norm: ``"none"`` (the paper) or ``"layer"``.
        gp_every: lazy regularisation (Karras et al. 2020, "Analyzing and Improving the Image Quality
            of StyleGAN", §B): the penalty on every ``gp_every``-th critic step (counted from the start
            of training) with its weight multiplied by ``gp_every``; 1 (every step) is the paper.
    """

    batch_size: int = batch_size_field(64)
    lr: float = lr_field(1e-4)
    betas: tuple[float, float] = betas_field((0.0, 0.9))
    n_critic: int = knob(5, COUNT)
    gp_weight: float = knob(10.0, WEIGHT)
    gp_kind: Literal["wgan-gp", "one-sided", "r1"] = "wgan-gp"
    z_dim: int | None = knob(None, COUNT)
    width: int = knob(64, COUNT)
    g_batchnorm: bool = True
    critic_norm: Literal["none", "layer"] = "none"
    mlp_hidden: int = knob(512, COUNT)
    mlp_layers: int = knob(3, LAYERS)
    gp_every: int = knob(1, GP_EVERY)
    ema_decay: float = ema_decay_field(0.0)
    ema_rampup: float = ema_rampup_field(0.05)

    def resolve(self, info: DataInfo):
        """This Config with ``z_dim`` set for data ``info`` (None: 128 for images, 2 for points)."""
        if self.z_dim is not None:
            return self
        return replace(self, z_dim=2 if info.kind == "points" else 128)


def ConvGenerator(z_dim: int, channels: int, size: int, width: int, batchnorm: bool) -> ConvDecoder:
    """The DCGAN generator (see :class:`pygan.models.nets.ConvDecoder`)."""
    return ConvDecoder(z_dim, channels, size, width, norm="batch" if batchnorm else "none")


def ConvCritic(channels: int, size: int, width: int, norm: str) -> ConvEncoder:
    """The critic: DCGAN discriminator without BatchNorm (``norm`` "none" or "layer"), one score per
    sample (see :class:`pygan.models.nets.ConvEncoder`)."""
    return ConvEncoder(channels, size, width, out_dim=1, norm=norm)


@register("wgan-gp")
class WGANGP(Model):
    """Unconditional WGAN-GP; see the module docstring."""

    #: the networks that make the outputs (averaged by the generator EMA, written by pygan export)
    generator_networks = ("generator",)

    Config = WGANGPConfig
    # small: the README's main job (docs/experiments/wgan_gp_digits.md: width 32, 2,400 steps on digits16)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 32}}
    default_data = "digits32"
    data_kinds = ("images", "points")

    def __init__(self, config: WGANGPConfig, info: DataInfo):
        super().__init__(config, info)
        c = config
        self.points = info.kind == "points"
        self.z_dim = self.resolved_config.z_dim
        if self.points:
            (d,) = info.shape
            self.generator = mlp(self.z_dim, d, c.mlp_hidden, c.mlp_layers)
            self.critic = Squeeze(mlp(d, 1, c.mlp_hidden, c.mlp_layers))
        else:
            ch, h, w = info.shape
            if h != w:
                raise ValueError(f"wgan-gp needs square images, got {h}x{w}")
            self.generator = ConvGenerator(self.z_dim, ch, h, c.width, c.g_batchnorm)
            self.critic = ConvCritic(ch, h, c.width, c.critic_norm)
            self.apply(init_dcgan)
        self.lazy_gp = LazyPenalty(c.gp_every, c.n_critic)

    @property
    def batches_per_step(self) -> int:
        return self.config.n_critic

    def configure_optimizers(self):
        return {"critic": self.adam(self.critic), "generator": self.adam(self.generator)}

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.z_dim, generator=generator, device=self.device)

    def graph_phase(self, iteration: int):
        """Which critic steps compute the penalty (lazy regularisation); one phase with gp_every=1."""
        return self.lazy_gp.phase(iteration)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Returns ``loss_d``, ``wdist`` (means over the critic steps), ``gp`` (lambda * GP, the mean
        over the critic steps that computed it; with ``gp_every > 1`` and none this iteration, the
        last one computed) and ``loss_g``, as detached tensors."""
        c = self.config
        G, D = self.wrapped("generator"), self.wrapped("critic")
        due = self.lazy_gp.due(self.iteration)
        loss_d_sum = wdist_sum = gp_sum = 0.0
        for part, penalise in zip(batch.split(c.n_critic), due):
            real = part.x
            with torch.no_grad():
                fake = G(self.noise(len(real))).to(real.dtype)  # bf16 under autocast
            # first-order passes: the compiled critic when compile_networks ran (else DDP / plain)
            d_real = self.wrapped("critic", compiled=True)(real).mean()
            d_fake = self.wrapped("critic", compiled=True)(fake).mean()
            loss_d = d_loss_wgan(d_real, d_fake)
            if penalise:
                gp = gradient_penalty(D, real, fake, weight=c.gp_weight * c.gp_every, kind=c.gp_kind)
                loss_d = loss_d + gp
                gp_sum = gp_sum + (gp.detach() if c.gp_every == 1 else gp.detach() / c.gp_every)
            self.update("critic", loss_d)
            loss_d_sum = loss_d_sum + loss_d.detach()
            wdist_sum = wdist_sum + (d_real - d_fake).detach()
        out = {
            "loss_d": loss_d_sum / c.n_critic,
            "wdist": wdist_sum / c.n_critic,
            "gp": self.lazy_gp.log(gp_sum, due),
        }
        with frozen(self.critic):
            score = self.wrapped("critic", plain=True, compiled=True)
            loss_g = g_loss_wgan(score(G(self.noise(len(batch) // c.n_critic))))
        self.update("generator", loss_g)
        out["loss_g"] = loss_g.detach()
        return out

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, batch: Batch | None = None):
        with eval_mode(self.generator):
            return self.generator(self.noise(n, generator)).float()

    @torch.no_grad()
    def evaluate(self, data: Dataset, generator: torch.Generator) -> dict[str, float]:
        """``wdist``: the critic's Wasserstein estimate ``mean D(x_test) - mean D(G(z))`` on up to
        1,000 test samples; for points also mode coverage (:func:`pygan.metrics.modes.mode_log`)."""
        real = data.fixed(min(len(data), 1000)).x.to(self.device)
        fake = self.sample(len(real), generator)
        out = {"wdist": float(self.critic(real).mean() - self.critic(fake).mean())}
        if self.points and "centers" in data.meta:
            pts = self.sample(2500, generator)
            out.update(mode_log(pts, data.meta["centers"], data.meta["std"]))
        return out

    def compile_networks(self) -> list[str]:
        """Compiles the generator, and the critic for its first-order uses (scoring real and fake
        batches, the generator's loss). The penalty's pass stays eager: its double backward does not
        go through ``torch.compile``."""
        self.generator.compile()
        self.compile_first_order("critic")
        return ["generator", "critic (first-order passes)"]
