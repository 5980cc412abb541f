"""ED//GAN: decoupled learning for conditional adversarial networks (Zhang, Song & Qi), and
the coupled ED+GAN baselines it is compared with.

The idea (Fig. 3). An encoder-decoder gives a blurry reconstruction and a separate
generator G adds the detail an adversarial loss asks for::

    z    = Enc(I)                      (Table 1: conv stack, FC, tanh; z in (-1, 1)^50)
    I_ED = Dec(z)                      (the reconstruction)
    I_G  = G(z)                        (the residual: same architecture as Dec, own parameters)
    Î    = I_ED + I_G                  (:func:`pygan.ops.residual_add`, ``detach_base=True``)

and the three losses run along disjoint back-propagation paths (Eq. 9), with **no weight** between
them::

    min_{Enc,Dec} L_const = || I - I_ED ||_1                                   (Eq. 4-6)
    min_D         L_adv(D) = BCE(D(I), 1) + BCE(D(Î), 0)                        (Eq. 7)
    min_G         L_adv(G) = BCE(D(Î), 1)      (z and I_ED constants)           (Eq. 8)

``training_step`` makes the three updates in the order of the authors' code: the
reconstruction step (Enc, Dec), the discriminator step (D), the residual-generator step (G). Each is
its own method (:meth:`reconstruction_step`, :meth:`discriminator_step`, :meth:`generator_step`), so
the tests can check that each touches only its networks:

============================  =====================  =============================================
loss                          updates                no gradient reaches
============================  =====================  =============================================
L_const (+ CAAE's L_Ez)       Enc, Dec               G, D (they do not run)
L_adv(D)                      D                      Enc, Dec, G (Î detached)
L_adv(G)                      G                      Enc, Dec (z, I_ED detached; ``residual_add``
                                                     with ``detach_base=True``), D (``frozen``)
CAAE's L_Dz                   D_z                    Enc (z detached)
============================  =====================  =============================================

The coupled **ED+GAN** baseline (Eq. 1) has no G: Dec is the generator, ``Î = I_ED``,
and ``L_const + lambda * L_adv(G)`` goes into Dec (and through Dec into Enc); D's step is first, as
in pix2pix. ``adv_weight`` is that lambda. In ED//GAN, ``adv_weight`` (default 1: no weight) scales
only L_adv(G), the paper's "intentionally added" weight of the Sec. 4.1 sweep (with
G's own Adam optimizer a constant factor on G's only loss changes its updates very little — Adam is
scale-invariant up to its epsilon).

Registered models (one class per structure and variant; each has its own ``Config``):

==========================  ===================================================================
``edgan``                   ED//GAN with the Table 1 networks (Sec. 4.1). Images: autoencoding
                            (target = input, Fig. 4 / Tables 2-3). Paired data: the same
                            networks as an image-conditional ED (Enc reads the input, L_const is
                            taken to the target image; D judges the output only, as Table 1's).
``edgan-coupled``           ED+GAN with the same Enc/Dec/D, lambda = ``adv_weight``.
``edgan-pix2pix``           Sec. 4.2.1: U-Net ED and a second U-Net as G (both read the input
                            image: a U-Net cannot take z alone), conditional PatchGAN D on
                            (input, output). Paired data.
``edgan-pix2pix-coupled``   pix2pix itself: one U-Net, L1 + lambda * L_adv (lambda 0.01 = 100:1).
``edgan-caae``              Sec. 4.2.2: CAAE-style conditional ED on labelled images: Dec and G
                            read [z, y]; D is label-conditioned; a D_z pushes z to U(-1, 1).
``edgan-caae-coupled``      CAAE itself: Dec = G, L1 + lambda * L_adv (lambda 1e-4, CAAE's).
==========================  ===================================================================

Table 1 mapped onto :mod:`pygan.models.nets` (at 128 px it is exactly Table 1's sizes; smaller images
use fewer stages down to the same 4x4 or 7x7 map, :func:`~pygan.models.nets.conv_plan`):

* Enc = ``ConvEncoder(C, s, width, out_dim=z_dim)`` then ``tanh``; D = ``ConvEncoder(C, s, width,
  out_dim=1)`` (a logit; the sigmoid is inside the BCE). At 128 px with width 64: convs to
  64, 128, 256, 512, 1024 channels, 4x4x1024, FC — Table 1's sizes.
* Dec and G = ``ConvDecoder(z_dim, C, s, width)``: FC to 4x4x1024 (at 128 px), deconvs to 512, 256,
  128, 64 channels, then to C with ``tanh`` — Table 1's sizes.
* Where Table 1 is silent or unusual, the shared DCGAN blocks decide: 4x4 kernels with stride 2 and
  padding 1; LeakyReLU(0.2) in Enc/D and no norm on their first conv (Table 1 prints
  "Conv, BN, ReLU" for every layer); FC -> BN -> ReLU in Dec/G's first block (§8.4: the printed order
  is "FC, ReLU, BN"); DCGAN initialisation N(0, 0.02) (the authors' code).
* ``ed_batchnorm=False`` is Table 3's "without BN": BatchNorm is removed from Enc and Dec only; G and
  D keep it (§8.13; the authors' CAAE code also keeps BN in G always).

Other decisions where the paper is silent:

* Losses (§8.5): D minimises BCE (the standard form of Eq. 7); G minimises the non-saturating
  ``BCE(D(Î), 1)`` (the authors' code); ``gan_loss="saturating"`` is Eq. 8 as printed,
  ``log(1 - D(Î))``. L1 is a mean over pixels and batch (§8.10; the authors' ``reduce_mean``).
* Optimisers (§8.1): Adam, lr 2e-4, betas (0.5, 0.999) for every network (the authors' code).
* Î is not clipped for D (§8.6: the paper's plain sum, ``output_act="none"``; "tanh"/"clamp" are
  ``residual_add``'s alternatives). Images returned by ``sample``/``reconstruct``/``translate`` are
  clamped to [-1, 1]; I_G is shown as it is, in [-1, 1] (0 = no change, mid-gray).
* z and I_ED for the GAN steps are those of the reconstruction step's forward pass (computed before
  Enc/Dec's update of the same iteration), detached; G's output is computed once and serves the D
  step (detached) and then the G step (after D's update), as in pix2pix's trainer.
* G is initialised independently of Dec (§8.8: "the copy of Dec" is read as an architectural copy).

Residual image: ``sample(n, batch=...)`` (what the training loop draws every ``--sample-every``
steps) returns the tuple (input, I_ED, I_G, Î) for images and (I_ED, I_G, Î) for paired data, so the
run's sample grids show the reconstruction, the residual and the output side by side (paired grids:
input, I_ED, I_G, Î, target). :meth:`decompose` returns the three images for any input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

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
from pygan.models.losses import bce_real, d_loss_bce, g_loss_bce, g_loss_saturating, l1, mse
from pygan.models.nets import ConvDecoder, ConvEncoder, conv_plan, init_dcgan
from pygan.models.pix2pix import Norm, Pix2PixSettings, pair_logits, patch_discriminator, unet
from pygan.ops import residual_add

__all__ = [
    "EDGAN",
    "EDGANCAAE",
    "CAAEConfig",
    "CAAECoupledConfig",
    "EDGANCAAECoupled",
    "EDGANConfig",
    "EDGANCoupled",
    "EDGANCoupledConfig",
    "EDGANPix2Pix",
    "EDGANPix2PixCoupled",
    "Pix2PixConfig",
    "Pix2PixCoupledConfig",
    "ZDiscriminator",
]

GanLoss = Literal["nonsaturating", "saturating"]
ResidualInit = Literal["dcgan", "zero"]
OutputAct = Literal["none", "tanh", "clamp"]  # pygan.ops.residual_add's activations


# ---- configs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EDGANConfig(ModelConfig):
    """ED//GAN with the Table 1 networks (ED//GAN paper, Sec. 4.1).

    Paper numbers: batch 25 (Sec. 4.1), z of 50 dimensions with tanh, width 64 (Table 1: 64 ... 1024
    channels), BN in Enc and Dec (Table 2; ``ed_batchnorm=False`` is Table 3), no weight between the
    losses. Not stated in the paper, taken from the authors' code: Adam lr 2e-4, beta1
    0.5, BCE for D and the non-saturating loss for G.

    Attributes:
        adv_weight: lambda. ED//GAN: scales L_adv(G) only (1 = the method, no weight; the paper's
            Sec. 4.1 sweep adds it on purpose). ED+GAN: the weight of L_adv in Eq. 1.
        gan_loss: ``"nonsaturating"`` (authors' code) or ``"saturating"`` (Eq. 8 as printed).
        output_act: ``residual_add``'s activation on Î: ``"none"`` (the paper), ``"tanh"``, ``"clamp"``.
        ed_batchnorm: BatchNorm in Enc and Dec (G and D always have it).
        residual_init: G's initialisation: ``"dcgan"`` (N(0, 0.02) like every network; the authors'
            code) or ``"zero"`` (G's last layer starts at zero, so I_G = 0 and Î = I_ED at the start
            and the adversarial loss only adds to the reconstruction; the paper is silent, §8.8).
            Unused by the coupled baselines (no G).
    """

    batch_size: int = batch_size_field(25)
    z_dim: int = knob(50, COUNT)
    width: int = knob(64, COUNT)
    ed_batchnorm: bool = True
    lr: float = lr_field(2e-4)
    betas: tuple[float, float] = betas_field((0.5, 0.999))
    adv_weight: float = knob(1.0, WEIGHT)
    gan_loss: GanLoss = "nonsaturating"
    output_act: OutputAct = "none"
    residual_init: ResidualInit = "dcgan"
    ema_decay: float = ema_decay_field(0.0)
    ema_rampup: float = ema_rampup_field(0.05)


@dataclass(frozen=True)
class EDGANCoupledConfig(EDGANConfig):
    """ED+GAN (Eq. 1) with the Table 1 networks. ``adv_weight`` is lambda; the paper sweeps
    {1e-3, 1e-2, 1e-1, 1} and states no default: 1e-2 is used (the middle of the sweep, and
    pix2pix's 100:1). ``output_act`` is unused (there is no residual)."""

    adv_weight: float = knob(1e-2, WEIGHT)


@dataclass(frozen=True)
class Pix2PixConfig(Pix2PixSettings):
    """ED//GAN's pix2pix adaptation (ED//GAN paper, Sec. 4.2.1, and the authors' ``Adapt_Pix2Pix`` code).

    The paper defers every setting to pix2pix; these are pix2pix's
    (:class:`~pygan.models.pix2pix.Pix2PixSettings`) and the authors' adaptation code's: batch 1,
    conditional D on (input, output), and ``norm="instance"``: pix2pix's BatchNorm at batch size 1
    normalises each image by itself, and pix2pix applies it with test-batch statistics at test time
    — instance norm is that, in train and eval mode alike. Dropout is off in eval mode (pix2pix
    keeps it as noise). ``adv_weight``, ``gan_loss``, ``output_act`` and ``residual_init`` as in
    :class:`EDGANConfig`.
    """

    batch_size: int = batch_size_field(1)
    norm: Norm = "instance"
    gan_loss: GanLoss = "nonsaturating"
    output_act: OutputAct = "none"
    residual_init: ResidualInit = "dcgan"


@dataclass(frozen=True)
class Pix2PixCoupledConfig(Pix2PixConfig):
    """pix2pix (ED+GAN): ``adv_weight`` = 0.01 is pix2pix's reconstruction:adversarial = 100:1 (the
    paper also runs 1:1 and 1000:1, Table 4)."""

    adv_weight: float = knob(1e-2, WEIGHT)


@dataclass(frozen=True)
class CAAEConfig(ModelConfig):
    """ED//GAN's CAAE adaptation (ED//GAN paper, Sec. 4.2.2; the authors' ``Adapt_CAAE``), label-conditioned.

    From the paper/CAAE: z of 50 dimensions with tanh, uniform prior on z enforced by D_z, the label
    concatenated to z for Dec and G and fed to D; batch 25. From the authors' code: labels one-hot in
    {-1, +1}, tiled ``z_dim // num_classes`` times (CAAE's ``tile_ratio = 1``), Adam lr 2e-4 beta1
    0.5, BN off in Enc and Dec (``is_bn=0``) and on in G and D, D_z = FC 64 -> 32 -> 16 (BN, ReLU)
    -> 1.

    Decisions: D takes the label as constant maps concatenated to its input image (CAAE injects them
    after D's first conv; the shared :class:`~pygan.models.nets.ConvEncoder` has no mid-network
    input). ``z_adv_weight`` weights Enc's adversarial loss against D_z (CAAE's E_z loss) in Enc's
    update; the authors' adaptation code leaves that update out (their E_z optimiser is never run), but
    without it D_z does not constrain z, so a small weight 1e-2 is used. CAAE's total-variation term
    (weight 0 in its released code) is left out. ``adv_weight``, ``gan_loss``, ``output_act`` and
    ``residual_init`` as in :class:`EDGANConfig`.
    """

    batch_size: int = batch_size_field(25)
    z_dim: int = knob(50, COUNT)
    width: int = knob(64, COUNT)
    ed_batchnorm: bool = False
    lr: float = lr_field(2e-4)
    betas: tuple[float, float] = betas_field((0.5, 0.999))
    adv_weight: float = knob(1.0, WEIGHT)
    z_adv_weight: float = knob(1e-2, WEIGHT)
    gan_loss: GanLoss = "nonsaturating"
    output_act: OutputAct = "none"
    residual_init: ResidualInit = "dcgan"
    ema_decay: float = ema_decay_field(0.0)
    ema_rampup: float = ema_rampup_field(0.05)


@dataclass(frozen=True)
class CAAECoupledConfig(CAAEConfig):
    """CAAE (ED+GAN): ``adv_weight`` = 1e-4 is CAAE's reconstruction:adversarial = 1:1e-4 (the paper
    also runs 1:1e-2 and 1:1, Table 5)."""

    adv_weight: float = knob(1e-4, WEIGHT)


# ---- helpers ---------------------------------------------------------------------------------------


def _detach(code: Any) -> Any:
    if isinstance(code, tuple):
        return tuple(_detach(c) for c in code)
    return code.detach()


def _sq_image(info: DataInfo, what: str) -> tuple[int, int]:
    if len(info.shape) != 3:
        raise ValueError(f"{what} needs image data, got samples of shape {info.shape}")
    c, h, w = info.shape
    if h != w:
        raise ValueError(f"{what} needs square images, got {h}x{w}")
    return c, h


class ZDiscriminator(nn.Module):
    """CAAE's discriminator on z (its released code): FC 64 -> 32 -> 16, each with BN and ReLU, then
    FC -> 1 logit. Returns ``[B]``."""

    def __init__(self, z_dim: int, hidden: tuple[int, ...] = (64, 32, 16)):
        super().__init__()
        layers: list[nn.Module] = []
        d = z_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.BatchNorm1d(h), nn.ReLU()]
            d = h
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(1)


# ---- the shared training logic ---------------------------------------------------------------------


class _EDGANBase(Model):
    """Update rules shared by every variant; subclasses build the networks and define :meth:`_ed`,
    :meth:`_residual` and :meth:`_disc`. ``coupled`` selects ED+GAN (Eq. 1) over ED//GAN (Eq. 9)."""

    #: the networks that make the outputs (averaged by the generator EMA, written by pygan export)
    generator_networks = ("encoder", "decoder", "generator")

    coupled: ClassVar[bool] = False
    #: networks updated by L_const (the "ed" optimizer)
    ed_networks: ClassVar[tuple[str, ...]] = ("encoder", "decoder")

    # -- what subclasses provide
    def _ed(self, inp: torch.Tensor, y: torch.Tensor | None, plain: bool = False) -> tuple[torch.Tensor, Any]:
        """``(I_ED, code)``: the ED output and what G reads (z, [z, y] or the input image)."""
        raise NotImplementedError

    def _residual(self, code: Any, plain: bool = False) -> torch.Tensor:
        """``I_G = G(code)``."""
        raise NotImplementedError

    def _disc(
        self, net: nn.Module, img: torch.Tensor, inp: torch.Tensor, y: torch.Tensor | None
    ) -> torch.Tensor:
        """D's logits for ``img`` (conditioned on ``inp``/``y`` where the variant is conditional)."""
        return net(img)

    def _ed_extra(self, code: Any) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """Extra loss in the ED update (CAAE: Enc against D_z); none by default."""
        return None, {}

    def _extra_steps(self, code: Any) -> dict[str, torch.Tensor]:
        """Extra updates after the ED step (CAAE: D_z); none by default."""
        return {}

    def _init_residual(self) -> None:
        """``residual_init="zero"``: zeroes G's last (transposed) convolution, so I_G starts at 0."""
        if self.coupled or self.config.residual_init != "zero":
            return
        last = [m for m in self.generator.modules() if isinstance(m, nn.ConvTranspose2d)][-1]
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)

    def _adv_g(self, logits: torch.Tensor) -> torch.Tensor:
        """G's adversarial loss: non-saturating ``-log D(Î)`` or Eq. 8's saturating ``log(1 - D(Î))``."""
        return g_loss_bce(logits) if self.config.gan_loss == "nonsaturating" else g_loss_saturating(logits)

    # -- data
    def _io(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(input, target, labels)``: paired data -> (x, target); images -> (x, x)."""
        if self.info.kind == "paired":
            if batch.target is None:
                raise ValueError(f"{self.name} on paired data needs batch.target")
            return batch.x, batch.target, batch.y
        return batch.x, batch.x, batch.y

    # -- optimizers
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = tuple(self.resolved_config.betas)

        def adam(*names):
            return self.adam(*(getattr(self, n) for n in names), betas=betas)

        opts = {"ed": adam(*self.ed_networks), "discriminator": adam("discriminator")}
        if not self.coupled:
            opts["generator"] = adam("generator")
        if hasattr(self, "z_discriminator"):
            opts["z_discriminator"] = adam("z_discriminator")
        return opts

    # -- the three ED//GAN updates (Eq. 9)
    def reconstruction_step(
        self, inp: torch.Tensor, target: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, Any]:
        """min_{Enc,Dec} L_const = |I - I_ED|_1 (Eq. 4): updates Enc and Dec only (G and D do not
        run). Returns the logs and the detached ``(I_ED, code)`` the GAN steps treat as constants."""
        i_ed, code = self._ed(inp, y)
        rec = l1(i_ed, target)
        extra, logs = self._ed_extra(code)
        self.update("ed", rec if extra is None else rec + extra)
        return {"l1": rec.detach(), **logs}, i_ed.detach(), _detach(code)

    def output(self, i_ed: torch.Tensor, i_g: torch.Tensor) -> torch.Tensor:
        """``Î = I_ED + I_G`` by the fused op; I_ED gets no gradient (``detach_base=True``)."""
        return residual_add(i_ed, i_g.to(i_ed.dtype), self.config.output_act, detach_base=True)

    def discriminator_step(
        self, target: torch.Tensor, fake: torch.Tensor, inp: torch.Tensor, y: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """min_D L_adv(D) = BCE(D(I), 1) + BCE(D(Î), 0) (Eq. 7): updates D only (Î detached)."""
        D = self.wrapped("discriminator")
        d_real = self._disc(D, target, inp, y)
        d_fake = self._disc(D, fake.detach(), inp, y)
        loss_d = d_loss_bce(d_real, d_fake)
        self.update("discriminator", loss_d)
        return {
            "loss_d": loss_d.detach(),
            "d_real": torch.sigmoid(d_real.detach().float()).mean(),
            "d_fake": torch.sigmoid(d_fake.detach().float()).mean(),
        }

    def generator_step(
        self, fake: torch.Tensor, inp: torch.Tensor, y: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """min_G L_adv(G) (Eq. 8): ``fake`` = Î built from constant I_ED and z, so only G receives a
        gradient; D is frozen. ``adv_weight`` (default 1) scales it."""
        with frozen(self.discriminator):
            loss_g = self._adv_g(self._disc(self.discriminator, fake, inp, y))
        self.update("generator", self.config.adv_weight * loss_g)
        return {"loss_g": loss_g.detach()}

    # -- the coupled ED+GAN updates (Eq. 1)
    def coupled_ed_step(
        self, inp: torch.Tensor, target: torch.Tensor, y: torch.Tensor | None, i_ed: torch.Tensor, code: Any
    ) -> dict[str, torch.Tensor]:
        """min_{Enc,Dec} L_const + lambda * L_adv(G) with Dec as the generator (Eq. 1): both losses
        reach Dec (and Enc through it). D is frozen."""
        rec = l1(i_ed, target)
        with frozen(self.discriminator):
            loss_g = self._adv_g(self._disc(self.discriminator, i_ed, inp, y))
        extra, logs = self._ed_extra(code)
        total = rec + self.config.adv_weight * loss_g
        self.update("ed", total if extra is None else total + extra)
        return {"l1": rec.detach(), "loss_g": loss_g.detach(), **logs}

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        inp, target, y = self._io(batch)
        if self.coupled:
            i_ed, code = self._ed(inp, y)
            logs = self.discriminator_step(target, i_ed, inp, y)  # D first (pix2pix's order)
            logs.update(self.coupled_ed_step(inp, target, y, i_ed, code))
            logs.update(self._extra_steps(_detach(code)))
            return logs
        # ED//GAN, Eq. 9: three disjoint updates.
        logs, i_ed, code = self.reconstruction_step(inp, target, y)  # Enc, Dec
        logs.update(self._extra_steps(code))  # CAAE: D_z
        i_g = self._residual(code)  # G's forward, once: D's step reads it detached
        fake = self.output(i_ed, i_g)
        logs.update(self.discriminator_step(target, fake, inp, y))  # D
        logs.update(self.generator_step(fake, inp, y))  # G
        logs["residual"] = i_g.detach().abs().mean()
        return logs

    # -- inference
    @torch.no_grad()
    def decompose(self, inp: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """``(I_ED, I_G, Î)`` for inputs ``inp`` (eval mode; Î clamped to [-1, 1]). Coupled models
        have no residual: ``(I_ED, zeros, I_ED)``."""
        with eval_mode(self):
            i_ed, code = self._ed(inp, y, plain=True)
            if self.coupled:
                return i_ed.float(), torch.zeros_like(i_ed, dtype=torch.float32), i_ed.float().clamp(-1, 1)
            i_g = self._residual(code, plain=True)
            out = self.output(i_ed, i_g)
            return i_ed.float(), i_g.float(), out.float().clamp(-1, 1)

    def _labels(self, batch: Batch | None, n: int) -> torch.Tensor | None:
        return None

    def sample(self, n: int, generator: torch.Generator | None = None, batch: Batch | None = None):
        """With ``batch`` (the loop's held-out rows): the residual triple of its first ``n`` rows —
        ``(input, I_ED, I_G, Î)`` for images, ``(I_ED, I_G, Î)`` for paired data; coupled models
        return ``(input, Î)`` / ``Î``. Without ``batch``: ``n`` generated images (see the subclass)."""
        if batch is None:
            return self._generate(n, generator)
        b = batch[:n].to(self.device)
        inp = b.x
        i_ed, i_g, out = self.decompose(inp, self._labels(b, len(inp)))
        if self.info.kind == "paired":
            return out if self.coupled else (i_ed, i_g, out)
        x = inp.float()
        return (x, out) if self.coupled else (x, i_ed, i_g, out)

    def _generate(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        raise ValueError(
            f"{self.name} translates input images: sample(n) needs batch= (held-out inputs); use translate(x)"
        )

    def _translate(self, x: torch.Tensor) -> torch.Tensor:
        return self.decompose(x.to(self.device))[2]

    @property
    def translate(self):
        """``translate(x)`` -> Î (image-to-image models on paired data only; ``pygan eval`` scores it
        against the test targets)."""
        if self.info.kind != "paired":
            raise AttributeError(f"{type(self).__name__} on {self.info.kind} data has no translate()")
        return self._translate

    @torch.no_grad()
    def evaluate(self, data: Dataset, generator: torch.Generator) -> dict[str, float]:
        """On up to 256 test rows: ``l1`` and ``psnr`` of Î against the target, ``l1_ed`` of I_ED, and
        ``residual`` = mean |I_G| (how much the adversarial branch changes)."""
        b = data.fixed(min(len(data), 256)).to(self.device)
        inp, target, _ = self._io(b)
        i_ed, i_g, out = self.decompose(inp, self._labels(b, len(inp)))
        target = target.float()
        return {
            "l1": l1(out, target).item(),
            "l1_ed": l1(i_ed, target).item(),
            "psnr": (10 * torch.log10(4.0 / mse(out, target).clamp_min(1e-12))).item(),
            "residual": i_g.abs().mean().item(),
        }

    def compile_networks(self) -> list[str]:
        """Compiles every network (no double backward anywhere in ED//GAN)."""
        names = [n for n, m in self.named_children() if any(True for _ in m.parameters())]
        for n in names:
            getattr(self, n).compile()
        return names


# ---- Table 1 networks: edgan, edgan-coupled -------------------------------------------------------


class _Table1(_EDGANBase):
    data_kinds = ("images", "paired")
    default_data = "photo-blur32"

    def __init__(self, config, info: DataInfo):
        super().__init__(config, info)
        c = config
        what = self.name or type(self).__name__
        ch, size = _sq_image(info, what)
        out_ch = ch
        if info.kind == "paired":
            tc, th, tw = info.target_shape
            if (th, tw) != (size, size):
                raise ValueError(f"{what} needs input and target of the same size, got {size} and {th}x{tw}")
            out_ch = tc
        conv_plan(size, what)
        ed_norm = "batch" if c.ed_batchnorm else "none"
        self.encoder = ConvEncoder(ch, size, c.width, out_dim=c.z_dim, norm=ed_norm)
        self.decoder = ConvDecoder(self._dec_in(), out_ch, size, c.width, norm=ed_norm)
        if not self.coupled:
            self.generator = ConvDecoder(self._dec_in(), out_ch, size, c.width, norm="batch")
        self.discriminator = ConvEncoder(out_ch + self._d_extra(), size, c.width, out_dim=1, norm="batch")
        self.apply(init_dcgan)
        self._init_residual()

    def _dec_in(self) -> int:
        return self.config.z_dim

    def _d_extra(self) -> int:
        return 0

    def encode(self, inp: torch.Tensor, plain: bool = False) -> torch.Tensor:
        """``z = tanh(Enc(I))`` in (-1, 1)^z_dim (Table 1)."""
        return torch.tanh(self.wrapped("encoder", plain=plain)(inp).reshape(len(inp), -1))

    def _ed(self, inp, y, plain=False):
        z = self.encode(inp, plain)
        return self.wrapped("decoder", plain=plain)(z), z

    def _residual(self, code, plain=False):
        return self.wrapped("generator", plain=plain)(code)

    def _from_z(self, z: torch.Tensor) -> torch.Tensor:
        with eval_mode(self):
            i_ed = self.decoder(z)
            if self.coupled:
                return i_ed.float().clamp(-1, 1)
            return self.output(i_ed, self.generator(z)).float().clamp(-1, 1)

    @torch.no_grad()
    def _generate(self, n, generator):
        """Decodes z drawn uniformly from the tanh box (-1, 1)^z_dim. The paper's Table 1 model puts
        no prior on z (it is optional), so these are not data-like images; ``edgan-caae`` has
        the prior. Image-to-image runs raise (they translate inputs)."""
        if self.info.kind == "paired":
            return super()._generate(n, generator)
        z = torch.rand(n, self.config.z_dim, generator=generator, device=self.device) * 2 - 1
        return self._from_z(z)

    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decompose(x.to(self.device))[2]

    @property
    def reconstruct(self):
        """``reconstruct(x)`` -> Î (autoencoding runs on image data; ``pygan eval`` scores it)."""
        if self.info.kind != "images":
            raise AttributeError(f"{type(self).__name__} on {self.info.kind} data has no reconstruct()")
        return self._reconstruct


@register("edgan")
class EDGAN(_Table1):
    """ED//GAN with Table 1's Enc, Dec, G (copy of Dec, own parameters) and D; see the module
    docstring for the update paths and the mapping of Table 1."""

    Config = EDGANConfig
    # small: docs/experiments/edgan.md's Table-1 runs (width 16; z 50 and batch 25 are the defaults)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 16}}


@register("edgan-coupled")
class EDGANCoupled(_Table1):
    """The ED+GAN baseline of Sec. 4.1: Table 1's Enc, Dec and D, Dec is the generator, loss
    ``L_const + lambda L_adv`` (Eq. 1) into Enc and Dec."""

    Config = EDGANCoupledConfig
    # small: docs/experiments/edgan.md's Table-1 runs (width 16; z 50 and batch 25 are the defaults)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 16}}
    coupled = True


# ---- pix2pix adaptation: edgan-pix2pix, edgan-pix2pix-coupled --------------------------------------


class _Pix2Pix(_EDGANBase):
    data_kinds = ("paired",)
    default_data = "photo-blur32"
    ed_networks = ("decoder",)

    def __init__(self, config, info: DataInfo):
        super().__init__(config, info)
        c = self.resolved_config
        what = self.name or type(self).__name__
        ch, size = _sq_image(info, what)
        tc, th, tw = info.target_shape
        if (th, tw) != (size, size):
            raise ValueError(f"{what} needs input and target of the same size, got {size} and {th}x{tw}")
        # The ED U-Net is Enc and Dec in one network ("decoder" holds both; its down path is Enc).
        self.decoder = unet(ch, tc, size, c)
        if not self.coupled:
            self.generator = unet(ch, tc, size, c)
        self.discriminator = patch_discriminator(ch + tc, size, c)
        self.apply(init_dcgan)
        self._init_residual()

    def _ed(self, inp, y, plain=False):
        return self.wrapped("decoder", plain=plain)(inp), inp

    def _residual(self, code, plain=False):
        return self.wrapped("generator", plain=plain)(code)

    def _disc(self, net, img, inp, y):
        return pair_logits(net, inp, img)


@register("edgan-pix2pix")
class EDGANPix2Pix(_Pix2Pix):
    """ED//GAN on pix2pix (Sec. 4.2.1, Fig. 9): a U-Net ED trained by L1 to the target, "another
    U-Net as the generator G" adding the residual, a conditional PatchGAN D on (input, Î). G reads
    the input image (the authors' code: a U-Net's decoder needs its encoder's skips, so it cannot
    take z alone). The ED U-Net is the ``decoder`` attribute (its down path is Enc)."""

    Config = Pix2PixConfig
    # small: docs/experiments/edgan.md's pix2pix runs (U-Nets and D at width 16, batch 16: more
    # rows per step than pix2pix's batch 1, far fewer channels)
    PRESETS: ClassVar[dict[str, dict]] = {
        "paper": {},
        "small": {"width": 16, "d_width": 16, "batch_size": 16},
    }


@register("edgan-pix2pix-coupled")
class EDGANPix2PixCoupled(_Pix2Pix):
    """pix2pix (the ED+GAN it adapts): one U-Net, ``L1 + lambda L_adv`` (lambda 0.01 = 100:1),
    conditional PatchGAN D."""

    Config = Pix2PixCoupledConfig
    # small: docs/experiments/edgan.md's pix2pix runs (width 16, d_width 16, batch 16)
    PRESETS: ClassVar[dict[str, dict]] = {
        "paper": {},
        "small": {"width": 16, "d_width": 16, "batch_size": 16},
    }
    coupled = True


# ---- CAAE adaptation: edgan-caae, edgan-caae-coupled -----------------------------------------------


class _CAAE(_Table1):
    data_kinds = ("images",)
    default_data = "digits32"
    ed_networks = ("encoder", "decoder")

    def __init__(self, config, info: DataInfo):
        what = type(self).name or type(self).__name__
        if info.num_classes is None or info.num_classes < 2:
            raise ValueError(
                f"{what} is label-conditioned: it needs labelled images (e.g. digits32), got none"
            )
        self.num_classes = info.num_classes
        self.tile = max(1, config.z_dim // info.num_classes)
        super().__init__(config, info)
        self.z_discriminator = ZDiscriminator(config.z_dim)
        self.z_discriminator.apply(init_dcgan)

    def _dec_in(self) -> int:
        return self.config.z_dim + self.num_classes * self.tile

    def _d_extra(self) -> int:
        return self.num_classes

    def _onehot(self, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if y is None:
            raise ValueError(f"{self.name} needs class labels (batch.y)")
        return F.one_hot(y.long(), self.num_classes).to(dtype) * 2 - 1  # {-1, +1} (CAAE)

    def _io(self, batch):
        if batch.y is None:
            raise ValueError(f"{self.name} needs class labels (batch.y)")
        return super()._io(batch)

    def _ed(self, inp, y, plain=False):
        z = self.encode(inp, plain)
        zy = torch.cat([z, self._onehot(y, z.dtype).repeat(1, self.tile)], 1)
        return self.wrapped("decoder", plain=plain)(zy), (zy, z)

    def _residual(self, code, plain=False):
        return self.wrapped("generator", plain=plain)(code[0])

    def _disc(self, net, img, inp, y):
        maps = self._onehot(y, img.dtype)[:, :, None, None].expand(-1, -1, *img.shape[-2:])
        return net(torch.cat([img, maps], 1))

    def _ed_extra(self, code):
        """CAAE's E_z loss: Enc tries to make D_z take z for a prior sample (D_z frozen)."""
        w = self.config.z_adv_weight
        if w == 0:
            return None, {}
        with frozen(self.z_discriminator):
            loss_ez = bce_real(self.z_discriminator(code[1]))
        return w * loss_ez, {"loss_ez": loss_ez.detach()}

    def _extra_steps(self, code):
        """D_z's update: BCE(D_z(z_prior), 1) + BCE(D_z(z), 0), z ~ U(-1, 1) prior; z detached."""
        z = code[1]
        prior = torch.rand_like(z) * 2 - 1
        Dz = self.wrapped("z_discriminator")
        loss_dz = d_loss_bce(Dz(prior), Dz(z))
        self.update("z_discriminator", loss_dz)
        return {"loss_dz": loss_dz.detach()}

    def _labels(self, batch, n):
        return batch.y[:n] if batch is not None and batch.y is not None else None

    @torch.no_grad()
    def _generate(self, n, generator):
        """Conditional generation: z ~ U(-1, 1)^z_dim (the prior D_z enforces), labels cycling
        0, 1, ..., K-1 (row ``i`` is class ``i % K``)."""
        z = torch.rand(n, self.config.z_dim, generator=generator, device=self.device) * 2 - 1
        y = torch.arange(n, device=self.device) % self.num_classes
        return self.generate(z, y)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Î for codes ``z`` and labels ``y`` (e.g. one input's z with every label: CAAE's
        progression)."""
        zy = torch.cat([z, self._onehot(y.to(z.device), z.dtype).repeat(1, self.tile)], 1)
        return self._from_z(zy)

    @property
    def reconstruct(self):
        raise AttributeError(f"{type(self).__name__} needs labels to reconstruct: use decompose(x, y)")


@register("edgan-caae")
class EDGANCAAE(_CAAE):
    """ED//GAN on CAAE (Sec. 4.2.2, Fig. 12): Dec and G both read [z, y]; Î = Dec([z,y]) + G([z,y])
    goes to the label-conditioned D; D_z keeps z uniform as in CAAE. Only L_adv(G) reaches G."""

    Config = CAAEConfig
    # small: width 16 as in docs/experiments/edgan.md's Table-1 runs (the CAAE was not trained there)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 16}}


@register("edgan-caae-coupled")
class EDGANCAAECoupled(_CAAE):
    """CAAE (the ED+GAN it adapts): Dec is the generator, ``L1 + lambda L_adv + w_z L_Ez`` into Enc
    and Dec, lambda 1e-4."""

    Config = CAAECoupledConfig
    # small: width 16 as in docs/experiments/edgan.md's Table-1 runs (the CAAE was not trained there)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 16}}
    coupled = True
