"""UU-Nets (Wu Jionghao, "UU-Nets Connecting Discriminator and Generator for Image to Image
Translation") and the baselines it compares with: pix2pix and the U-Net VAE-GAN.

The paper's idea: the generator G *and* the discriminator D are U-Nets, and skip connections cross
from G into D, so that D's computation reads G's internal maps and "the discriminator could
backpropagate the gradients to the inner instance of generator, such that the generator could benefit
even when training discriminator" (§3.5). Registered models:

* ``pix2pix``: U-Net G + conditional PatchGAN D, ``L1`` (Isola et al. 2017), the paper's main
  baseline (Table 1);
* ``unet-vae-gan``: the "Unet-VAE-GAN"/"UVAE-GAN" baseline, a U-Net VAE G (Gaussian bottleneck, G-KL
  Eq. 3) + PatchGAN D, ``L2`` (Eq. 4);
* ``uunet``: UU-Net GAN, U-Net G + U-Net D with G->D connections: variants v1-v4, the unconnected
  control, the triple concatenation, with or without the tail module;
* ``uuvae-gan``: UUVAE-GAN, both U-Nets VAEs: G-KL (Eq. 3), D-KL on real/fake weighted alpha:beta
  (Eq. 6), cross-KL between G's and D's posteriors (Eq. 5), the tail; the same connections.

Networks (the paper's figures and supplement are unavailable). Both U-Nets are
pix2pix's (:class:`pygan.models.nets.UNet`: 4x4 stride-2 convs, BatchNorm, LeakyReLU / ReLU,
``tanh`` out; "we develop our linked generator and discriminator architectures from the original
Pix2pix design", §3.5) rather than the classic 3x3-conv + max-pool U-Net the same section also
describes, so that pix2pix is a like-for-like baseline. D's U-Net has the same depth as G's (the
"symmetric design" that makes the sides match), reads the pair ``[x, img]`` (pix2pix's conditional
D), has no dropout and a raw output map of ``d_width`` channels, followed by the head (the tail or a
1x1 conv; :class:`UUNetConfig`). "Weight sharing" between the four components is implemented as
*feature carrying* (our reading of "carried the features from inner generator's encoder to its
decoder, but also to the discriminator's encoder and decoder"): D has its own parameters and its
U-Net takes G's maps as extra concatenated inputs (:data:`CONNECTIONS`); no parameter is tied. G's
maps come from G's pass on ``x``, and the same maps accompany the real and the fake pair (in paired
translation G's input is ``x`` for both).

Objectives (paired data: input ``x``, target ``y``; ``D(x, img)`` judges the pair, pix2pix-style)::

    L_D = 1/2 [BCE(D(x, y | F_G), 1) + BCE(D(x, sg(G(x)) | F_G), 0)]     Eq. 1 (D maximises its log-lik.)
          (+ lambda_dis L_Dkl + lambda_ckl L_CKL)                        UUVAE-GAN: Eq. 6, Eq. 5
    L_G = adv_weight BCE(D(x, G(x) | F_G), 1) + lambda_re L_RE(G(x), y)  Eq. 2 (non-saturating), Eq. 4
          (+ lambda_Gkl L_Gkl + lambda_ckl L_CKL)                        VAE variants: Eq. 3, Eq. 5

``F_G`` are G's feature maps carried into D (UU-Nets only; :data:`VARIANTS`), ``sg`` stops the
gradient: the *image* D judges in its own update is detached, as in every GAN, but the carried maps
``F_G`` are **not**, so D's loss reaches G's parameters exactly through the connections (in the
unconnected control it does not reach G at all). Whether G's parameters then *step* on that gradient
is :attr:`UUNetConfig.g_in_d_step` (the paper implies they do; §8.3 of the spec).

Losses, with the paper's equations as printed and the choices where it is silent:

* ``L_RE`` (Eq. 4) ``= 1/2 sum_j (G(x)_j - y_j)^2`` per sample, averaged over the batch (Eq. 7's
  ``1/M``): ``rec_loss="l2"``. pix2pix's own ``mean |G(x) - y|`` with weight 100 is ``rec_loss="l1"``.
* ``L_Gkl`` (Eq. 3, sign corrected: printed as the negative KL, which is the ELBO term to
  *maximise*; the paper calls it a KL "distance") ``= -1/2 sum_j (1 + log sigma^2 - mu^2 - sigma^2)``
  per sample over all latent units, batch mean. G's posterior is the VAE bottleneck of its U-Net
  (:class:`pygan.models.nets.UNet` with ``vae=True``: 1x1 convs give ``mu`` and ``log sigma^2`` of the
  innermost map; ``z = mu + sigma * eps`` in training, ``mu`` at test time).
* ``L_Dkl = (alpha KL_real + beta KL_fake) / (alpha + beta)`` (Eq. 6), the KL of D's bottleneck
  posterior (vs ``N(0, I)``, Eq. 3's form) on the real and on the fake pair; D's loss only. The
  "Dis_kl0.4 / 0.65" rows of Table 1 are read as ``lambda_dis`` ("raising the proportion of the
  discriminator's KL loss", §5.3); the paper tunes alpha:beta separately. ``kl_fake_ramp`` optionally
  ramps beta linearly from 0 (§5.3: "L_diskl on fake is weak at first but strong in latter epochs" —
  maybe a schedule, maybe an observation; off by default).
* ``L_CKL`` (Eq. 5) ``= log(sigma_G / sigma_D) + (sigma_D^2 + (mu_D - mu_G)^2) / (2 sigma_G^2) - 1/2``,
  i.e. ``KL(q_D || q_G)`` per latent unit, summed over units (the KL of the factorised posteriors, like
  Eq. 3), batch mean. Both players minimise it (the paper only says it "restricts" D's hidden output
  to G's manifold): in D's update on D's real and fake posteriors mixed alpha:beta like Eq. 6, with
  gradients into D's posterior *and* G's (G's ``mu``/``sigma`` are not detached: the paper's joint
  gradient); in G's update on D's posterior of the fake pair (D frozen). G's and D's latents have
  the same shape (``z_channels``, same depth).
* Adversarial weight 1 (Eq. 7 omits the term; it is the GAN the paper says it "inherits"); D's loss
  is halved as in pix2pix. BCE on logits; G uses the non-saturating ``-log D(G(x))`` (Eq. 2).

Update order: one D update, then one G update per iteration (pix2pix's; the paper gives none), on
the same batch; G's forward is reused for G's update unless G's parameters moved in D's update (then
it is recomputed, so G's update sees the current weights). When G steps in D's update, it does so in
D's Adam (a second parameter group, with its own moment estimates), not in G's. Test time
(:meth:`_Translator.translate`): eval mode — no dropout, BatchNorm running statistics, the posterior
mean of a VAE bottleneck.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

import torch
from torch import nn

from pygan.amp import optimizer_step, scaled_backward, unscale_grads
from pygan.data.core import Batch, DataInfo, Dataset
from pygan.errors import ConfigError
from pygan.models import (
    COUNT,
    DROPOUT_LEVELS,
    WEIGHT,
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
from pygan.models.losses import at_least_f32, d_loss_bce, g_loss_bce, half_sq_sum, kl_normal, l1
from pygan.models.nets import ConvEncoder, UNet, init_dcgan
from pygan.models.pix2pix import (
    Norm,
    Pix2PixSettings,
    default_depth,
    pair_logits,
    patch_discriminator,
    resolve_sizes,
    unet,
)

__all__ = [
    "CONNECTIONS",
    "G_IN_D_STEP",
    "UUVAEGAN",
    "VARIANTS",
    "Pix2Pix",
    "Pix2PixConfig",
    "UNetVAEGAN",
    "UNetVAEGANConfig",
    "UUDiscriminator",
    "UUNet",
    "UUNetConfig",
    "UUVAEGANConfig",
    "cross_kl",
    "parse_connect",
    "reconstruction_loss",
]

#: Where G's maps enter D (both U-Nets have the same depth, so level k of one has the side of level k
#: of the other):
#:
#: * ``enc``: G's encoder map of level k is concatenated to the input of D's down block k + 1 (the
#:   D-encoder map of the same side): ``D_enc^k <- [D_enc^k, G_enc^k]``, levels 0 .. depth-2;
#: * ``latent``: G's code (bottleneck, or sampled ``z``) joins D's code before D's decoder;
#: * ``dec``: G's decoder map joins D's decoder at the same side: ``D_dec^k <- [D_dec^k, D_enc^k, G_dec^k]``
#:   (the last one enters D's output layer);
#: * ``skip``: the "triple concatenation" (§3.5): ``D_dec^k <- [D_dec^k, D_enc^k, G_enc^k]``.
CONNECTIONS = ("enc", "latent", "dec", "skip")

#: The paper's variants (Fig. 3, §5.2) as sets of connections. ``none`` is the unconnected UU-Net
#: control of §4.3 ("the same U-Net generator and a slightly changed U-Net discriminator"). ``uuc`` is
#: our reading of Table 1's undescribed "UUNetGAN-UUCNet" as the triple-concatenation decoder.
VARIANTS: dict[str, tuple[str, ...]] = {
    "none": (),
    "v1": ("enc",),
    "v2": ("latent",),
    "v3": ("dec",),
    "v4": ("enc", "dec"),
    "uuc": ("skip",),
}

#: What happens to G's parameters in D's update. ``cooperative``: G's parameters are in
#: D's optimizer (the literal "pass the entire generator object to the discriminator": D's optimizer
#: steps every parameter D's loss reaches) and descend D's loss; ``adversarial``: they *ascend* it
#: (the gradient reaching G is negated before D's optimizer steps); ``none``: only D's parameters
#: receive D's gradient and step.
GInDStep = Literal["cooperative", "adversarial", "none"]
G_IN_D_STEP = get_args(GInDStep)


def parse_connect(spec: str) -> tuple[str, ...]:
    """A variant name (:data:`VARIANTS`) or ``+``-joined connection names (``"enc+latent"``) -> the
    connections, in :data:`CONNECTIONS` order."""
    if not isinstance(spec, str):
        raise TypeError(f"connect must be a string, got {type(spec).__name__}")
    s = spec.strip().lower()
    if s in VARIANTS:
        return VARIANTS[s]
    parts = [p.strip() for p in s.split("+") if p.strip()]
    bad = [p for p in parts if p not in CONNECTIONS]
    if not parts or bad:
        raise ConfigError(
            f"connect must be one of {sorted(VARIANTS)} or '+'-joined connections from {list(CONNECTIONS)}, "
            f"got {spec!r}"
        )
    return tuple(c for c in CONNECTIONS if c in parts)


def cross_kl(
    mu_d: torch.Tensor, logvar_d: torch.Tensor, mu_g: torch.Tensor, logvar_g: torch.Tensor
) -> torch.Tensor:
    """Eq. 5, ``log(sigma_G / sigma_D) + (sigma_D^2 + (mu_D - mu_G)^2) / (2 sigma_G^2) - 1/2`` =
    ``KL(N(mu_D, sigma_D^2) || N(mu_G, sigma_G^2))`` per latent unit, summed per sample. Returns
    ``[B]``; differentiable in all four arguments (both posteriors)."""
    shapes = {tuple(t.shape) for t in (mu_d, logvar_d, mu_g, logvar_g)}
    if len(shapes) != 1:
        raise ValueError(
            "cross_kl needs D's and G's posteriors of the same shape, got "
            f"mu_d {tuple(mu_d.shape)}, logvar_d {tuple(logvar_d.shape)}, mu_g {tuple(mu_g.shape)}, "
            f"logvar_g {tuple(logvar_g.shape)}"
        )
    mu_d, logvar_d, mu_g, logvar_g = (at_least_f32(t) for t in (mu_d, logvar_d, mu_g, logvar_g))
    per = 0.5 * (logvar_g - logvar_d) + (logvar_d.exp() + (mu_d - mu_g).pow(2)) / (2 * logvar_g.exp()) - 0.5
    return per.flatten(1).sum(1)


def reconstruction_loss(out: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """``"l2"``: Eq. 4, ``1/2 sum_j (out_j - target_j)^2`` per sample, batch mean; ``"l1"``: pix2pix's
    ``mean |out - target|`` over every element."""
    if out.shape != target.shape:
        raise ValueError(f"output and target shapes differ: {tuple(out.shape)} vs {tuple(target.shape)}")
    if kind not in ("l1", "l2"):
        raise ConfigError(f"rec_loss must be 'l1' or 'l2', got {kind!r}")
    return half_sq_sum(out, target) if kind == "l2" else l1(out, target)


# ---- configs ---------------------------------------------------------------------------------------

RecLoss = Literal["l1", "l2"]


@dataclass(frozen=True)
class Pix2PixConfig(Pix2PixSettings):
    """pix2pix (Isola et al. 2017) as the UU-Nets paper's baseline: pix2pix's published settings
    (:class:`~pygan.models.pix2pix.Pix2PixSettings`; the paper gives none), BatchNorm, ``L1``
    weight 100, and ``batch_size = 8``, the batch the paper trains every Table 1 model with (§4.1;
    pix2pix itself used 1).

    Attributes:
        rec_loss: ``"l1"`` (pix2pix) or ``"l2"`` (Eq. 4: ``1/2`` sum of squares per sample).
            ``rec_weight`` is its weight (lambda).
        adv_weight: weight of G's adversarial term.
    """

    batch_size: int = batch_size_field(8)
    rec_loss: RecLoss = "l1"
    rec_weight: float = knob(100.0, WEIGHT)


@dataclass(frozen=True)
class UNetVAEGANConfig(Pix2PixConfig):
    """The U-Net VAE-GAN ("Unet-VAE-GAN"/"UVAE-GAN", UU-Nets paper, Sec. 3.6, Table 1): pix2pix's networks
    with a Gaussian bottleneck in the generator U-Net, the paper's ``L2`` reconstruction (Eq. 4,
    ``rec_weight`` = lambda_re) and G-KL (Eq. 3, ``kl_g`` = lambda_Gkl). The paper states no weights:
    all lambdas are 1, which with Eq. 4's per-sample *sum* already makes the pixel term dominate the
    adversarial one as pix2pix's ``100 x mean L1`` does.

    Attributes:
        z_channels: latent channels of the bottleneck (None: the U-Net's innermost width, ``8w``);
            the latent is ``z_channels x (size / 2^depth)^2`` units (a vector at full depth).
    """

    rec_loss: RecLoss = "l2"
    rec_weight: float = knob(1.0, WEIGHT)
    kl_g: float = knob(1.0, WEIGHT)
    z_channels: int | None = knob(None, COUNT)


@dataclass(frozen=True)
class UUNetConfig(ModelConfig):
    """UU-Net GAN settings. Paper (UU-Nets): batch 8 (§4.1); BCE GAN loss (Eq. 1, 2), ``L2``
    reconstruction (Eq. 4); both networks U-Nets "developed from the original Pix2pix design" (§3.5).
    Not stated, so pix2pix's conventions (see :class:`Pix2PixConfig`): Adam ``2e-4``, ``(0.5, 0.999)``,
    widths 64, BatchNorm, G dropout 3, one D step per G step; all lambdas 1 (see the module docstring).

    Attributes:
        connect: which G maps enter D: a variant of :data:`VARIANTS` — ``"v1"`` (encoders),
            ``"v2"`` (latent code), ``"v3"`` (decoders), ``"v4"`` (both encoders and decoders, the
            paper's "FUUnet", default: its headline variant), ``"uuc"`` (triple concatenation),
            ``"none"`` (the unconnected control) — or ``+``-joined :data:`CONNECTIONS`.
        g_in_d_step: :data:`G_IN_D_STEP`. Default ``"cooperative"``: G's parameters step on D's loss
            during D's update (the paper: "the generator could benefit even when training
            discriminator"; "pass the entire generator object to the discriminator" puts G's
            parameters in D's optimizer). ``"none"`` keeps G fixed in D's update.
        tail: the tail module (§3.3): D's U-Net map goes through a DCGAN discriminator body
            (:class:`pygan.models.nets.ConvEncoder`: stride-2 4x4 convs down to a side of 3-7 px,
            then a linear layer to one logit per image) — the "smooth transition from input image
            dimension to final binary output". Without it D's U-Net map goes "directly" through a
            1x1 conv to one logit per pixel (BCE averaged over pixels). Default on (§5.2: "crucial
            in stabilizing the discriminator").
        d_width: D U-Net's base width (its channel schedule is not stated; same as G's by default).
        d_norm: norm of D's U-Net and tail (not stated; pix2pix's BatchNorm). D has no dropout.
    """

    batch_size: int = batch_size_field(8)
    lr: float = lr_field(2e-4)
    betas: tuple[float, float] = betas_field((0.5, 0.999))
    width: int = knob(64, COUNT)
    d_width: int = knob(64, COUNT)
    depth: int | None = knob(None, COUNT)
    norm: Norm = "batch"
    d_norm: Norm = "batch"
    dropout: int = knob(3, DROPOUT_LEVELS)
    connect: str = "v4"
    g_in_d_step: GInDStep = "cooperative"
    tail: bool = True
    rec_loss: RecLoss = "l2"
    rec_weight: float = knob(1.0, WEIGHT)
    adv_weight: float = knob(1.0, WEIGHT)
    ema_decay: float = ema_decay_field(0.0)
    ema_rampup: float = ema_rampup_field(0.05)

    def resolve(self, info: DataInfo):
        """This Config with ``depth`` set for the data's image side (None: down to 1x1)."""
        return resolve_sizes(self, info)


@dataclass(frozen=True)
class UUVAEGANConfig(UUNetConfig):
    """UUVAE-GAN ("double UVAE-GAN", Fig. 4 (g), (h)): both U-Nets have a Gaussian bottleneck of
    ``z_channels`` channels. Defaults are the paper's best rows where they name a number: the
    discriminator-KL proportion ``kl_d`` (lambda_dis) 0.65 (Table 1 "Dis_kl0.65", better than 0.4),
    the cross-KL on (``ckl`` = lambda_ckl = 1; "UUVAE-GAN-ckl", best SSIM), the tail on ("UU-UVAE
    with tail", §5.3). ``alpha = beta = 1``, ``kl_g = 1`` (not stated). Connections as in
    :class:`UUNetConfig` (the paper does not say which a UUVAE-GAN uses; v4, the one it credits with
    the UU-Nets' stability, by default).

    Attributes:
        kl_g: lambda_Gkl, weight of G's KL (Eq. 3).
        kl_d: lambda_dis, weight of D's KL ``L_Dkl`` (Eq. 6).
        kl_alpha, kl_beta: Eq. 6's weights of D's KL on real and on fake pairs.
        kl_fake_ramp: if > 0, beta ramps linearly from 0 to ``kl_beta`` over this many iterations.
        ckl: lambda_ckl, weight of the cross-KL (Eq. 5) in both players' losses (0: off).
        z_channels: latent channels of both bottlenecks (None: G's innermost width).
    """

    kl_g: float = knob(1.0, WEIGHT)
    kl_d: float = knob(0.65, WEIGHT)
    kl_alpha: float = knob(1.0, WEIGHT)
    kl_beta: float = knob(1.0, WEIGHT)
    kl_fake_ramp: int = knob(0, lo=0, integer=True, note="iterations; 0: no ramp")

    ckl: float = knob(1.0, WEIGHT)
    z_channels: int | None = knob(None, COUNT)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kl_alpha + self.kl_beta <= 0:
            raise ConfigError("kl_alpha + kl_beta must be > 0 (Eq. 6 divides by it)")


# ---- shared base: a U-Net generator for paired data ------------------------------------------------


class _Translator(Model):
    """A U-Net generator ``x -> y`` for paired data (shared by every model of this file)."""

    #: the networks that make the outputs (averaged by the generator EMA, written by pygan export)
    generator_networks = ("generator",)

    data_kinds = ("paired",)
    default_data = "photo-edges32"
    vae = False

    def __init__(self, config, info: DataInfo):
        super().__init__(config, info)
        c = self.resolved_config
        if len(info.shape) != 3 or info.target_shape is None or len(info.target_shape) != 3:
            raise ValueError(f"{self.name} needs image pairs, got shapes {info.shape} -> {info.target_shape}")
        cx, h, w = info.shape
        cy, ht, wt = info.target_shape
        if h != w or (ht, wt) != (h, w):
            raise ValueError(
                f"{self.name} needs square inputs and targets of the same side, got {h}x{w} -> {ht}x{wt} "
                "(resize the data, e.g. ?size=32)"
            )
        self.size = h
        # None only below 2 px (resolve_sizes leaves it): log2(size) = 0, refused just below
        self.depth = c.depth if c.depth is not None else default_depth(h)
        if self.depth < 2 or h % (2**self.depth):
            raise ValueError(
                f"{self.name} needs a U-Net depth >= 2 with the image side divisible by 2^depth; got depth "
                f"{self.depth} for {h} px (set depth, or resize the data, e.g. ?size=32)"
            )
        z = getattr(c, "z_channels", None)
        self.generator = unet(cx, cy, h, c, vae=self.vae, latent_channels=z if self.vae else None)

    def configure_optimizers(self):
        return {"discriminator": self.adam(self.discriminator), "generator": self.adam(self.generator)}

    def _rec(self, fake: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return reconstruction_loss(fake.float(), y.float(), self.config.rec_loss)

    @torch.no_grad()
    def translate(self, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """G's output for inputs ``x`` ``[N, C, H, W]`` in [-1, 1], in eval mode (no dropout,
        BatchNorm running statistics, the posterior mean for a VAE bottleneck); what ``pygan eval``
        scores against the test targets. The previous mode is restored."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != tuple(self.info.shape):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be [N, {', '.join(map(str, self.info.shape))}], got {got}")
        if len(x) == 0:
            return torch.zeros((0, *self.info.target_shape), device=self.device)
        with eval_mode(self.generator):
            outs = [self.generator(part.to(self.device)).float() for part in x.split(batch_size)]
        return torch.cat(outs)

    def sample(self, n: int, generator: torch.Generator | None = None, batch: Batch | None = None):
        """Translations of the first ``n`` inputs of ``batch`` (deterministic in eval mode, so
        ``generator`` is unused)."""
        if batch is None:
            raise ValueError(f"{self.name} translates images: sample() needs a batch of inputs")
        return self.translate(batch.x[:n])

    @torch.no_grad()
    def evaluate(self, data: Dataset, generator: torch.Generator) -> dict[str, float]:
        """MSE, PSNR and SSIM (``pygan.metrics``, images in [-1, 1], data range 2) of the
        translations of up to 256 test pairs."""
        from pygan.metrics.image_quality import mse, psnr, ssim

        batch = data.fixed(min(len(data), 256))
        out = self.translate(batch.x)
        y = batch.target.to(out.device).float()
        res = {"mse": float(mse(out, y)), "psnr": float(psnr(out, y))}
        if out.shape[-1] >= 11:
            res["ssim"] = float(ssim(out, y))
        return res

    def compile_networks(self) -> list[str]:
        """Compiles both networks (no double backward anywhere in these models)."""
        self.generator.compile()
        self.discriminator.compile()
        return ["generator", "discriminator"]


# ---- baselines -------------------------------------------------------------------------------------


@register("pix2pix")
class Pix2Pix(_Translator):
    """pix2pix: U-Net G, conditional PatchGAN D on ``[x, img]``; ``L_D = 1/2 [BCE(D(x, y), 1) +
    BCE(D(x, sg(G(x))), 0)]``, ``L_G = BCE(D(x, G(x)), 1) + lambda L1(G(x), y)``."""

    Config = Pix2PixConfig
    # small: docs/experiments/uunet.md's runs (G and D at width 16; batch 8 is the default)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 16, "d_width": 16}}

    def __init__(self, config: Pix2PixConfig, info: DataInfo):
        super().__init__(config, info)
        self.discriminator = patch_discriminator(
            info.shape[0] + info.target_shape[0], self.size, self.resolved_config
        )
        self.apply(init_dcgan)

    def generator_extra_loss(self, feats: dict) -> dict[str, torch.Tensor]:
        return {}

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        x, y = batch.x, batch.target
        G, D = self.wrapped("generator"), self.wrapped("discriminator")
        fake, feats = G(x, return_features=True)
        # D's update: real pairs -> 1, fake pairs (G's output detached) -> 0
        real_logits, fake_logits = pair_logits(D, x, y), pair_logits(D, x, fake.detach())
        loss_d = 0.5 * d_loss_bce(real_logits, fake_logits)
        self.update("discriminator", loss_d)
        # G's update: fool the (frozen) D and stay close to the target
        with frozen(self.discriminator):
            adv = g_loss_bce(pair_logits(self.discriminator, x, fake))
        rec = self._rec(fake, y)
        extra = self.generator_extra_loss(feats)
        loss_g = c.adv_weight * adv + c.rec_weight * rec + sum(extra.values())
        self.update("generator", loss_g)
        loss_d = loss_d.detach()
        out = {"loss_d": loss_d, "loss_g": loss_g.detach(), "adv_d": loss_d, "adv_g": adv.detach()}
        out["rec"] = rec.detach()
        out["d_real"] = torch.sigmoid(real_logits.detach()).mean()
        out["d_fake"] = torch.sigmoid(fake_logits.detach()).mean()
        out.update({k: v.detach() for k, v in extra.items()})
        return out


@register("unet-vae-gan")
class UNetVAEGAN(Pix2Pix):
    """The U-Net VAE-GAN baseline: :class:`Pix2Pix` with a VAE bottleneck in G, ``L_G = BCE(D(x,
    G(x)), 1) + lambda_re L_RE + lambda_Gkl L_Gkl`` (Eq. 3, 4)."""

    Config = UNetVAEGANConfig
    # small: docs/experiments/uunet.md's runs (G and D at width 16)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 16, "d_width": 16}}
    vae = True

    def generator_extra_loss(self, feats: dict) -> dict[str, torch.Tensor]:
        return {"kl_g": self.config.kl_g * kl_normal(feats["mu"], feats["logvar"])}


# ---- UU-Nets ---------------------------------------------------------------------------------------


class UUDiscriminator(nn.Module):
    """D of a UU-Net: a U-Net (:class:`pygan.models.nets.UNet`, ``out_act="none"``, no dropout) on
    the pair ``[x, img]`` that takes G's maps at the levels ``connect`` names, then the head: the tail
    (a :class:`pygan.models.nets.ConvEncoder` down to one logit per image) or a 1x1 conv to one logit
    per pixel.

    ``forward(pair, g_feats)`` -> ``(logits, d_feats)``; ``g_feats`` is G's feature dict
    (``UNet(..., return_features=True)``), used as is (not detached)."""

    def __init__(
        self,
        in_channels: int,
        size: int,
        width: int,
        depth: int,
        norm: str,
        connect: tuple[str, ...],
        g_channels: tuple[int, ...],
        g_latent: int,
        tail: bool,
        vae: bool = False,
        latent_channels: int | None = None,
    ):
        super().__init__()
        self.connect = tuple(connect)
        self.depth = depth
        d = depth
        # G's maps: down[i] has g_channels[i] channels at side size / 2^(i+1); up[j] mirrors down[d-2-j]
        extra_down = [0] * d
        extra_up = [0] * d
        if "enc" in connect:
            for i in range(1, d):
                extra_down[i] += g_channels[i - 1]
        if "latent" in connect:
            extra_up[0] += g_latent
        if "dec" in connect:
            for j in range(1, d):
                extra_up[j] += g_channels[d - 1 - j]
        if "skip" in connect:
            for j in range(1, d):
                extra_up[j] += g_channels[d - 1 - j]
        self.unet = UNet(
            in_channels,
            width,
            size,
            width,
            depth,
            norm,
            dropout=0,
            out_act="none",
            extra_down=extra_down,
            extra_up=extra_up,
            vae=vae,
            latent_channels=latent_channels,
        )
        if tail:
            self.head = nn.Sequential(
                nn.LeakyReLU(0.2), ConvEncoder(width, size, width, out_dim=1, norm=norm)
            )
        else:
            self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(width, 1, 1))

    def carried(self, g_feats: dict) -> tuple[list, list]:
        """G's maps placed at D's levels: ``(extra_down, extra_up)`` for :class:`UNet`."""
        d = self.depth
        down: list = [None] * d
        up: list[list] = [[] for _ in range(d)]
        gd, gu = g_feats["down"], g_feats["up"]
        if "enc" in self.connect:
            for i in range(1, d):
                down[i] = gd[i - 1]
        if "latent" in self.connect:
            up[0].append(g_feats["latent"])
        if "dec" in self.connect:
            for j in range(1, d):
                up[j].append(gu[j - 1])
        if "skip" in self.connect:
            for j in range(1, d):
                up[j].append(gd[d - 1 - j])
        return down, [None if not u else u[0] if len(u) == 1 else torch.cat(u, 1) for u in up]

    def forward(self, pair: torch.Tensor, g_feats: dict | None = None):
        if self.connect and g_feats is None:
            raise ValueError(f"this discriminator reads G's maps ({'+'.join(self.connect)}): pass g_feats")
        down, up = self.carried(g_feats) if self.connect else (None, None)
        h, feats = self.unet(pair, return_features=True, extra_down=down, extra_up=up)
        logits = self.head(h)
        return logits, feats


@register("uunet")
class UUNet(_Translator):
    """UU-Net GAN: U-Net G and U-Net D with G->D connections; see the module docstring.

    ``training_step`` = :meth:`discriminator_loss` + :meth:`update_discriminator`, then
    :meth:`generator_loss` + ``update("generator")``."""

    Config = UUNetConfig
    # small: docs/experiments/uunet.md's runs (G and D at width 16)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 16, "d_width": 16}}

    def __init__(self, config: UUNetConfig, info: DataInfo):
        super().__init__(config, info)
        c = self.resolved_config
        self.connect = parse_connect(c.connect)
        g = self.generator
        self.discriminator = UUDiscriminator(
            info.shape[0] + info.target_shape[0],
            self.size,
            c.d_width,
            self.depth,
            c.d_norm,
            self.connect,
            g.channels,
            g.latent_channels,
            c.tail,
            vae=self.vae,
            latent_channels=g.latent_channels if self.vae else None,
        )
        self.apply(init_dcgan)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    def configure_optimizers(self):
        """``discriminator``: D's parameters, plus (``g_in_d_step`` cooperative/adversarial) a second
        parameter group with G's parameters; ``generator``: G's parameters."""
        c = self.config
        groups = [{"params": list(self.discriminator.parameters())}]
        if c.g_in_d_step != "none":
            groups.append({"params": list(self.generator.parameters())})
        return {
            "discriminator": torch.optim.Adam(groups, lr=c.lr, betas=c.betas),
            "generator": self.adam(self.generator),
        }

    def generate(self, G: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """``G(x)`` and G's feature maps (the ones D reads; not detached)."""
        return G(x, return_features=True)

    def discriminate(self, D: nn.Module, x: torch.Tensor, img: torch.Tensor, g_feats: dict):
        """D's logits for the pair ``(x, img)``, reading G's maps ``g_feats``; and D's feature dict."""
        return D(torch.cat([x, img.to(x.dtype)], 1), g_feats)  # pix2pix's pair, and G's maps

    # -- the two losses --------------------------------------------------------------------------
    def discriminator_loss(self, D, x, y, fake, g_feats) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``L_D = 1/2 [BCE(D(x, y | F_G), 1) + BCE(D(x, sg(fake) | F_G), 0)]`` (+ the VAE terms).
        The same G maps ``F_G`` (from G's pass on ``x``) accompany the real and the fake pair: in
        paired translation G's input is ``x`` for both."""
        real_logits, d_real = self.discriminate(D, x, y, g_feats)
        fake_logits, d_fake = self.discriminate(D, x, fake.detach(), g_feats)
        adv = 0.5 * d_loss_bce(real_logits, fake_logits)
        terms = {"adv_d": adv}
        terms.update(self.discriminator_extra_loss(d_real, d_fake, g_feats))
        terms["d_real"] = torch.sigmoid(real_logits.detach()).mean()
        terms["d_fake"] = torch.sigmoid(fake_logits.detach()).mean()
        loss = sum(v for k, v in terms.items() if k not in ("d_real", "d_fake"))
        return loss, terms

    def discriminator_extra_loss(self, d_real: dict, d_fake: dict, g_feats: dict) -> dict[str, torch.Tensor]:
        return {}

    def generator_loss(self, D, x, y, fake, g_feats) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``L_G = adv_weight BCE(D(x, fake | F_G), 1) + lambda_re L_RE(fake, y)`` (+ VAE terms); the
        adversarial gradient reaches G through the fake image *and* the carried maps."""
        c = self.config
        logits, d_fake = self.discriminate(D, x, fake, g_feats)
        terms = {"adv_g": g_loss_bce(logits), "rec": self._rec(fake, y)}
        loss = c.adv_weight * terms["adv_g"] + c.rec_weight * terms["rec"]
        extra = self.generator_extra_loss(d_fake, g_feats)
        terms.update(extra)
        return loss + sum(extra.values()), terms

    def generator_extra_loss(self, d_fake: dict, g_feats: dict) -> dict[str, torch.Tensor]:
        return {}

    # -- D's update with or without G --------------------------------------------------------------
    def update_discriminator(self, loss_d: torch.Tensor) -> dict:
        """One step of D's optimizer on ``loss_d``. ``g_in_d_step="none"``: the gradient is taken for
        D's parameters only (G receives none). ``"cooperative"``: for every parameter ``loss_d``
        reaches, G's included (through the carried maps), and D's optimizer steps them all;
        ``"adversarial"``: as cooperative with G's gradient negated. Returns ``g_grad_norm`` (the norm
        of the gradient D's loss gave G: a detached tensor, zero when G got none; 0.0 for ``"none"``)
        and ``g_moved`` (whether G moved: a Python bool, the same every step)."""
        opt = self.optimizers["discriminator"]
        opt.zero_grad(set_to_none=True)
        mode = self.config.g_in_d_step
        if mode == "none":
            scaled_backward(loss_d, inputs=[p for p in self.discriminator.parameters() if p.requires_grad])
            optimizer_step(opt)
            return {"g_grad_norm": 0.0, "g_moved": False}
        scaled_backward(loss_d)
        unscale_grads(opt)  # --amp fp16: the norm and the sign flip below see true gradients
        g_params = [p for p in opt.param_groups[1]["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in g_params])) if g_params else None
        if mode == "adversarial":
            for p in g_params:
                p.grad.neg_()
        optimizer_step(opt)
        norm = norm.detach() if norm is not None else loss_d.detach().new_zeros(())
        return {"g_grad_norm": norm, "g_moved": bool(g_params)}

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        x, y = batch.x, batch.target
        G, D = self.wrapped("generator"), self.wrapped("discriminator")
        fake, g_feats = self.generate(G, x)
        # (1) D's update: L_D (G's maps carried in, not detached; G steps with D iff g_in_d_step)
        loss_d, terms_d = self.discriminator_loss(D, x, y, fake, g_feats)
        info = self.update_discriminator(loss_d)
        # (2) G's update: L_G through the frozen D (recompute G's pass if G's weights just moved)
        if info["g_moved"]:
            fake, g_feats = self.generate(G, x)
        with frozen(self.discriminator):
            loss_g, terms_g = self.generator_loss(self.discriminator, x, y, fake, g_feats)
            self.update("generator", loss_g)
        self.steps_done += 1
        out = {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}
        out.update({k: v.detach() for k, v in {**terms_d, **terms_g}.items()})
        if c.g_in_d_step != "none":
            out["g_grad_norm_from_d"] = info["g_grad_norm"]
        return out


@register("uuvae-gan")
class UUVAEGAN(UUNet):
    """UUVAE-GAN: :class:`UUNet` whose G and D U-Nets have Gaussian bottlenecks of the same shape.
    D's loss adds ``lambda_dis L_Dkl`` (Eq. 6) and ``lambda_ckl L_CKL`` (Eq. 5, on D's real and fake
    posteriors mixed alpha:beta); G's adds ``lambda_Gkl L_Gkl`` (Eq. 3) and ``lambda_ckl L_CKL`` (on
    D's posterior of the fake pair)."""

    Config = UUVAEGANConfig
    # small: docs/experiments/uunet.md's runs (G and D at width 16)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 16, "d_width": 16}}
    vae = True

    def beta(self) -> float | torch.Tensor:
        """Eq. 6's beta at this iteration (``kl_fake_ramp``: linear from 0, computed on the device
        from the ``steps_done`` buffer, so that a CUDA graph replays the ramp)."""
        c = self.config
        if c.kl_fake_ramp <= 0:
            return c.kl_beta
        return c.kl_beta * (self.steps_done.float() / c.kl_fake_ramp).clamp(max=1.0)

    def _mix(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """``(alpha real + beta fake) / (alpha + beta)``; ``real`` while both weights are 0 (beta's
        ramp starting at 0 with ``kl_alpha = 0``)."""
        a, b = self.config.kl_alpha, self.beta()
        if not torch.is_tensor(b):
            return (a * real + b * fake) / (a + b) if a + b > 0 else real
        mixed = (a * real + b * fake) / (a + b).clamp(min=torch.finfo(torch.float32).tiny)
        return torch.where(a + b > 0, mixed, real)

    def discriminator_extra_loss(self, d_real: dict, d_fake: dict, g_feats: dict) -> dict[str, torch.Tensor]:
        c = self.config
        out = {}
        kl_real = kl_normal(d_real["mu"], d_real["logvar"])
        kl_fake = kl_normal(d_fake["mu"], d_fake["logvar"])
        out["kl_d"] = c.kl_d * self._mix(kl_real, kl_fake)
        if c.ckl:
            mg, lg = g_feats["mu"], g_feats["logvar"]
            ck_real = cross_kl(d_real["mu"], d_real["logvar"], mg, lg).mean()
            ck_fake = cross_kl(d_fake["mu"], d_fake["logvar"], mg, lg).mean()
            out["ckl_d"] = c.ckl * self._mix(ck_real, ck_fake)
        return out

    def generator_extra_loss(self, d_fake: dict, g_feats: dict) -> dict[str, torch.Tensor]:
        c = self.config
        out = {"kl_g": c.kl_g * kl_normal(g_feats["mu"], g_feats["logvar"])}
        if c.ckl:
            out["ckl_g"] = (
                c.ckl * cross_kl(d_fake["mu"], d_fake["logvar"], g_feats["mu"], g_feats["logvar"]).mean()
            )
        return out
