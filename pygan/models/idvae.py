"""IDVAE — Implicit Discriminator in Variational Autoencoder (Munjal, Paul, Krishnan) — with
its variants IDVAE(R) and the conditional C-IDVAE, and the two baselines the paper compares against:
a plain VAE (Kingma & Welling) and VAE-GAN (Larsen et al. 2016) with its own discriminator.

The idea (paper §3.3, Fig. 2): a **two-tier** VAE/GAN hybrid. The VAE decoder *is* the generator
(``θ_dec``), and the encoder *is* the discriminator up to its penultimate layer ``l``: one trunk
``θ_shared`` computes ``h = Enc_l(x) = Dis_l(x)``, and three single fully connected heads read it —
``θ_μ`` and ``θ_Σ`` (together ``θ_enc``) for ``q(z|x) = N(μ, diag σ²)`` and ``θ_dis`` for the real/fake
logit (``Dis(x) = sigmoid(logit)``). In this implementation ``IDVAE.trunk`` is a single
:class:`~pygan.models.nets.ConvEncoder` whose Parameters are used by both roles (there is no copy);
``enc_head`` and ``dis_head`` are the heads, ``decoder`` the generator.

Losses (paper eqs. 8, 9, 12, 13; sums over pixels/features/latents per sample, means over the batch)::

    L_recons     = ||x - Dec(z)||^2,                     z = μ(x) + σ(x) ε      (eq. 4, "square loss")
    L_prior      = KL(q(z|x) || N(0, I)) = 0.5 Σ_j (μ_j² + σ_j² - log σ_j² - 1)  (eq. 5)
    L_enc        = α L_recons + β L_prior                                        (eq. 8)
    L_dis        = -[log Dis(x) + log(1 - Dis(Dec(z'))) + log(1 - Dis(Dec(z)))]  (eq. 9, unweighted)
    L_recons^dis = 0.5 ||Dis_l(Dec(z)) - Dis_l(x)||^2                            (eqs. 10-11)
    L_GAN        = -log Dis(Dec(z')) - log Dis(Dec(z))                           (eq. 12, non-saturating)
    L_dec        = ω L_GAN + λ L_recons^dis  [+ γ L_recons for IDVAE(R)]          (eq. 13)

with ``z' ~ N(0, I)``. One iteration is Algorithm 1's three sequential updates (§3.4), each with fresh
forward passes through the networks as they are after the previous update:

1. ``L_dis`` steps ``θ_shared ∪ θ_dis`` (the decoder's outputs are computed under ``no_grad``);
2. ``L_enc`` steps ``θ_shared ∪ θ_enc`` (the decoder is frozen: the gradient flows *through* it into
   the encoder, but no decoder parameter receives one);
3. ``L_dec`` steps ``θ_dec`` (trunk and heads frozen; the real features ``Dis_l(x)`` and the codes
   ``z = Enc(x)`` are constants).

So ``θ_shared`` is updated twice per iteration, first with the reverse-KL (adversarial) signal, then
with the forward-KL (reconstruction) signal, "which is leveraged by the decoder/generator in the
third step". ``Config.order = "enc-first"`` swaps steps 1 and 2 (the alternative the paper reports
only qualitatively, in its supplement). The feature-space and pixel-space squared distances are
computed by the fused op :func:`pygan.ops.feature_regularizer` (``p=2, reduction="sum"``,
``detach_b=True``: the target side is a constant).

Decisions where the paper is silent (its supplement with the architectures and
hyperparameters is not available):

* **Architecture** (§9.1, 9.2). DCGAN-style nets from :mod:`pygan.models.nets` (the spec points to
  Larsen et al.'s conv encoder/decoder): the trunk is ``k`` 4x4 stride-2 convs ``C -> w -> 2w ...``
  with LeakyReLU(0.2); **layer l is the last conv stage** (flattened), i.e. the trunk ends in conv
  features and the three heads are single ``Linear`` layers on them, as Fig. 2 draws them. The
  decoder is :class:`~pygan.models.nets.ConvDecoder` (``Linear`` to ``(w 2^(k-1), b, b)``, ``k``
  transposed convs, BatchNorm + ReLU, ``tanh`` output: pixels in [-1, 1]). DCGAN initialisation.
* **Trunk normalisation** ``trunk_norm="layer"`` (LayerNorm over C, H, W after every conv but the
  first). The trunk is shared by the encoder and the discriminator: BatchNorm would normalise real
  and fake batches with different statistics (a known discriminator leak) and its running
  statistics, used by ``reconstruct`` in eval mode, would mix real and generated images. A
  per-sample norm behaves identically in both roles and in train and eval mode.
* **Σ** is diagonal, parameterised by its log-variance (``enc_head.logvar``).
* **Latent size** 128 (Larsen et al.'s choice; any ``z_dim`` works).
* **Loss scales** (§9.5): per-sample sums, batch means, so ``α = β = 1`` is the usual ELBO with a
  Gaussian decoder of variance 1/2 on [-1, 1] pixels. ``ω``, ``λ`` default to 1.
* **Optimisers** (§9.3, 9.10): Adam ``lr = 2e-4``, ``betas = (0.5, 0.999)`` (DCGAN's settings), one
  optimiser per update step — ``"dis"`` over ``θ_shared ∪ θ_dis``, ``"enc"`` over
  ``θ_shared ∪ θ_enc``, ``"dec"`` over ``θ_dec``. The trunk's two updates therefore keep separate
  Adam moments: ``L_dis`` and ``L_enc`` have very different scales, and one shared second-moment
  estimate would let the larger loss set the step size of the other.
* **Stochastic codes** (§9.8): ``Dec(Enc(x))`` uses the reparameterised sample ``z = μ + σ ε``
  (eq. 1: ``z ~ q(z|x)``), in ``L_dis``, ``L_enc`` and ``L_dec`` alike.
* **Noise per iteration** (§5.2): one ``ε`` and one ``z'`` are drawn per iteration (Algorithm 1 draws
  ``Z`` and ``Z'`` once per iteration, lines 4-7) and reused by the three steps, while ``μ`` and ``σ``
  are recomputed by each step from the current trunk.
* **Batching**: the discriminator scores ``[x, Dec(z), Dec(z')]`` in one trunk pass and the decoder
  decodes ``[z, z']`` in one pass (one BatchNorm batch for the generator's two fake sources); with
  the per-sample trunk norm this equals three separate passes.
* **Reconstruction** (``reconstruct``, §9.13) decodes the mean ``μ(x)`` in eval mode.

C-IDVAE (§5.3, following IcGAN): the one-hot label ``y`` is concatenated to ``z`` at the decoder's
input and tiled as extra feature maps after the trunk's first convolution (``ConvEncoder(cond_dim=)``),
so the encoder (which *is* the discriminator's trunk) sees it too: ``q(z|x, y)``, with the prior
``N(0, I)`` unconditioned. Reconstructions and their discriminator/decoder passes use the data's
``y``; random generations ``Dec(z', y')`` use the batch's labels ``y' = y`` (the empirical label
distribution, no extra randomness); no mismatched ``(x, y)`` pairs are shown to the discriminator
(the paper mentions none).

IDVAE(R) (§5.1): "explicitly minimize L_recons in the decoder" — ``L_dec + γ L_recons`` with the pixel
loss on ``Dec(z)`` now also stepping ``θ_dec`` (the spec's reading of the undefined ``γ``); default
``γ = 1``.

Baselines. ``vae``: the same encoder (trunk + Gaussian heads) and decoder trained jointly on
``α L_recons + β L_prior``. ``vae-gan``: Larsen et al.'s VAE-GAN, i.e. IDVAE with a *separate*
discriminator (its own trunk of the same architecture, plus a ``Linear`` head), which the paper calls
the special case of IDVAE without sharing. As in Larsen et al. the encoder is trained with the
feature-space likelihood at the discriminator's layer ``l`` (``L_enc = α L_recons^dis + β L_prior``,
``encoder_loss="feature"``); ``encoder_loss="pixel"`` keeps IDVAE's pixel loss instead (the pure
"no sharing" ablation). Its three updates run in the same order as IDVAE's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from pygan.data.core import Batch, DataInfo, Dataset
from pygan.models import (
    COUNT,
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
from pygan.models.losses import bce_fake, bce_real, kl_normal, mse, reparameterize
from pygan.models.nets import ConvDecoder, ConvEncoder, NormName, conv_plan, init_dcgan
from pygan.ops import feature_regularizer

__all__ = [
    "IDVAE",
    "IDVAER",
    "VAE",
    "VAEGAN",
    "ConditionalIDVAE",
    "ConditionalIDVAEConfig",
    "GaussianHeads",
    "IDVAEConfig",
    "IDVAERConfig",
    "VAEConfig",
    "VAEGANConfig",
    "sum_sq",
]


# ---- configs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VAEConfig(ModelConfig):
    """Settings of the plain VAE baseline (and the parts every model here shares). The paper states
    none of these numbers (its supplement holds them); the choices are explained in the
    module docstring.

    Attributes:
        batch_size: rows per iteration.
        z_dim: latent size (Larsen et al. use 128).
        width: channels of the first trunk conv / last decoder stage (DCGAN's 64).
        trunk_norm: norm in the encoder trunk: ``"layer"`` (default), ``"none"``, ``"batch"``,
            ``"instance"``.
        decoder_norm: ``"batch"`` (DCGAN generator), ``"instance"`` or ``"none"``.
        lr, betas: Adam settings (DCGAN's 2e-4, (0.5, 0.999)).
        alpha: weight of the reconstruction term in the encoder's loss (eq. 8's α).
        beta: weight of the KL term (eq. 8's β).
    """

    batch_size: int = batch_size_field(64)
    z_dim: int = knob(128, COUNT)
    width: int = knob(64, COUNT)
    trunk_norm: NormName = "layer"
    decoder_norm: Literal["batch", "instance", "none"] = "batch"
    lr: float = lr_field(2e-4)
    betas: tuple[float, float] = betas_field((0.5, 0.999))
    alpha: float = knob(1.0, WEIGHT)
    beta: float = knob(1.0, WEIGHT)
    ema_decay: float = ema_decay_field(0.0)
    ema_rampup: float = ema_rampup_field(0.05)


@dataclass(frozen=True)
class IDVAEConfig(VAEConfig):
    """IDVAE settings (paper §3.3-3.4; values not stated there — see the module docstring).

    Attributes:
        omega: weight ω of the adversarial term ``L_GAN`` in the decoder's loss (eq. 13).
        lam: weight λ of the feature reconstruction ``L_recons^dis`` in the decoder's loss (eq. 13).
        gamma: weight γ of the pixel reconstruction in the decoder's loss: 0 is IDVAE, > 0 IDVAE(R).
        order: ``"dis-first"`` (Algorithm 1: discriminator step, then encoder step, then decoder) or
            ``"enc-first"`` (encoder step first; the paper's alternative).
    """

    omega: float = knob(1.0, WEIGHT)
    lam: float = knob(1.0, WEIGHT)
    gamma: float = knob(0.0, WEIGHT)
    order: Literal["dis-first", "enc-first"] = "dis-first"


@dataclass(frozen=True)
class IDVAERConfig(IDVAEConfig):
    """IDVAE(R) (paper §5.1): IDVAE whose decoder also minimises the pixel reconstruction, weight
    ``gamma`` (the paper's undefined γ; default 1)."""

    gamma: float = knob(1.0, WEIGHT)


@dataclass(frozen=True)
class ConditionalIDVAEConfig(IDVAEConfig):
    """C-IDVAE (paper §5.3): IDVAE's settings; the condition is the data's class label (one-hot)."""


@dataclass(frozen=True)
class VAEGANConfig(IDVAEConfig):
    """VAE-GAN (Larsen et al. 2016) as the paper's baseline: IDVAE's settings plus

    Attributes:
        encoder_loss: ``"feature"`` (Larsen et al.: the encoder minimises the discriminator-feature
            likelihood ``L_recons^dis``) or ``"pixel"`` (IDVAE's pixel loss: IDVAE without sharing).
    """

    encoder_loss: Literal["feature", "pixel"] = "feature"


# ---- loss pieces -----------------------------------------------------------------------------------


def sum_sq(a: torch.Tensor, target: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``scale * mean_b sum_i (a_bi - target_bi)^2``: the per-sample squared distance summed over
    every non-batch element, averaged over the batch, with no gradient into ``target``. Computed by
    the fused :func:`pygan.ops.feature_regularizer` (``p=2``, ``reduction="sum"``, weight
    ``scale / B``, ``detach_b=True``); bfloat16/float16 inputs (bf16 autocast) are upcast to float32
    first."""
    if a.shape != target.shape:
        raise ValueError(
            f"a and target must have the same shape, got {tuple(a.shape)} and {tuple(target.shape)}"
        )
    if a.shape[0] == 0:
        raise ValueError("sum_sq needs a non-empty batch")
    if a.dtype in (torch.bfloat16, torch.float16):  # bf16 autocast: the loss in float32, as torch's
        a = a.float()  # own losses are under autocast (the op would round its result to bf16)
    return feature_regularizer(
        [a], [target.to(a.dtype)], p=2, reduction="sum", weights=[scale / a.shape[0]], detach_b=True
    )


# ---- networks --------------------------------------------------------------------------------------


class GaussianHeads(nn.Module):
    """``θ_enc = {θ_μ, θ_Σ}``: two single ``Linear`` layers on the trunk features, giving ``μ`` and the
    log-variance of the diagonal Gaussian posterior."""

    def __init__(self, in_features: int, z_dim: int):
        super().__init__()
        self.mu = nn.Linear(in_features, z_dim)
        self.logvar = nn.Linear(in_features, z_dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(h), self.logvar(h)


class _DisHead(nn.Module):
    """``θ_dis``: a single ``Linear`` layer to one logit per sample (``Dis(x) = sigmoid(logit)``)."""

    def __init__(self, in_features: int):
        super().__init__()
        self.fc = nn.Linear(in_features, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(h).squeeze(1)


# ---- the shared base -------------------------------------------------------------------------------


class _VAEBase(Model):
    """Encoder trunk + Gaussian heads + decoder, the helpers and the public API (``encode``,
    ``decode``, ``reconstruct``, ``sample``, ``evaluate``) shared by every model in this module."""

    #: the networks that make the outputs (averaged by the generator EMA, written by pygan export)
    generator_networks = ("trunk", "enc_head", "decoder")

    Config = VAEConfig
    default_data = "digits16"
    data_kinds = ("images",)
    conditional = False

    def __init__(self, config: VAEConfig, info: DataInfo):
        super().__init__(config, info)
        c = config
        ch, h, w = info.shape
        if h != w:
            raise ValueError(f"{self.name or type(self).__name__} needs square images, got {h}x{w}")
        conv_plan(h, f"{self.name or type(self).__name__}'s nets")
        self.num_classes = 0
        if self.conditional:
            if not info.num_classes or info.num_classes < 2:
                raise ValueError(
                    f"{self.name} is class-conditional: it needs labelled data (e.g. digits16), got "
                    f"num_classes={info.num_classes}"
                )
            self.num_classes = int(info.num_classes)
        self.z_dim = c.z_dim
        self.trunk = ConvEncoder(ch, h, c.width, out_dim=0, norm=c.trunk_norm, cond_dim=self.num_classes)
        self.enc_head = GaussianHeads(self.trunk.feature_dim, c.z_dim)
        self.decoder = ConvDecoder(c.z_dim + self.num_classes, ch, h, c.width, norm=c.decoder_norm)

    def _init_weights(self) -> None:
        self.apply(init_dcgan)

    # -- conditioning
    def _onehot(self, y: torch.Tensor | None, n: int, check_range: bool = True) -> torch.Tensor | None:
        """One-hot labels ``[n, K]`` (None for an unconditional model). ``check_range`` checks the
        label values on the host (a sync): the public entry points do; the training step does not
        (its labels come from a :class:`~pygan.data.Dataset`, which checks them when it is built)."""
        if not self.conditional:
            return None
        if y is None:
            raise ValueError(f"{self.name} is class-conditional: the batch needs labels y")
        y = torch.as_tensor(y, device=self.device)
        if y.dtype.is_floating_point or y.shape != (n,):
            raise ValueError(f"labels must be an integer tensor [{n}], got {y.dtype} {tuple(y.shape)}")
        if check_range and n and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes}), got {y.min()}..{y.max()}")
        return F.one_hot(y.long(), self.num_classes).float()

    # -- the networks as functions
    def features(self, x: torch.Tensor, cond: torch.Tensor | None = None, net: nn.Module | None = None):
        """``Enc_l(x) = Dis_l(x)``: the trunk's flattened last conv stage, ``[B, feature_dim]``."""
        return (net or self.trunk)(x, cond=cond)

    def _decode(self, z: torch.Tensor, cond: torch.Tensor | None, net: nn.Module | None = None):
        if cond is not None:
            z = torch.cat([z, cond.to(z.dtype)], 1)
        return (net or self.decoder)(z)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ, log σ²)`` of ``q(z|x[, y])`` (networks in their current mode)."""
        return self.enc_head(self.features(x, self._onehot(y, len(x))))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``Dec(z[, y])`` in [-1, 1] (networks in their current mode)."""
        return self._decode(z, self._onehot(y, len(z)))

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.z_dim, generator=generator, device=self.device)

    # -- the public API
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``Dec(μ(x))`` in eval mode (the deterministic reconstruction ``pygan eval`` scores).
        Conditional models use the labels ``y``; without them each image is reconstructed under the
        class whose reconstruction is closest to it (analysis by synthesis), so ``pygan eval``, which
        passes no labels, reports a lower bound of the labelled reconstruction error."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != tuple(self.info.shape):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be images [N, {', '.join(map(str, self.info.shape))}], got {got}")
        x = x.to(self.device, torch.float32)
        with eval_mode(self):
            if not self.conditional or y is not None:
                mu, _ = self.encode(x, y)
                return self.decode(mu, y).float()
            best, best_err = None, None
            for k in range(self.num_classes):
                yk = torch.full((len(x),), k, dtype=torch.long, device=self.device)
                mu, _ = self.encode(x, yk)
                rec = self.decode(mu, yk).float()
                err = (rec - x).square().flatten(1).sum(1)
                if best is None:
                    best, best_err = rec, err
                else:
                    better = err < best_err
                    best = torch.where(better[:, None, None, None], rec, best)
                    best_err = torch.minimum(err, best_err)
            return best

    def _sample_labels(self, n: int, batch: Batch | None, labels) -> torch.Tensor | None:
        if not self.conditional:
            if labels is not None:
                raise ValueError(f"{self.name} is unconditional: labels must be None")
            return None
        if labels is not None:
            return torch.as_tensor(labels, device=self.device).long()
        if batch is not None and batch.y is not None and len(batch.y) >= n:
            return batch.y[:n].to(self.device).long()
        return torch.arange(n, device=self.device) % self.num_classes

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        batch: Batch | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``n`` generations ``Dec(z')``, ``z' ~ N(0, I)`` drawn from ``generator``, in [-1, 1], eval
        mode. Conditional models generate the classes ``labels`` (``[n]``), else the labels of
        ``batch`` (the loop's held-out rows), else the classes ``0, 1, ..., C-1, 0, 1, ...``."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        y = self._sample_labels(n, batch, labels)
        z = self.noise(n, generator)
        with eval_mode(self):
            return self.decode(z, y).float()

    def sample_per_class(self, per_class: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Conditional models: ``[C * per_class, ...]`` generations, ``per_class`` of class 0, then of
        class 1, ... (a grid with one class per row)."""
        if not self.conditional:
            raise ValueError(f"{self.name} is unconditional; sample_per_class needs a conditional model")
        labels = torch.arange(self.num_classes, device=self.device).repeat_interleave(per_class)
        return self.sample(len(labels), generator, labels=labels)

    @torch.no_grad()
    def evaluate(self, data: Dataset, generator: torch.Generator) -> dict[str, float]:
        """``recon_mse`` (per-pixel MSE of ``reconstruct`` on up to 512 test images, with their labels
        for conditional models) and ``kl`` (the mean KL of their posteriors)."""
        b = data.fixed(min(len(data), 512))
        x = b.x.to(self.device)
        y = b.y if self.conditional else None
        rec = self.reconstruct(x, y)
        with eval_mode(self):
            mu, logvar = self.encode(x, y)
        return {"recon_mse": float(mse(rec, x)), "kl": float(kl_normal(mu, logvar))}


# ---- the VAE baseline -----------------------------------------------------------------------------


@register("vae")
class VAE(_VAEBase):
    """The VAE baseline (Kingma & Welling; the paper's VAE row): trunk + Gaussian heads + decoder,
    trained jointly on ``α ||x - Dec(z)||² + β KL(q(z|x) || N(0, I))`` by one Adam optimiser
    (``"vae"``); same networks and loss scales as IDVAE's encoder/decoder (see the module docstring)."""

    Config = VAEConfig
    # small: docs/experiments/idvae.md's runs (width 32, z 32; batch 64 is the default)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 32, "z_dim": 32}}

    def __init__(self, config: VAEConfig, info: DataInfo):
        super().__init__(config, info)
        self._init_weights()

    def configure_optimizers(self):
        return {"vae": self.adam(self)}

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        x = batch.x
        mu, logvar = self.wrapped("enc_head")(self.features(x, None, self.wrapped("trunk")))
        z = reparameterize(mu, logvar, torch.randn_like(mu))
        rec = sum_sq(self._decode(z, None, self.wrapped("decoder")), x)
        kl = kl_normal(mu, logvar)
        loss = c.alpha * rec + c.beta * kl
        self.update("vae", loss)
        return {"loss": loss.detach(), "recons": rec.detach(), "kl": kl.detach()}

    def compile_networks(self) -> list[str]:
        self.trunk.compile()
        self.decoder.compile()
        return ["trunk", "decoder"]


# ---- IDVAE -----------------------------------------------------------------------------------------


@register("idvae")
class IDVAE(_VAEBase):
    """IDVAE: the encoder's trunk is the discriminator's (one set of Parameters), the decoder is the
    generator; Algorithm 1's three updates per iteration. See the module docstring for the losses
    and every decision.

    Children: ``trunk`` (``θ_shared``), ``enc_head`` (``θ_enc``), ``dis_head`` (``θ_dis``), ``decoder``
    (``θ_dec``). Optimisers: ``"dis"`` (``θ_shared ∪ θ_dis``), ``"enc"`` (``θ_shared ∪ θ_enc``), ``"dec"``
    (``θ_dec``)."""

    Config = IDVAEConfig
    # small: docs/experiments/idvae.md's runs (width 32, z 32; batch 64 is the default)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 32, "z_dim": 32}}

    def __init__(self, config: IDVAEConfig, info: DataInfo):
        super().__init__(config, info)
        self._build_discriminator()
        self.dis_head = _DisHead(self.trunk.feature_dim)
        self._init_weights()

    # -- which trunk the discriminator uses: IDVAE's is the encoder's
    def _build_discriminator(self) -> None:
        pass

    @property
    def dis_trunk(self) -> nn.Module:
        """The discriminator's layers up to ``l``: for IDVAE the encoder's trunk itself."""
        return self.trunk

    @property
    def _dis_trunk_name(self) -> str:
        return "trunk"

    def configure_optimizers(self):
        return {
            "dis": self.adam(self.dis_trunk, self.dis_head),
            "enc": self.adam(self.trunk, self.enc_head),
            "dec": self.adam(self.decoder),
        }

    def discriminate(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``Dis(x[, y])`` as logits ``[B]`` (``sigmoid`` gives the probability of "real")."""
        return self.dis_head(self.features(x, self._onehot(y, len(x)), self.dis_trunk))

    # -- the three steps
    def _step_dis(self, x, cond, eps, z_p) -> dict[str, torch.Tensor]:
        """Step 1 (Algorithm 1 line 9): ``L_dis`` (eq. 9) steps ``θ_shared ∪ θ_dis``."""
        with torch.no_grad():  # the fakes are constants here: θ_dec and θ_enc are not updated
            mu, logvar = self.enc_head(self.features(x, cond))
            z = reparameterize(mu, logvar, eps)
            fakes = self._decode(torch.cat([z, z_p]), _cat(cond, cond)).to(x.dtype)
        trunk, head = self.wrapped(self._dis_trunk_name), self.wrapped("dis_head")
        logits = head(self.features(torch.cat([x, fakes]), _cat(cond, cond, cond), trunk))
        l_real, l_rec, l_gen = logits.split(len(x))
        loss = bce_real(l_real) + bce_fake(l_rec) + bce_fake(l_gen)
        self.update("dis", loss)
        return {
            "loss_dis": loss.detach(),
            "d_real": torch.sigmoid(l_real.detach().float()).mean(),
            "d_rec": torch.sigmoid(l_rec.detach().float()).mean(),
            "d_gen": torch.sigmoid(l_gen.detach().float()).mean(),
        }

    def _encoder_recons(self, x, cond, z) -> torch.Tensor:
        """The encoder's reconstruction term: IDVAE's pixel-space ``L_recons`` (eq. 8), through the
        frozen decoder."""
        return sum_sq(self._decode(z, cond), x)

    def _frozen_for_encoder(self) -> tuple[nn.Module, ...]:
        return (self.decoder,)

    def _step_enc(self, x, cond, eps) -> dict[str, torch.Tensor]:
        """Step 2 (Algorithm 1 line 10): ``L_enc = α L_recons + β L_prior`` (eq. 8) steps
        ``θ_shared ∪ θ_enc``."""
        c = self.config
        with frozen(*self._frozen_for_encoder()):
            mu, logvar = self.wrapped("enc_head")(self.features(x, cond, self.wrapped("trunk")))
            z = reparameterize(mu, logvar, eps)
            rec = self._encoder_recons(x, cond, z)
            kl = kl_normal(mu, logvar)
            loss = c.alpha * rec + c.beta * kl
        self.update("enc", loss)
        return {"loss_enc": loss.detach(), "recons": rec.detach(), "kl": kl.detach()}

    def _step_dec(self, x, cond, eps, z_p) -> dict[str, torch.Tensor]:
        """Step 3 (Algorithm 1 line 11): ``L_dec = ω L_GAN + λ L_recons^dis [+ γ L_recons]``
        (eqs. 10-13) steps ``θ_dec`` only."""
        c = self.config
        n = len(x)
        with torch.no_grad():  # constants: the codes z = Enc(x) and the real features Dis_l(x)
            h_x = self.features(x, cond)
            mu, logvar = self.enc_head(h_x)
            z = reparameterize(mu, logvar, eps)
            h_real = h_x if self.dis_trunk is self.trunk else self.features(x, cond, self.dis_trunk)
        with frozen(self.trunk, self.enc_head, self.dis_trunk, self.dis_head):
            fakes = self._decode(torch.cat([z, z_p]), _cat(cond, cond), self.wrapped("decoder"))
            cc = _cat(cond, cond)
            h_fake = self.features(fakes, cc, self.dis_trunk)
            l_rec, l_gen = self.dis_head(h_fake).split(n)
            gan = bce_real(l_gen) + bce_real(l_rec)  # eq. 12, non-saturating, both fake sources
            feat = sum_sq(h_fake[:n], h_real, 0.5)  # eqs. 10-11 at layer l
            loss = c.omega * gan + c.lam * feat
            out = {"gan": gan.detach(), "feat_recons": feat.detach()}
            if c.gamma > 0:  # IDVAE(R)
                pix = sum_sq(fakes[:n], x)
                loss = loss + c.gamma * pix
                out["dec_recons"] = pix.detach()
        self.update("dec", loss)
        out["loss_dec"] = loss.detach()
        return out

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = batch.x
        n = len(x)
        cond = self._onehot(batch.y, n, check_range=False) if self.conditional else None
        eps = torch.randn(n, self.z_dim, device=x.device)  # Algorithm 1: one Z and one Z' per iteration
        z_p = torch.randn(n, self.z_dim, device=x.device)
        logs: dict[str, torch.Tensor] = {}
        if self.config.order == "dis-first":
            logs.update(self._step_dis(x, cond, eps, z_p))
            logs.update(self._step_enc(x, cond, eps))
        else:
            logs.update(self._step_enc(x, cond, eps))
            logs.update(self._step_dis(x, cond, eps, z_p))
        logs.update(self._step_dec(x, cond, eps, z_p))
        return logs

    def compile_networks(self) -> list[str]:
        """Compiles the trunk(s) and the decoder in place (the same Parameters; the heads are single
        ``Linear`` layers)."""
        names = []
        for name in dict.fromkeys(["trunk", self._dis_trunk_name, "decoder"]):
            getattr(self, name).compile()
            names.append(name)
        return names


def _cat(*conds: torch.Tensor | None) -> torch.Tensor | None:
    return None if conds[0] is None else torch.cat(conds)


@register("idvae-r")
class IDVAER(IDVAE):
    """IDVAE(R) (paper §5.1): IDVAE with ``γ L_recons`` (pixels) added to the decoder's loss."""

    Config = IDVAERConfig
    # small: docs/experiments/idvae.md's runs (width 32, z 32; batch 64 is the default)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 32, "z_dim": 32}}


@register("cidvae")
class ConditionalIDVAE(IDVAE):
    """C-IDVAE (paper §5.3): IDVAE conditioned on the one-hot class label — at the decoder's input and
    after the shared trunk's first convolution (IcGAN's placement). ``sample(n, labels=...)`` and
    :meth:`sample_per_class` generate chosen classes."""

    Config = ConditionalIDVAEConfig
    # small: docs/experiments/idvae.md's runs (width 32, z 32; batch 64 is the default)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 32, "z_dim": 32}}
    conditional = True


# ---- VAE-GAN ---------------------------------------------------------------------------------------


@register("vae-gan")
class VAEGAN(IDVAE):
    """VAE-GAN (Larsen et al. 2016), the paper's three-tier baseline: IDVAE's update schedule and
    decoder loss with a *separate* discriminator ``discriminator`` (same conv architecture as the
    trunk) and ``dis_head``; the encoder (``trunk`` + ``enc_head``) shares nothing with it.
    ``encoder_loss="feature"`` (default, Larsen et al.): ``L_enc = α L_recons^dis + β L_prior`` with
    the feature likelihood at the discriminator's layer ``l`` (discriminator and decoder frozen);
    ``"pixel"``: IDVAE's ``α L_recons + β L_prior``."""

    Config = VAEGANConfig
    # small: docs/experiments/idvae.md's runs (width 32, z 32; batch 64 is the default)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 32, "z_dim": 32}}

    def _build_discriminator(self) -> None:
        c = self.config
        ch, h, _ = self.info.shape
        self.discriminator = ConvEncoder(ch, h, c.width, out_dim=0, norm=c.trunk_norm)

    @property
    def dis_trunk(self) -> nn.Module:
        return self.discriminator

    @property
    def _dis_trunk_name(self) -> str:
        return "discriminator"

    def _frozen_for_encoder(self) -> tuple[nn.Module, ...]:
        return (self.decoder, self.discriminator, self.dis_head)

    def _encoder_recons(self, x, cond, z) -> torch.Tensor:
        if self.config.encoder_loss == "pixel":
            return super()._encoder_recons(x, cond, z)
        with torch.no_grad():
            h_real = self.features(x, cond, self.discriminator)
        return sum_sq(self.features(self._decode(z, cond), cond, self.discriminator), h_real, 0.5)
