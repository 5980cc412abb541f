"""Adversarial Code Learning (ACL; Yuan et al., "Adversarial Code Learning for Image
Generation"): a code generator ``G_z`` maps prior noise into the code space of an inference network
``E`` and a code discriminator ``D_c`` tells real codes ``c = E(x)`` from generated ones ``G_z(z)``;
a decoder/image generator ``G_x`` turns codes into images, so samples are ``G_x(G_z(z))``.

The module
==========

:class:`ACL` holds ``G_z`` (``code_generator``), ``D_c`` (``code_discriminator``) and the prior
``p_z``, and plays the code game of Eq. 1 on codes it is *given*::

    L_Z = min_{G_z} max_{D_c}  E_{c ~ p_c}[log D_c(c)] + E_{z ~ p_z}[log(1 - D_c(G_z(z)))]     (1)

The target ``p_c`` is "fixed to the code learner" (§3.2; Algorithm 1 line 13 steps only
``θ_{G_z}, θ_{D_c}``): :meth:`ACL.step` detaches the codes, so the inference net never receives a
gradient from the code game (the difference from ARAE, which aligns both sides). Because it only
needs codes, it attaches to any encoder/decoder pair (:meth:`ACL.attach`)::

    import torch
    from torch import nn
    from pygan.models.acl import ACL

    enc = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 16))  # yours
    dec = nn.Sequential(nn.Linear(16, 256), nn.ReLU(), nn.Linear(256, 784), nn.Tanh())     # yours
    acl = ACL(code_dim=16)                       # G_z: N(0, I_16) -> R^16, D_c: R^16 -> logit
    pair = acl.attach(enc, dec)
    opts = acl.configure_optimizers(lr=2e-4)     # {"code_generator": ..., "code_discriminator": ...}
    for x in loader:
        ...                                      # train enc/dec however you like (AE, GAN, classifier)
        pair.step(x, opts)                       # c = enc(x) without grad; one D_c then one G_z update
    images = pair.sample(64)                     # dec(G_z(z)), z ~ p_z, networks in eval mode

Decisions (the paper is silent):

* "2-layer MLPs": two linear layers, i.e. ``layers=1`` hidden layer of ``hidden`` units (512). ``G_z``
  uses ReLU and a linear output (the codes of pygan's encoders are unbounded linear outputs, so the
  generator's range must be too); ``D_c`` uses LeakyReLU(0.2) and returns one logit. No
  normalisation, PyTorch's default initialisation.
* ``p_z``: ``N(0, I_{d_z})`` with ``d_z = d_c`` (§3.1 "d_c = d_z = d"; "1-mode Gaussian": unit
  variance assumed), or a Gaussian mixture (:class:`MixturePrior`; the 4-mode prior of §5.6).
* ``G_z``'s loss is the non-saturating ``-log D_c(G_z(z))`` (Eq. 1 is the saturating minimax form;
  every GAN code base of the time, and the AAE code the paper follows, uses the non-saturating one).
* One ``D_c`` update, then ``g_steps`` ``G_z`` updates (fresh noise after the first); both with Adam.

The models
==========

``acl-ae`` (:class:`ACLAE`, §4.1, Eqs. 2-3)
    A vanilla autoencoder plus ACL on its bottleneck. Per iteration: one autoencoder update on
    ``L_E = ||x - Dec(Enc(x))||^2`` (Eq. 2), then the code game on the (detached) codes of the same
    forward pass. Samples ``Dec(G_z(z))``. Images or 2-D points (the prior-analysis toy, §5.6).

``acl-gan`` (:class:`ACLGAN`, §4.2, Eqs. 4-6, Algorithm 1)
    The DCGAN baseline (:mod:`pygan.models.dcgan`, same networks and optimiser settings) with an
    encoder ``E_x`` and ACL attached; ``G_x``'s input is the code. One iteration is Algorithm 1::

        x_r ~ p_x;  z ~ p_z;  c_f = G_z(z)                                    (lines 2, 5, 6)
        line 11  E_x  <- L_R = ||Φ(x_r) - Φ(G_x(E_x(x_r)))||^2                (G_x, D_x frozen)
        line 12  D_x  <- L_D on x_r (real) vs x_ff = G_x(c_f) (fake)          (c_f detached)
                 G_x  <- -log D_x(x_ff)                                        (D_x frozen)
        line 13  D_c, G_z <- L_Z on c = E_x(x_r) (detached) vs c_f             (E_x fixed)

    ``Φ`` is the discriminator's last hidden layer (pygan's choice: the 1-D logit would be a very weak
    reconstruction target; VAE/GAN, which the paper credits, uses a hidden layer). ``L_R`` is
    computed by :func:`pygan.ops.feature_regularizer` (mean of squared differences; ``Φ(x_r)`` is the
    constant target). Reconstructions ``x_f`` are never shown to ``D_x`` as fakes (§4.2: "only used
    for training the encoder"; Algorithm 1's fake is ``x_ff``).

    **Eq. 4 vs Algorithm 1**: Eq. 4 minimises ``L_rec`` over ``θ_{E_x}`` *and*
    ``θ_{G_x}``, Algorithm 1 line 11 over ``θ_{E_x}`` only. pygan follows Algorithm 1 by default
    (``rec_updates="encoder"``; it is also what the text says, and what keeps "simply attach our ACL
    module to vanilla GAN, keeping everything else unchanged" true for ``G_x``);
    ``rec_updates="encoder+generator"`` is Eq. 4's reading: both ``E_x``'s and ``G_x``'s optimisers
    step on ``L_R`` at line 11.

``acl-gan-gp`` (:class:`ACLGANGP`, §4.2 last paragraph, §5.3)
    ACL-GAN on the WGAN-GP baseline (:mod:`pygan.models.wgan_gp`): line 12 becomes WGAN-GP's
    ``n_critic`` critic updates (critic loss ``D(x_ff) - D(x_r) + GP`` via
    :func:`pygan.ops.gradient_penalty`, interpolating reals with ``x_ff``; the first critic update
    uses Algorithm 1's ``x_r`` and ``c_f``, the others fresh real batches and fresh ``G_z`` codes),
    then one ``G_x`` update on ``-D(x_ff)``. The penalty is on the image critic only; ``D_c`` keeps
    Eq. 1's cross-entropy game (§4.2: the code learner is "the same as in Section 3.2"). ``Φ`` is the
    critic's last hidden layer.

``acl-sgan`` (:class:`ACLSGAN`, §4.3)
    ACL-GAN with the encoder replaced by a classifier trained on the labels; "the code learning target
    becomes the last fully connected layer of the classifier". pygan's choices: the classifier is
    the encoder's conv body, a fully connected *code* layer (``d_c`` units, the ACL target; default
    ``sgan_code="features"``), LeakyReLU(0.2) and a linear layer to the class logits;
    ``sgan_code="logits"`` makes the logits themselves the code (``d_c = num_classes``). At line 11
    the classifier minimises ``λ_2 L_R + cls_weight * CE(logits, y)`` (it takes ``E_x``'s place, so it
    keeps ``E_x``'s reconstruction loss; the paper does not say whether it does).

Decisions common to the GAN variants: forward passes are recomputed with the current weights for
each update (as the GAN reference codes do), except that Algorithm 1's single ``z`` / ``c_f`` and
``x_r`` serve lines 11-13 and line 13's real codes are line 3's ``c = E_x(x_r)`` (computed once, as
written). The image GAN uses the baseline's loss forms (non-saturating ``G_x``). The λ weights of
Eqs. 3 and 6 (all 1.0, the paper's) multiply their losses; since each loss steps its own parameter
set with its own Adam optimiser (Adam is invariant to a constant scale of the loss up to its
epsilon), they barely matter — except λ_2 against ``cls_weight``, which share ACL-SGAN's classifier
step.

Which loss updates which network, and that the others stay unchanged and receive no gradient, is
tested in ``tests/models/test_acl.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from pygan.amp import optimizer_step, scaled_backward
from pygan.data.core import Batch, DataInfo, Dataset
from pygan.errors import ConfigError
from pygan.metrics.modes import mode_log
from pygan.models import (
    BETAS,
    COUNT,
    GP_EVERY,
    LAYERS,
    LR,
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
from pygan.models.losses import d_loss_bce, d_loss_wgan, g_loss_bce, g_loss_wgan, mse
from pygan.models.nets import ConvDecoder, ConvEncoder, init_dcgan, mlp
from pygan.ops import feature_regularizer, gradient_penalty

__all__ = [
    "ACL",
    "ACLAE",
    "ACLGAN",
    "ACLGANGP",
    "ACLSGAN",
    "ACLAEConfig",
    "ACLAttachment",
    "ACLGANConfig",
    "ACLGANGPConfig",
    "ACLSGANConfig",
    "CodeClassifier",
    "MixturePrior",
    "NormalPrior",
]


# ---- priors ---------------------------------------------------------------------------------------


class NormalPrior(nn.Module):
    """``z ~ N(0, I_dim)``."""

    def __init__(self, dim: int):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self.dim = dim
        self.register_buffer("_where", torch.zeros(0), persistent=False)  # follows .to(device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.dim, generator=generator, device=self._where.device)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class MixturePrior(nn.Module):
    """An equal-weight mixture of isotropic Gaussians: ``z = centres[k] + std * N(0, I)``,
    ``k ~ U{0..K-1}`` (the ACL paper's §5.6 4-mode prior, with the target mixture's centres and std)."""

    def __init__(self, centres, std: float):
        super().__init__()
        c = torch.as_tensor(centres, dtype=torch.float32)
        if c.dim() != 2 or c.shape[0] < 1 or c.shape[1] < 1:
            raise ValueError(f"centres must be [K, dim] with K >= 1, got shape {tuple(c.shape)}")
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not std > 0:
            raise ValueError(f"std must be a positive number, got {std!r}")
        self.dim = c.shape[1]
        self.std = float(std)
        self.register_buffer("centres", c)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        dev = self.centres.device
        k = torch.randint(len(self.centres), (n,), generator=generator, device=dev)
        return self.centres[k] + self.std * torch.randn(n, self.dim, generator=generator, device=dev)

    def extra_repr(self) -> str:
        return f"modes={len(self.centres)}, dim={self.dim}, std={self.std}"


# ---- the ACL module -------------------------------------------------------------------------------


class ACL(nn.Module):
    """The adversarial code learning module: ``G_z`` (``code_generator``), ``D_c``
    (``code_discriminator``) and the prior; see the module docstring for the equations, the
    decisions and an example with your own encoder/decoder.

    Args:
        code_dim: ``d_c``, the size of the codes the inference net produces.
        z_dim: ``d_z`` (default ``code_dim``; ignored when ``prior`` is a module).
        hidden, layers: hidden units and hidden layers of both MLPs (1 hidden layer = the paper's
            "2-layer MLP").
        prior: ``"normal"`` (``N(0, I)``) or a module with ``dim`` and ``sample(n, generator)``
            (e.g. :class:`MixturePrior`).
    """

    def __init__(
        self,
        code_dim: int,
        z_dim: int | None = None,
        hidden: int = 512,
        layers: int = 1,
        prior: str | nn.Module = "normal",
    ):
        super().__init__()
        for name, v in (("code_dim", code_dim), ("hidden", hidden)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:
            raise ValueError(f"layers must be a non-negative int, got {layers!r}")
        if isinstance(prior, str):
            if prior != "normal":
                raise ValueError(
                    f"prior must be 'normal' or a prior module (e.g. MixturePrior), got {prior!r}"
                )
            prior = NormalPrior(code_dim if z_dim is None else z_dim)
        elif not (isinstance(prior, nn.Module) and hasattr(prior, "sample") and hasattr(prior, "dim")):
            raise TypeError(
                f"prior must be 'normal' or an nn.Module with dim and sample(n, generator), got {prior!r}"
            )
        elif z_dim is not None and z_dim != prior.dim:
            raise ValueError(f"z_dim={z_dim} does not match the prior's dim {prior.dim}")
        self.code_dim = code_dim
        self.z_dim = prior.dim
        self.prior = prior
        self.code_generator = mlp(self.z_dim, code_dim, hidden, layers)
        self.code_discriminator = mlp(code_dim, 1, hidden, layers, act=functools.partial(nn.LeakyReLU, 0.2))

    # -- sampling
    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws from the prior ``p_z``."""
        return self.prior.sample(n, generator)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``G_z(z)``: generated codes ``[B, code_dim]``."""
        return self.code_generator(z)

    def generate(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``G_z(z)`` for ``n`` fresh prior draws."""
        return self.code_generator(self.noise(n, generator))

    def score(self, codes: torch.Tensor) -> torch.Tensor:
        """``D_c``'s logits ``[B]`` for ``codes``."""
        return self.code_discriminator(codes).squeeze(1)

    @torch.no_grad()
    def sample(self, decoder: Callable, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``decoder(G_z(z))`` for ``n`` prior draws, with ``G_z`` (and ``decoder`` when it is a module)
        in eval mode; the modes are restored afterwards."""
        mods = [self.code_generator] + ([decoder] if isinstance(decoder, nn.Module) else [])
        with eval_mode(*mods):
            return decoder(self.generate(n, generator))

    # -- training
    def configure_optimizers(
        self,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        lr_d: float | None = None,
    ) -> dict[str, torch.optim.Optimizer]:
        """Adam for ``G_z`` (``"code_generator"``) and ``D_c`` (``"code_discriminator"``, ``lr_d``
        defaults to ``lr``)."""
        return {
            "code_generator": torch.optim.Adam(self.code_generator.parameters(), lr=lr, betas=betas),
            "code_discriminator": torch.optim.Adam(
                self.code_discriminator.parameters(), lr=lr if lr_d is None else lr_d, betas=betas
            ),
        }

    def _check_codes(self, name: str, codes) -> None:
        if not isinstance(codes, torch.Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(codes).__name__}")
        if codes.dim() != 2 or codes.shape[1] != self.code_dim:
            raise ValueError(f"{name} must be [B, {self.code_dim}] codes, got shape {tuple(codes.shape)}")
        if not codes.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got {codes.dtype}")

    def discriminator_loss(
        self, real_codes: torch.Tensor, fake_codes: torch.Tensor, code_discriminator: Callable | None = None
    ) -> torch.Tensor:
        """``-(log D_c(c) + log(1 - D_c(c_f)))`` (Algorithm 1 line 8), both codes detached."""
        dc = code_discriminator or self.code_discriminator
        return d_loss_bce(dc(real_codes.detach()).squeeze(1), dc(fake_codes.detach()).squeeze(1))

    def generator_loss(self, fake_codes: torch.Tensor) -> torch.Tensor:
        """``-log D_c(G_z(z))`` (non-saturating) with ``D_c`` frozen: only ``G_z`` gets a gradient."""
        with frozen(self.code_discriminator):
            return g_loss_bce(self.score(fake_codes))

    def step(
        self,
        real_codes: torch.Tensor,
        optimizers: dict[str, torch.optim.Optimizer],
        *,
        z: torch.Tensor | None = None,
        fake_codes: torch.Tensor | None = None,
        weight: float = 1.0,
        g_steps: int = 1,
        code_generator: Callable | None = None,
        code_discriminator: Callable | None = None,
    ) -> dict[str, torch.Tensor]:
        """One round of the code game (Algorithm 1 line 13): a ``D_c`` update on ``real_codes``
        (detached: the inference net is fixed here) vs ``G_z(z)``, then ``g_steps`` ``G_z`` updates
        (the first on the same codes, later ones on fresh noise).

        Args:
            real_codes: ``[B, code_dim]`` codes ``c = E(x)`` of the inference net.
            optimizers: from :meth:`configure_optimizers` (or any dict with the same two keys).
            z: prior draws for the first ``G_z`` pass (default: fresh ``B`` draws).
            fake_codes: ``G_z(z)`` already computed with its graph (then ``z`` is not used).
            weight: λ on ``L_Z`` (Eq. 3's λ_1 / Eq. 6's λ_4).
            g_steps: ``G_z`` updates per ``D_c`` update.
            code_generator, code_discriminator: the networks to run for the update (DDP wrappers);
                default the module's own.

        Returns ``{"loss_dc", "loss_gz", "dc_real", "dc_fake"}`` as detached 0-dim tensors (the last
        two: mean ``D_c`` probabilities before the update).
        """
        self._check_codes("real_codes", real_codes)
        if isinstance(g_steps, bool) or not isinstance(g_steps, int) or g_steps < 1:
            raise ValueError(f"g_steps must be a positive int, got {g_steps!r}")
        missing = {"code_generator", "code_discriminator"} - set(optimizers)
        if missing:
            raise ValueError(f"optimizers lacks {sorted(missing)} (use ACL.configure_optimizers())")
        gz = code_generator or self.code_generator
        dc = code_discriminator or self.code_discriminator
        real = real_codes.detach()
        if fake_codes is None:
            fake_codes = gz(self.noise(len(real)) if z is None else z)
        self._check_codes("fake_codes", fake_codes)
        # D_c: real codes vs generated codes, both detached
        d_real, d_fake = dc(real).squeeze(1), dc(fake_codes.detach()).squeeze(1)
        loss_dc = weight * d_loss_bce(d_real, d_fake)
        _update(optimizers["code_discriminator"], loss_dc)
        # G_z: through the updated, frozen D_c
        for i in range(g_steps):
            if i:
                fake_codes = gz(self.noise(len(real)))
            loss_gz = weight * self.generator_loss(fake_codes)
            _update(optimizers["code_generator"], loss_gz)
        return {
            "loss_dc": loss_dc.detach(),
            "loss_gz": loss_gz.detach(),
            "dc_real": torch.sigmoid(d_real.detach().float()).mean(),
            "dc_fake": torch.sigmoid(d_fake.detach().float()).mean(),
        }

    def attach(self, encoder: Callable, decoder: Callable) -> ACLAttachment:
        """Binds this module to a user's ``encoder`` (``x -> [B, code_dim]``) and ``decoder``
        (``[B, code_dim] -> x``); see :class:`ACLAttachment`."""
        return ACLAttachment(self, encoder, decoder)


class ACLAttachment:
    """An :class:`ACL` module bound to an encoder/decoder pair the user trains (the module does not
    own them: they are not in its ``state_dict`` and it never updates them).

    * :meth:`codes` ``(x)``: ``encoder(x)`` without gradient, checked to be ``[B, code_dim]``;
    * :meth:`step` ``(x, optimizers)``: one round of the code game on ``codes(x)``;
    * :meth:`sample` ``(n)``: ``decoder(G_z(z))``.
    """

    def __init__(self, acl: ACL, encoder: Callable, decoder: Callable):
        if not isinstance(acl, ACL):
            raise TypeError(f"acl must be an ACL module, got {type(acl).__name__}")
        for name, f in (("encoder", encoder), ("decoder", decoder)):
            if not callable(f):
                raise TypeError(f"{name} must be callable (an nn.Module or function), got {type(f).__name__}")
        self.acl, self.encoder, self.decoder = acl, encoder, decoder

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        c = self.encoder(x)
        self.acl._check_codes("encoder(x)", c)
        return c

    def step(
        self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], **kw
    ) -> dict[str, torch.Tensor]:
        """:meth:`ACL.step` on ``codes(x)`` (keyword arguments are passed on)."""
        return self.acl.step(self.codes(x), optimizers, **kw)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.acl.sample(self.decoder, n, generator)


def _update(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    scaled_backward(loss)  # through the float16 gradient scaler under --amp fp16 (pygan.amp)
    optimizer_step(opt)


# ---- shared model plumbing ------------------------------------------------------------------------


class _ACLModel(Model):
    """Plumbing shared by the ACL models: the ACL child's two networks are DDP-wrapped and looked up
    by dotted name (``"acl.code_generator"``), sampling through ``acl.sample``."""

    #: the networks that make the outputs (averaged by the generator EMA, written by pygan export)
    generator_networks = ("acl.code_generator", "generator", "encoder", "decoder")

    acl: ACL

    def ddp_networks(self) -> list[str]:
        names = []
        for n, m in self.named_children():
            if n == "acl":
                names += ["acl.code_generator", "acl.code_discriminator"]
            elif any(p.requires_grad for p in m.parameters()):
                names.append(n)
        return names

    def _code_step(self, real_codes, fake_codes, weight, g_steps=1) -> dict[str, torch.Tensor]:
        return self.acl.step(
            real_codes,
            self.optimizers,
            fake_codes=fake_codes,
            weight=weight,
            g_steps=g_steps,
            code_generator=self.wrapped("acl.code_generator"),
            code_discriminator=self.wrapped("acl.code_discriminator"),
        )

    @torch.no_grad()
    def code_distance(self, real_codes: torch.Tensor, generator: torch.Generator) -> float:
        """Fréchet distance between the inference net's codes and as many ``G_z(z)`` codes (a cheap
        "are the learned codes aligned with the target" number; Gaussian fit, so a coarse one)."""
        from pygan.metrics.frechet import frechet_distance, gaussian_stats

        with eval_mode(self.acl):
            fake = self.acl.generate(len(real_codes), generator)
        mu1, s1 = gaussian_stats(real_codes.double().cpu())
        mu2, s2 = gaussian_stats(fake.double().cpu())
        return float(frechet_distance(mu1, s1, mu2, s2))


def _make_prior(kind: str, code_dim: int, z_dim: int | None, info: DataInfo) -> nn.Module:
    if kind == "normal":
        return NormalPrior(code_dim if z_dim is None else z_dim)
    if kind == "mixture":
        centres, std = info.meta.get("centers"), info.meta.get("std")
        if centres is None or std is None:
            raise ConfigError(
                "prior='mixture' uses the data's mode centres and std (points data such as square4, "
                f"ring8, grid25); this {info.kind} data has none"
            )
        p = MixturePrior(centres, float(std))
        if z_dim is not None and z_dim != p.dim:
            raise ConfigError(f"prior='mixture' draws {p.dim}-D noise; z_dim={z_dim} does not match")
        return p
    raise ConfigError(f"prior must be 'normal' or 'mixture', got {kind!r}")


# ---- ACL-AE ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ACLAEConfig(ModelConfig):
    """ACL-AE settings (ACL paper, Sec. 4.1, 5.2, 5.6). The paper states λ_1 = 1 (Eq. 3), a latent
    dimension of 10 on MNIST, and that its MNIST runs follow hwalsuklee/tensorflow-mnist-AAE; the
    defaults below are that repository's where the paper is silent: MLP
    encoder/decoder with 2 hidden layers of 1000 ReLU units and dropout 0.1 (keep_prob 0.9), ``tanh``
    output (pygan's images are in [-1, 1]; the repository's sigmoid is for [0, 1]), mean squared
    error, batch 128, Adam ``lr = 1e-3`` for the autoencoder and ``G_z`` and ``1e-3 / 5`` for
    ``D_c`` (TensorFlow's default betas), and two generator updates per discriminator update.

    Attributes:
        code_dim: ``d_c``; None = 10 for images (the paper's MNIST setting), 2 for points (§5.6 plots
            2-D codes).
        z_dim: ``d_z``; None = ``code_dim`` (the paper's ``d_z = d_c``); the mixture prior fixes it.
        prior: ``"normal"`` (``N(0, I)``, the main experiments) or ``"mixture"`` (points only: a
            Gaussian mixture with the data's mode centres and std, §5.6 setting 2).
        arch: ``"mlp"`` (the repository's) or ``"conv"`` (DCGAN encoder/decoder of ``width``).
        ae_hidden, ae_layers, dropout: the MLPs; ``ae_hidden``/``dropout`` None = 1000/0.1 for
            images, 128/0 for points (small toy networks).
        acl_hidden, acl_layers: the ACL MLPs (1 hidden layer: the paper's "2-layer MLPs").
        acl_lr, acl_lr_d, acl_g_steps: ``G_z``'s and ``D_c``'s Adam learning rates, ``G_z`` steps per
            ``D_c`` step.
        lambda_z: λ_1 of Eq. 3.
    """

    batch_size: int = batch_size_field(128)
    lr: float = lr_field(1e-3)
    betas: tuple[float, float] = betas_field((0.9, 0.999))
    code_dim: int | None = knob(None, COUNT)
    z_dim: int | None = knob(None, COUNT)
    prior: Literal["normal", "mixture"] = "normal"
    arch: Literal["mlp", "conv"] = "mlp"
    ae_hidden: int | None = knob(None, COUNT)
    ae_layers: int = knob(2, COUNT)
    dropout: float | None = knob(None, lo=0, hi=1, hi_open=True, note="a dropout probability")
    width: int = knob(64, COUNT)
    acl_hidden: int = knob(512, COUNT)
    acl_layers: int = knob(1, LAYERS)
    acl_lr: float = knob(1e-3, LR)
    acl_lr_d: float = knob(2e-4, LR)
    acl_g_steps: int = knob(2, COUNT)
    lambda_z: float = knob(1.0, WEIGHT)
    ema_decay: float = ema_decay_field(0.0)
    ema_rampup: float = ema_rampup_field(0.05)

    def resolve(self, info: DataInfo):
        """This Config with its None fields set for data ``info``: ``code_dim`` 10 / ``ae_hidden``
        1000 / ``dropout`` 0.1 for images, 2 / 128 / 0 for points."""
        points = info.kind == "points"

        def given(value, default):
            return default if value is None else value

        return replace(
            self,
            code_dim=given(self.code_dim, 2 if points else 10),
            ae_hidden=given(self.ae_hidden, 128 if points else 1000),
            dropout=given(self.dropout, 0.0 if points else 0.1),
        )


def _mlp_dropout(d_in: int, d_out: int, hidden: int, layers: int, dropout: float) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = d_in
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.ReLU()]
        if dropout > 0:
            mods.append(nn.Dropout(dropout))
        d = hidden
    mods.append(nn.Linear(d, d_out))
    return nn.Sequential(*mods)


class _Unflatten(nn.Module):
    def __init__(self, net: nn.Module, shape: tuple[int, ...], act: nn.Module):
        super().__init__()
        self.net, self.shape, self.act = net, tuple(shape), act

    def forward(self, c):
        return self.act(self.net(c)).view(-1, *self.shape)


@register("acl-ae")
class ACLAE(_ACLModel):
    """ACL-AE: an autoencoder made generative by ACL on its bottleneck (§4.1); see the module
    docstring. Networks: ``encoder`` (``Enc_x``), ``decoder`` (``Dec_x``), ``acl`` (``G_z``, ``D_c``);
    optimisers ``"autoencoder"``, ``"code_generator"``, ``"code_discriminator"``."""

    Config = ACLAEConfig
    # small: the ACL bench's settings (docs/experiments/acl.md: width 32 for arch="conv", batch 64)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 32, "batch_size": 64}}
    default_data = "digits16"
    data_kinds = ("images", "points")

    def __init__(self, config: ACLAEConfig, info: DataInfo):
        super().__init__(config, info)
        c = config
        self.points = info.kind == "points"
        if self.points and c.arch == "conv":
            raise ConfigError("arch='conv' needs image data; points use arch='mlp'")
        r = self.resolved_config
        dropout, self.code_dim, hidden = r.dropout, r.code_dim, r.ae_hidden
        d_in = 1
        for s in info.shape:
            d_in *= s
        if c.arch == "conv":
            ch, h, w = info.shape
            if h != w:
                raise ValueError(f"arch='conv' needs square images, got {h}x{w}")
            self.encoder = ConvEncoder(ch, h, c.width, out_dim=self.code_dim, norm="batch")
            self.decoder = ConvDecoder(self.code_dim, ch, h, c.width, norm="batch")
            self.encoder.apply(init_dcgan)
            self.decoder.apply(init_dcgan)
        else:
            self.encoder = nn.Sequential(
                nn.Flatten(), _mlp_dropout(d_in, self.code_dim, hidden, c.ae_layers, dropout)
            )
            out_act = nn.Identity() if self.points else nn.Tanh()
            self.decoder = _Unflatten(
                _mlp_dropout(self.code_dim, d_in, hidden, c.ae_layers, dropout), info.shape, out_act
            )
        prior = _make_prior(c.prior, self.code_dim, c.z_dim, info)
        self.acl = ACL(self.code_dim, hidden=c.acl_hidden, layers=c.acl_layers, prior=prior)

    def configure_optimizers(self):
        c = self.config
        return {
            "autoencoder": self.adam(self.encoder, self.decoder),
            **self.acl.configure_optimizers(lr=c.acl_lr, betas=c.betas, lr_d=c.acl_lr_d),
        }

    def step_autoencoder(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 2: ``L_E = ||x - Dec(Enc(x))||^2`` (mean over elements, the AAE code's MSE), one
        update of ``Enc_x`` and ``Dec_x``. Returns the codes of this pass (detached) and the loss."""
        c = self.wrapped("encoder")(x)
        x_hat = self.wrapped("decoder")(c)
        loss_e = feature_regularizer(x_hat.float(), x.float(), detach_b=True)  # float32 under autocast
        self.update("autoencoder", loss_e)
        return c.detach(), {"loss_e": loss_e.detach()}

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        # Eq. 2: the autoencoder
        codes, logs = self.step_autoencoder(batch.x)
        # Eq. 1 (weighted by λ_1, Eq. 3): the code game on the encoder's (detached) codes
        fake = self.wrapped("acl.code_generator")(self.acl.noise(len(codes)))
        logs.update(self._code_step(codes, fake, self.config.lambda_z, self.config.acl_g_steps))
        return logs

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, batch: Batch | None = None):
        return self.acl.sample(self.decoder, n, generator).float()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``Dec(Enc(x))`` (networks in their current mode)."""
        return self.decoder(self.encoder(x.to(self.device)))

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The target codes ``Enc(x)`` in eval mode (the mode is restored)."""
        with eval_mode(self.encoder):
            return self.encoder(x.to(self.device))

    @torch.no_grad()
    def evaluate(self, data: Dataset, generator: torch.Generator) -> dict[str, float]:
        """``code_fd``: Fréchet distance between ``Enc(x_test)`` and ``G_z(z)`` codes (up to 1,000);
        ``rec_mse``; for points also modes covered / high-quality fraction of 2,500 samples."""
        x = data.fixed(min(len(data), 1000)).x.to(self.device)
        out = {"code_fd": self.code_distance(self.codes(x), generator)}
        with eval_mode(self):
            out["rec_mse"] = float(mse(self.reconstruct(x), x))
        if self.points and "centers" in data.meta:
            out.update(mode_log(self.sample(2500, generator), data.meta["centers"], data.meta["std"]))
        return out

    def compile_networks(self) -> list[str]:
        for m in (self.encoder, self.decoder, self.acl.code_generator, self.acl.code_discriminator):
            m.compile()
        return ["encoder", "decoder", "acl.code_generator", "acl.code_discriminator"]


# ---- ACL-GAN, ACL-GAN-GP, ACL-SGAN ---------------------------------------------------------------


GanLoss = Literal["gan", "wgan-gp"]
CriticNorm = Literal["batch", "layer", "none"]


@dataclass(frozen=True)
class ACLGANConfig(ModelConfig):
    """ACL-GAN settings (ACL paper, Sec. 4.2, Eq. 6, Algorithm 1). The paper: λ_2 = λ_3 = λ_4 = 1, and
    "we simply attach our ACL module to vanilla GAN, keeping everything else unchanged" — so the
    image networks and their optimiser are the DCGAN baseline's (:class:`pygan.models.dcgan.DCGANConfig`:
    Adam ``2e-4``, ``(0.5, 0.999)``, batch 128, width 64, BatchNorm) and ``d_c = d_z`` = the baseline's
    100-dimensional noise. Not stated, chosen: the encoder is the DCGAN discriminator body with a
    ``code_dim`` linear head (BatchNorm, like VAE/GAN's encoder); the ACL networks use the same Adam
    settings.

    Attributes:
        code_dim: ``d_c`` (= ``d_z``); None = 100 (the DCGAN baseline's noise size).
        rec_updates: ``"encoder"`` (Algorithm 1 line 11, the default) or ``"encoder+generator"``
            (Eq. 4's parameter set); see the module docstring.
        gan_loss: ``"gan"`` (non-saturating cross-entropy, the DCGAN baseline) or ``"wgan-gp"``.
        n_critic, gp_weight, gp_kind, critic_norm: the WGAN-GP image critic (``gan_loss="wgan-gp"``).
        gp_every: lazy regularisation (Karras et al. 2020, §B; ``gan_loss="wgan-gp"`` only): the
            penalty on every ``gp_every``-th critic step with its weight times ``gp_every``; 1 = always.
        acl_hidden, acl_layers: the ACL MLPs (the paper's "2-layer MLPs": 1 hidden layer).
        acl_lr, acl_betas: the ACL networks' Adam settings; None = ``lr`` / ``betas``.
        lambda_rec, lambda_gan, lambda_z: λ_2, λ_3, λ_4 of Eq. 6.
    """

    batch_size: int = batch_size_field(128)
    lr: float = lr_field(2e-4)
    betas: tuple[float, float] = betas_field((0.5, 0.999))
    code_dim: int | None = knob(None, COUNT)
    width: int = knob(64, COUNT)
    rec_updates: Literal["encoder", "encoder+generator"] = "encoder"
    gan_loss: GanLoss = "gan"
    n_critic: int = knob(1, COUNT)
    gp_weight: float = knob(10.0, WEIGHT)
    gp_kind: Literal["wgan-gp", "one-sided", "r1"] = "wgan-gp"
    gp_every: int = knob(1, GP_EVERY)
    critic_norm: CriticNorm = "batch"
    acl_hidden: int = knob(512, COUNT)
    acl_layers: int = knob(1, LAYERS)
    acl_lr: float | None = knob(None, LR)
    acl_betas: tuple[float, float] | None = knob(None, BETAS)
    lambda_rec: float = knob(1.0, WEIGHT)
    lambda_gan: float = knob(1.0, WEIGHT)
    lambda_z: float = knob(1.0, WEIGHT)
    ema_decay: float = ema_decay_field(0.0)
    ema_rampup: float = ema_rampup_field(0.05)

    #: ``code_dim`` when None: the baseline's noise size (not a field: config.json keeps None)
    default_code_dim: ClassVar[int] = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gan_loss == "gan" and self.n_critic != 1:
            raise ConfigError(
                f"n_critic={self.n_critic} applies to gan_loss='wgan-gp'; the vanilla GAN takes 1"
            )
        if self.gan_loss == "wgan-gp" and self.critic_norm == "batch":
            raise ConfigError(
                "critic_norm='batch' mixes samples, which breaks the per-sample gradient penalty"
            )
        if self.gp_every != 1 and self.gan_loss != "wgan-gp":
            raise ConfigError(
                f"gp_every={self.gp_every} applies to gan_loss='wgan-gp' (the GAN has no penalty)"
            )

    def resolve(self, info: DataInfo):
        """This Config with its None fields set: ``code_dim`` :attr:`default_code_dim`, ``acl_lr`` /
        ``acl_betas`` the image networks' ``lr`` / ``betas``."""
        return replace(
            self,
            code_dim=self.default_code_dim if self.code_dim is None else self.code_dim,
            acl_lr=self.lr if self.acl_lr is None else self.acl_lr,
            acl_betas=self.betas if self.acl_betas is None else self.acl_betas,
        )


@dataclass(frozen=True)
class ACLGANGPConfig(ACLGANConfig):
    """ACL-GAN-GP settings: ACL-GAN on the WGAN-GP baseline, "following the same settings" (§5.3),
    i.e. :class:`pygan.models.wgan_gp.WGANGPConfig`'s: Adam ``1e-4``, ``(0, 0.9)``, ``n_critic = 5``,
    penalty weight 10 (two-sided, on interpolates of reals and ``x_ff``), batch 64, ``d_c = d_z`` =
    128, no normalisation in the critic. ``D_c`` keeps Eq. 1's cross-entropy game (no penalty)."""

    batch_size: int = batch_size_field(64)
    lr: float = lr_field(1e-4)
    betas: tuple[float, float] = betas_field((0.0, 0.9))
    gan_loss: GanLoss = "wgan-gp"
    n_critic: int = knob(5, COUNT)
    critic_norm: CriticNorm = "none"

    default_code_dim: ClassVar[int] = 128  # the WGAN-GP baseline's z


@dataclass(frozen=True)
class ACLSGANConfig(ACLGANConfig):
    """ACL-SGAN settings: ACL-GAN's, plus the classifier (ACL paper, Sec. 4.3, which states none of it).

    Attributes:
        sgan_code: ``"features"`` (the classifier's last hidden fully connected layer, ``code_dim``
            units, is the code; default) or ``"logits"`` (the class logits are the code;
            ``code_dim`` = the number of classes).
        cls_weight: weight of the cross-entropy added to the classifier's ``L_R`` at line 11.
    """

    sgan_code: Literal["features", "logits"] = "features"
    cls_weight: float = knob(1.0, WEIGHT)

    def resolve(self, info: DataInfo):
        """ACL-GAN's, and with ``sgan_code="logits"`` on labelled data ``code_dim`` = the number of
        classes (a different ``code_dim`` is a :class:`~pygan.errors.ConfigError`; unlabelled data
        is the model's error)."""
        resolved = super().resolve(info)
        n = info.num_classes
        if self.sgan_code != "logits" or not n or n < 2:
            return resolved
        if self.code_dim not in (None, n):
            raise ConfigError(
                f"sgan_code='logits' makes the code the {n} class logits; "
                f"code_dim={self.code_dim} does not match"
            )
        return replace(resolved, code_dim=int(n))


class CodeClassifier(nn.Module):
    """ACL-SGAN's inference net: ``ConvEncoder`` body -> ``code`` (a fully connected layer; the ACL
    target) -> LeakyReLU(0.2) -> class logits (``logits_are_code``: the logits layer is the code).
    ``forward(x)`` returns the codes; :meth:`logits` the class logits of codes."""

    def __init__(
        self, channels: int, size: int, width: int, code_dim: int, num_classes: int, logits_are_code: bool
    ):
        super().__init__()
        self.body = ConvEncoder(channels, size, width, out_dim=code_dim, norm="batch")
        self.logits_are_code = logits_are_code
        self.head = None if logits_are_code else nn.Linear(code_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def logits(self, codes: torch.Tensor) -> torch.Tensor:
        return codes if self.head is None else self.head(F.leaky_relu(codes, 0.2))


@register("acl-gan")
class ACLGAN(_ACLModel):
    """ACL-GAN: Algorithm 1 on the DCGAN baseline; see the module docstring. Networks: ``encoder``
    (``E_x``), ``generator`` (``G_x``), ``discriminator`` (``D_x``), ``acl`` (``G_z``, ``D_c``);
    optimisers ``"encoder"``, ``"generator"``, ``"discriminator"``, ``"code_generator"``,
    ``"code_discriminator"``."""

    Config = ACLGANConfig
    # small: docs/experiments/acl.md's digits runs (width 32, batch 64)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 32, "batch_size": 64}}
    default_data = "digits32"
    data_kinds = ("images",)
    inference_net = "encoder"

    def __init__(self, config: ACLGANConfig, info: DataInfo):
        super().__init__(config, info)
        c = self.resolved_config
        ch, h, w = info.shape
        if h != w:
            raise ValueError(f"{type(self).name or 'acl-gan'} needs square images, got {h}x{w}")
        self.code_dim = c.code_dim
        self._build_inference_net(info)
        self.generator = ConvDecoder(self.code_dim, ch, h, c.width, norm="batch")
        self.discriminator = ConvEncoder(ch, h, c.width, out_dim=1, norm=c.critic_norm)
        self.apply(init_dcgan)  # the image networks and the inference net (conv/linear layers)
        self.acl = ACL(self.code_dim, hidden=c.acl_hidden, layers=c.acl_layers)
        self.lazy_gp = LazyPenalty(c.gp_every, c.n_critic)

    # -- construction hook (ACL-SGAN overrides it)
    def _build_inference_net(self, info: DataInfo) -> None:
        ch, h, _ = info.shape
        self.encoder = ConvEncoder(ch, h, self.config.width, out_dim=self.code_dim, norm="batch")

    @property
    def batches_per_step(self) -> int:
        return self.config.n_critic

    def configure_optimizers(self):
        c = self.resolved_config
        return {
            self.inference_net: self.adam(getattr(self, self.inference_net)),
            "generator": self.adam(self.generator),
            "discriminator": self.adam(self.discriminator),
            **self.acl.configure_optimizers(lr=c.acl_lr, betas=c.acl_betas),
        }

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """``Φ(x)``: the image discriminator's last hidden layer (its last conv stage's output)."""
        return self.discriminator(x, return_features=True)[1][-1]

    # -- Algorithm 1, one line at a time
    def step_encoder(self, x_r: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """Line 11: ``E_x <- L_R = ||Φ(x_r) - Φ(G_x(E_x(x_r)))||^2`` with ``G_x`` and ``D_x`` frozen
        (``rec_updates="encoder+generator"``: ``G_x`` steps on it too). Returns line 3's codes
        ``c = E_x(x_r)`` (detached) and the logs."""
        c = self.config
        both = c.rec_updates == "encoder+generator"
        names = [self.inference_net] + (["generator"] if both else [])
        fixed = [self.discriminator] + ([] if both else [self.generator])
        with frozen(*fixed):
            codes = self.wrapped(self.inference_net)(x_r)
            x_f = (self.wrapped("generator") if both else self.generator)(codes)
            with torch.no_grad():
                phi_r = self.phi(x_r)
            loss_r = feature_regularizer(self.phi(x_f), phi_r, detach_b=True)
            loss = c.lambda_rec * loss_r
            logs = {"loss_r": loss_r.detach()}
            extra = self._inference_extra_loss(codes, y, logs)
            if extra is not None:
                loss = loss + extra
        for n in names:
            self.optimizers[n].zero_grad(set_to_none=True)
        scaled_backward(loss)
        optimizer_step(*(self.optimizers[n] for n in names))
        return codes.detach(), logs

    def _inference_extra_loss(self, codes, y, logs) -> torch.Tensor | None:
        return None

    def step_image_gan(self, reals: list[torch.Tensor], c_f: torch.Tensor) -> dict[str, torch.Tensor]:
        """Line 12: the image GAN on ``x_ff = G_x(c_f)`` (``c_f`` detached: ``G_z`` is not touched).
        ``gan_loss="gan"``: one ``D_x`` update (cross-entropy; ``x_ff`` detached) and one ``G_x``
        update on the same ``x_ff`` through the updated, frozen ``D_x``. ``"wgan-gp"``: one critic
        update per real batch (the first with ``c_f``, the others with fresh ``G_z`` codes), then one
        ``G_x`` update on ``G_x(c_f)``. With ``gp_every > 1`` only the critic steps
        :class:`~pygan.models.LazyPenalty` names compute the penalty (weight times ``gp_every``)."""
        c = self.config
        G, D = self.wrapped("generator"), self.wrapped("discriminator")
        c_f = c_f.detach()
        sums: dict[str, torch.Tensor] = {}
        due = self.lazy_gp.due(self.iteration) if c.gan_loss == "wgan-gp" else ()
        gp_sum = 0.0
        x_ff = None
        for k, real in enumerate(reals):
            if k == 0:
                with torch.set_grad_enabled(c.gan_loss == "gan"):
                    x_ff = G(c_f)
                fake = x_ff.detach()
            else:
                with torch.no_grad():
                    fake = G(self.acl.generate(len(real)))
            fake = fake.to(real.dtype)  # bf16 under autocast
            d_real, d_fake = D(real), D(fake)
            if c.gan_loss == "gan":
                loss_d = c.lambda_gan * d_loss_bce(d_real, d_fake)
                parts = {
                    "d_real": torch.sigmoid(d_real.detach().float()).mean(),
                    "d_fake": torch.sigmoid(d_fake.detach().float()).mean(),
                }
            else:
                loss_d = d_loss_wgan(d_real, d_fake)
                if due[k]:
                    gp = gradient_penalty(D, real, fake, weight=c.gp_weight * c.gp_every, kind=c.gp_kind)
                    loss_d = loss_d + gp
                    gp_sum = gp_sum + (gp.detach() if c.gp_every == 1 else gp.detach() / c.gp_every)
                loss_d = c.lambda_gan * loss_d
                parts = {"wdist": (d_real.mean() - d_fake.mean()).detach()}
            self.update("discriminator", loss_d)
            parts["loss_d"] = loss_d.detach()
            for key, v in parts.items():
                sums[key] = sums.get(key, 0.0) + v / len(reals)
        if c.gan_loss == "wgan-gp":
            sums["gp"] = self.lazy_gp.log(gp_sum, due)
            x_ff = G(c_f)
        with frozen(self.discriminator):
            score = self.discriminator(x_ff)
            loss_g = c.lambda_gan * (g_loss_bce(score) if c.gan_loss == "gan" else g_loss_wgan(score))
        self.update("generator", loss_g)
        sums["loss_g"] = loss_g.detach()
        return sums

    def graph_phase(self, iteration: int):
        """Which critic steps compute the penalty (lazy regularisation); one phase otherwise."""
        return self.lazy_gp.phase(iteration)

    def step_code_gan(self, codes: torch.Tensor, c_f: torch.Tensor) -> dict[str, torch.Tensor]:
        """Line 13: ``D_c`` and ``G_z`` on ``c = E_x(x_r)`` (detached: ``E_x`` is fixed for the code
        learner) vs ``c_f = G_z(z)``."""
        return self._code_step(codes, c_f, self.config.lambda_z)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        parts = batch.split(self.batches_per_step)
        x_r = parts[0].x  # line 2
        z = self.acl.noise(len(x_r))  # line 5
        c_f = self.wrapped("acl.code_generator")(z)  # line 6 (its graph serves line 13's G_z update)
        codes, logs = self.step_encoder(x_r, parts[0].y)  # lines 3, 4, 10, 11
        logs.update(self.step_image_gan([p.x for p in parts], c_f))  # lines 7, 8, 12
        logs.update(self.step_code_gan(codes, c_f))  # lines 8, 13
        return logs

    # -- sampling and evaluation
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, batch: Batch | None = None):
        return self.acl.sample(self.generator, n, generator).float()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``G_x(E_x(x))`` (networks in their current mode)."""
        return self.generator(getattr(self, self.inference_net)(x.to(self.device)))

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The target codes ``E_x(x)`` in eval mode (the mode is restored)."""
        net = getattr(self, self.inference_net)
        with eval_mode(net):
            return net(x.to(self.device))

    @torch.no_grad()
    def evaluate(self, data: Dataset, generator: torch.Generator) -> dict[str, float]:
        """``code_fd``: Fréchet distance between ``E_x(x_test)`` and ``G_z(z)`` codes (up to 1,000)."""
        x = data.fixed(min(len(data), 1000)).x.to(self.device)
        return {"code_fd": self.code_distance(self.codes(x), generator)}

    def compile_networks(self) -> list[str]:
        """The encoder, generator and ACL networks; the discriminator too for the vanilla GAN (with
        WGAN-GP it stays eager: the penalty's double backward does not go through torch.compile)."""
        nets = [self.inference_net, "generator", "acl.code_generator", "acl.code_discriminator"]
        if self.config.gan_loss == "gan":
            nets.append("discriminator")
        for n in nets:
            self.get_submodule(n).compile()
        return nets


@register("acl-gan-gp")
class ACLGANGP(ACLGAN):
    """ACL-GAN-GP: Algorithm 1 on the WGAN-GP baseline (penalty by :func:`pygan.ops.gradient_penalty`);
    see the module docstring."""

    Config = ACLGANGPConfig
    # small: docs/experiments/acl.md's digits runs (width 32; batch 64 is the default)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 32}}


@register("acl-sgan")
class ACLSGAN(ACLGAN):
    """ACL-SGAN: ACL-GAN whose inference net is a classifier trained on the labels (§4.3); see the
    module docstring. The inference net is ``classifier`` (optimiser ``"classifier"``)."""

    Config = ACLSGANConfig
    # small: the ACL bench's settings (docs/experiments/acl.md: width 32, batch 64)
    PRESETS: ClassVar[dict[str, dict]] = {"paper": {}, "small": {"width": 32, "batch_size": 64}}
    inference_net = "classifier"

    def _build_inference_net(self, info: DataInfo) -> None:
        if not info.num_classes or info.num_classes < 2:
            raise ValueError(
                "acl-sgan trains its classifier on labels: it needs labelled images (e.g. --data digits16), "
                f"got num_classes={info.num_classes}"
            )
        ch, h, _ = info.shape
        self.classifier = CodeClassifier(
            ch, h, self.config.width, self.code_dim, int(info.num_classes), self.config.sgan_code == "logits"
        )

    def _inference_extra_loss(self, codes, y, logs):
        if y is None:
            raise ValueError("acl-sgan needs labels (batch.y) to train its classifier")
        logits = self.classifier.logits(codes)
        ce = F.cross_entropy(logits.float(), y)
        logs["loss_cls"] = ce.detach()
        logs["acc"] = (logits.detach().argmax(1) == y).float().mean()
        return self.config.cls_weight * ce

    @torch.no_grad()
    def evaluate(self, data: Dataset, generator: torch.Generator) -> dict[str, float]:
        """ACL-GAN's ``code_fd`` and the classifier's test accuracy ``acc``."""
        fixed = data.fixed(min(len(data), 1000))
        codes = self.codes(fixed.x.to(self.device))
        out = {"code_fd": self.code_distance(codes, generator)}
        if fixed.y is not None:
            with eval_mode(self.classifier):
                pred = self.classifier.logits(codes).argmax(1).cpu()
            out["acc"] = float((pred == fixed.y.cpu()).float().mean())
        return out
