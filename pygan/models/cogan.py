"""CoGAN — coupled GANs by hard weight sharing (Liu & Tuzel 2016), as the SCoGAN thesis ("Improved
Learning of Joint Distributions using Soft-Coupled GANs") reproduces it — and the coupled-pair
machinery SCoGAN builds on.

Two GANs, one per domain, fed the **same** ``z``; only marginal (unpaired) real samples are used.
The coupling is hard sharing: the generators' *first* layers and the discriminators' *last* layers
are the same ``Parameter`` objects. Objective (Eq. 3.1 with the printed sign typo fixed;
Eq. 3.2 for the Wasserstein form), minimised as::

    non-saturating ("ns"):  L_Di = -mean log s(D_i(x_i)) - mean log(1 - s(D_i(G_i(z))))
                            L_Gi = -mean log s(D_i(G_i(z)))                    (s = sigmoid)
    WGAN-GP ("wgan-gp"):    L_Di = mean D_i(G_i(z)) - mean D_i(x_i) + lambda * GP_i
                            L_Gi = -mean D_i(G_i(z))

``GP_i = mean_b (||grad D_i(x_hat_b)||_2 - 1)^2`` with ``x_hat = x + alpha (G(z) - x)``, one
``alpha ~ U[0, 1]`` per sample, ``lambda = 10`` — :func:`pygan.ops.gradient_penalty` (the fused op),
one call for both domains (the two interpolate batches are stacked and each half is scored by its
own critic; the mean over the ``2B`` rows times ``2 lambda`` is ``lambda GP_1 + lambda GP_2``).

One iteration (the thesis' trainer): ``n_critic`` discriminator steps — each on fresh real
batches of both domains and one fresh ``z`` for both generators (the same ``z``), the
fakes detached — then one generator step on a fresh ``z`` with the discriminators frozen.

Networks (``arch``; sides ``4 * 2^k``: 16, 32, 64, 128, ...):

* ``"digits"`` (Tables 3.1/3.2, the CoGAN 32x32 nets; the default for sides <= 32). Generator:
  ``z -> Dense(w*4*4) -> reshape -> BN -> PReLU`` (Listing 6.3), a stride-1 4x4 layer
  ``w -> w`` + BN + PReLU (Table 3.1's first ConvTranspose row, ``g_first_conv``), then ``k``
  stride-2 3x3 transposed convs halving the channels (``w/2, w/4, ...``; 'same' padding doubles
  the side) + BN + PReLU, then the 6x6 stride-1 output layer to ``C`` channels with **tanh and no
  BN** (the listings; the table's "BN, PReLU" on that row is a typo). At 32 px and
  ``g_width=1024``: 4x4x1024 -> 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 32x32xC.
  Discriminator: Conv(20, 5x5) -> MaxPool 2 -> Conv(50, 5x5) -> MaxPool 2 -> Dense 500 -> PReLU
  -> Dropout 0.5 -> Dense 1; no activation after the convs (Table 3.2), no sigmoid (§6.4; the
  loss applies it). ``d_width`` scales 20/50/500 together.
* ``"faces"`` (Tables A.1/A.2, the CelebA nets; the default for sides >= 64). Generator: the same
  Dense stage, then stride-2 4x4 transposed convs halving the channels + BN + PReLU to the full
  side (128 px: 8x8x512 ... 128x128x32), then a 3x3 stride-1 output layer with tanh, no BN.
  Discriminator: stride-2 convs (5x5 for the first three, 3x3 after) with ``d_width * 2^i``
  channels, norm + PReLU, dropout 0.1/0.3/0.3/0.5 after the 3rd..6th (Table A.2's rows, the first
  ``n`` of them at smaller sides), down to 2x2, then Dense ``64 d_width`` (2048) + norm + PReLU ->
  Dropout 0.5 -> Dense 1. Norm: BatchNorm with the non-saturating loss, LayerNorm with WGAN-GP
  (§3.3.2: "every BatchNorm in a discriminator is replaced by LayerNorm"; pygan's choice: LayerNorm over
  (C, H, W) with an affine map, the WGAN-GP paper's and :mod:`pygan.models.nets`' form). Table A.2's
  "Input ... BatchNorm yes" row is not applied (pygan's choice: a norm on the raw input would mix the
  samples that the per-sample penalty keeps apart, and the data is already in [-1, 1]).

Layers followed by BatchNorm carry no bias (BN in training mode cancels it; the thesis' Keras layers
have a redundant one). Stride-1 "ConvTranspose" layers (the digits' 4x4 and 6x6, the faces' 3x3) are
``Conv2d`` with 'same' padding: a stride-1 transposed convolution *is* a convolution (flipped
kernel), so the function class is the thesis'. PReLU: one slope per channel, initialised to 0.25
(the Caffe value the thesis uses, §7.2). Weights: ``init="xavier"`` is Xavier-*normal* (std ``sqrt(2
/ (fan_in + fan_out))``, as the thesis describes it; pygan's choice — its code used Keras'
glorot_uniform) for digits (§5.1); ``"normal"`` is ``N(0, 0.02)`` for faces (§5.3's "variance 0.02"
read as the standard deviation, the DCGAN value); biases 0. Weight decay (§3.7): ``c * sum w^2``
over the conv/dense kernels (Keras' ``l2(c)``; pygan applies it), ``c = 5e-4`` for
digits, ``1e-4`` for faces, given to Adam as ``weight_decay = 2c``.

Sharing (CoGAN): the generators share every stage but the last ``g_unshared`` (digits: 1, only the
output layer — Table 3.1 and Listing 6.4; faces: 2 — Table A.1); the discriminators share every
stage but the first ``d_unshared`` (1: the first conv (+pool) is per domain — Tables 3.2/A.2). The
shared prefix of the generators runs once per forward. Updates: one Adam over both generators'
parameters (shared ones once) steps on ``L_G1 + L_G2``, one over both discriminators on
``L_D1 + L_D2`` (pygan's choice: the thesis' one shared Adam instance applies two sequential steps to
a shared variable, one per domain loss; pygan takes one step on the sum of the two gradients). For
unshared parameters this is exactly each domain's own update: ``L_G2`` does not depend on ``G1``'s
own layers, and ``L_D2`` not on ``D1``'s.

Decisions 22/23/26 (settings by architecture): digits use the DCGAN optimiser the thesis names for
every MNIST run (§5.1: Adam 2e-4, betas 0.5/0.999, batch 128) with either loss; faces with WGAN-GP
use WGAN-GP's own (§5.3: Adam 1e-4, betas 0/0.9); ``n_critic`` is 5 with WGAN-GP (§4.1) and 1 with
the non-saturating loss (DCGAN); ``z`` is 100-d ``U[-1, 1]`` (§5.1/§5.3). Any of them can be set.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from pygan.data.core import Batch, DataInfo, Dataset
from pygan.errors import ConfigError
from pygan.models import (
    COUNT,
    GP_EVERY,
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
from pygan.ops import gradient_penalty

__all__ = [
    "CoGAN",
    "CoGANConfig",
    "CoupledDiscriminators",
    "CoupledGenerators",
    "Tower",
    "discriminator_stages",
    "generator_stages",
]

Arch = Literal["auto", "digits", "faces"]
Loss = Literal["ns", "wgan-gp"]
Init = Literal["xavier", "normal"]


@dataclass(frozen=True)
class CoGANConfig(ModelConfig):
    """CoGAN settings (Soft-Coupled GANs paper, Sec. 3.3 and 5). ``None`` fields are resolved from the
    architecture and loss as the thesis sets them (:meth:`CoGANConfig.resolve`, ``model.resolved_config``).

    Attributes:
        batch_size: 128 (DCGAN settings, §2.6/§5.1; the faces runs' batch is not stated).
        loss: ``"ns"`` (non-saturating, CoGAN's and the thesis' Chapter-3 reproduction) or
            ``"wgan-gp"`` (Eq. 3.2 + penalty, §3.3.2).
        n_critic: discriminator steps per generator step; None = 5 for WGAN-GP (§4.1), 1 for "ns".
        gp_weight: lambda = 10 (every GP run).
        gp_every: lazy regularisation (Karras et al. 2020, §B; ``loss="wgan-gp"`` only): the penalty
            on every ``gp_every``-th discriminator step, its weight times ``gp_every``; 1 = always
            (the thesis).
        lr, betas: Adam's; None = 2e-4 / (0.5, 0.999) (DCGAN: all digit runs, and "ns"), or
            1e-4 / (0, 0.9) for faces with WGAN-GP (§5.3).
        weight_decay: L2 ``c`` on kernels; None = 5e-4 (digits, §5.1) or 1e-4 (faces, §5.3).
        init: ``"xavier"`` or ``"normal"`` (0.02); None = xavier for digits, normal for faces.
        z_dim: 100. z_dist: ``"uniform"`` (U[-1, 1], §5.1) or ``"normal"``.
        arch: ``"digits"`` (Tables 3.1/3.2), ``"faces"`` (A.1/A.2) or ``"auto"`` (digits up to 32 px).
        g_width: channels of the generators' 4x4 stage (1024 in every table).
        d_width: first discriminator conv's channels; None = 20 (digits) / 32 (faces).
        g_first_conv: the digits generator's stride-1 4x4 layer (Soft-Coupled GANs paper, Table 3.1).
        g_unshared: generator stages *not* shared (from the output); None = 1 digits / 2 faces.
        d_unshared: discriminator stages not shared (from the input): 1.
    """

    batch_size: int = batch_size_field(128)
    loss: Loss = "ns"
    n_critic: int | None = knob(None, COUNT)
    gp_weight: float = knob(10.0, WEIGHT)
    gp_every: int = knob(1, GP_EVERY)
    lr: float | None = lr_field(None)
    betas: tuple[float, float] | None = betas_field(None)
    weight_decay: float | None = knob(None, lo=0, note="Adam weight decay")
    init: Init | None = None
    z_dim: int = knob(100, COUNT)
    z_dist: Literal["uniform", "normal"] = "uniform"
    arch: Arch = "auto"
    g_width: int = knob(1024, COUNT)
    d_width: int | None = knob(None, COUNT)
    g_first_conv: bool = True
    g_unshared: int | None = knob(None, COUNT)
    d_unshared: int = knob(1, COUNT)
    ema_decay: float = ema_decay_field(0.0)
    ema_rampup: float = ema_rampup_field(0.05)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gp_every != 1 and self.loss != "wgan-gp":
            raise ConfigError(f"gp_every={self.gp_every} applies to loss='wgan-gp' (no penalty otherwise)")

    def resolve(self, info: DataInfo):
        """This Config with its ``"auto"``/None fields set as the thesis sets them for data ``info``:
        the architecture from the image side (digits up to 32 px), the rest from it and the loss."""
        arch = self.arch if self.arch != "auto" else ("digits" if info.size <= 32 else "faces")
        wgan, faces = self.loss == "wgan-gp", arch == "faces"

        def given(value, default):
            return default if value is None else value

        return dataclasses.replace(
            self,
            arch=arch,
            n_critic=given(self.n_critic, 5 if wgan else 1),
            lr=given(self.lr, 1e-4 if faces and wgan else 2e-4),
            betas=tuple(given(self.betas, (0.0, 0.9) if faces and wgan else (0.5, 0.999))),
            weight_decay=given(self.weight_decay, 1e-4 if faces else 5e-4),
            init=given(self.init, "normal" if faces else "xavier"),
            d_width=given(self.d_width, 32 if faces else 20),
            g_unshared=given(self.g_unshared, 2 if faces else 1),
        )


# ---- networks ----------------------------------------------------------------------------------


def _side_plan(size: int) -> int:
    """``k`` with ``size = 4 * 2^k`` (k >= 2)."""
    k = round(math.log2(size / 4)) if size >= 4 else -1
    if k < 2 or 4 * 2**k != size:
        raise ValueError(
            f"the CoGAN/SCoGAN networks need square images of side 4 * 2^k (16, 32, 64, 128, ...), got "
            f"{size}; resize the data (e.g. ?size=32)"
        )
    return k


class _Squeeze(nn.Module):
    def forward(self, x):
        return x.squeeze(1)


def _same_conv(c_in: int, c_out: int, kernel: int, bias: bool = True) -> nn.Module:
    """A stride-1 conv keeping the side ('same'; for an even kernel the extra row/column of zeros
    goes to the bottom/right, as TensorFlow's 'same')."""
    if kernel % 2:
        return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias)
    lo, hi = (kernel - 1) // 2, kernel // 2
    return nn.Sequential(nn.ZeroPad2d((lo, hi, lo, hi)), nn.Conv2d(c_in, c_out, kernel, bias=bias))


def _dense_stage(z_dim: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(z_dim, width * 16, bias=False),
        nn.Unflatten(1, (width, 4, 4)),
        nn.BatchNorm2d(width),
        nn.PReLU(width, 0.25),
    )


def generator_stages(arch: str, z_dim: int, channels: int, size: int, width: int, first_conv: bool = True):
    """The stages (``nn.Module`` s run in order) of one generator of ``arch`` ("digits"/"faces")."""
    k = _side_plan(size)
    stages: list[nn.Module] = [_dense_stage(z_dim, width)]
    c = width
    if arch == "digits":
        if first_conv:
            stages.append(
                nn.Sequential(_same_conv(c, c, 4, bias=False), nn.BatchNorm2d(c), nn.PReLU(c, 0.25))
            )
        kernel, pad, out_pad, out_k = 3, 1, 1, 6
    else:
        kernel, pad, out_pad, out_k = 4, 1, 0, 3
    for _ in range(k):
        if c < 2:
            raise ConfigError(f"g_width={width} is too small for {size} px (it is halved {k} times)")
        stages.append(
            nn.Sequential(
                nn.ConvTranspose2d(c, c // 2, kernel, 2, pad, output_padding=out_pad, bias=False),
                nn.BatchNorm2d(c // 2),
                nn.PReLU(c // 2, 0.25),
            )
        )
        c //= 2
    stages.append(nn.Sequential(_same_conv(c, channels, out_k), nn.Tanh()))
    return stages


_FACE_DROPOUT = (0.0, 0.0, 0.1, 0.3, 0.3, 0.5)


def discriminator_stages(arch: str, channels: int, size: int, width: int, norm: str):
    """The stages of one discriminator of ``arch``; ``norm`` ("batch"/"layer") for the faces net."""
    _side_plan(size)
    if arch == "digits":
        c1, c2, fc = width, max(1, round(2.5 * width)), 25 * width
        s = size // 4
        return [
            nn.Sequential(nn.Conv2d(channels, c1, 5, padding=2), nn.MaxPool2d(2)),
            nn.Sequential(nn.Conv2d(c1, c2, 5, padding=2), nn.MaxPool2d(2)),
            nn.Sequential(nn.Flatten(), nn.Linear(c2 * s * s, fc), nn.PReLU(fc, 0.25), nn.Dropout(0.5)),
            nn.Sequential(nn.Linear(fc, 1), _Squeeze()),
        ]
    n = int(math.log2(size)) - 1  # stride-2 convs down to 2x2
    stages: list[nn.Module] = []
    c, s = channels, size
    for i in range(n):
        out, s = width * 2**i, s // 2
        kern = 5 if i < 3 else 3
        norm_layer = nn.BatchNorm2d(out) if norm == "batch" else nn.LayerNorm([out, s, s])
        layers = [
            nn.Conv2d(c, out, kern, 2, kern // 2, bias=norm != "batch"),
            norm_layer,
            nn.PReLU(out, 0.25),
        ]
        p = _FACE_DROPOUT[i] if i < len(_FACE_DROPOUT) else 0.5
        if p:
            layers.append(nn.Dropout(p))
        stages.append(nn.Sequential(*layers))
        c = out
    fc = 64 * width
    stages.append(
        nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * s * s, fc, bias=norm != "batch"),
            nn.BatchNorm1d(fc) if norm == "batch" else nn.LayerNorm(fc),
            nn.PReLU(fc, 0.25),
            nn.Dropout(0.5),
        )
    )
    stages.append(nn.Sequential(nn.Linear(fc, 1), _Squeeze()))
    return stages


def init_weights(module: nn.Module, init: str) -> None:
    """``"xavier"`` (normal, std sqrt(2/(fan_in+fan_out))) or ``"normal"`` (N(0, 0.02)) on every
    conv/dense kernel, zero biases; norms keep (1, 0) and PReLU its 0.25."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init == "xavier":
                nn.init.xavier_normal_(m.weight)
            else:
                nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Tower(nn.Module):
    """One network of a coupled pair: ``stages`` run in order (some may be the very same module
    objects as the other tower's: that is the weight sharing). ``forward(x, return_features=True)``
    also returns every stage's output, first to last."""

    def __init__(self, stages: list[nn.Module]):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return (x, feats) if return_features else x


def _share(t1: Tower, t2: Tower, idx: range) -> list[int]:
    for i in idx:
        t2.stages[i] = t1.stages[i]
    return list(idx)


class CoupledGenerators(nn.Module):
    """``G1``/``G2`` (``g1``, ``g2``: :class:`Tower` s) sharing their first ``n_shared`` stages
    (an int, or a function of the number of stages).

    ``forward(z)`` returns ``(x1, x2)`` (same ``z``); ``return_features=True`` also returns the two
    stage-output lists ``(f1, f2)`` (``f[0]`` the dense stage, ``f[-1]`` the image). The shared
    prefix runs once."""

    def __init__(self, build, n_shared):
        super().__init__()
        self.g1, self.g2 = Tower(build()), Tower(build())
        n = len(self.g1.stages)
        n_shared = n_shared(n) if callable(n_shared) else n_shared
        if not 0 <= n_shared < n:
            raise ValueError(
                f"generators have {n} stages; the shared prefix must be 0..{n - 1}, got {n_shared}"
            )
        self.n_shared = n_shared
        self.shared = _share(self.g1, self.g2, range(n_shared))

    def forward(self, z: torch.Tensor, return_features: bool = False):
        h = z
        prefix = []
        for i in range(self.n_shared):
            h = self.g1.stages[i](h)
            prefix.append(h)
        outs, feats = [], []
        for tower in (self.g1, self.g2):
            x, f = h, list(prefix)
            for stage in tower.stages[self.n_shared :]:
                x = stage(x)
                f.append(x)
            outs.append(x)
            feats.append(f)
        return (tuple(outs), tuple(feats)) if return_features else tuple(outs)


class CoupledDiscriminators(nn.Module):
    """``D1``/``D2`` (``d1``, ``d2``) sharing their last ``n_shared`` stages (an int, or a function
    of the number of stages); ``forward(x1, x2)``
    returns the scores ``(D1(x1), D2(x2))`` (logits / critic values, ``[B]`` each)."""

    def __init__(self, build, n_shared):
        super().__init__()
        self.d1, self.d2 = Tower(build()), Tower(build())
        n = len(self.d1.stages)
        n_shared = n_shared(n) if callable(n_shared) else n_shared
        if not 0 <= n_shared < n:
            raise ValueError(
                f"discriminators have {n} stages; the shared suffix must be 0..{n - 1}, got {n_shared}"
            )
        self.shared = _share(self.d1, self.d2, range(n - n_shared, n))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor):
        return self.d1(x1), self.d2(x2)


# ---- the model -----------------------------------------------------------------------------------


class CoupledGAN(Model):
    """Two GANs on one ``z`` (the base of :class:`CoGAN` and :class:`pygan.models.scogan.SCoGAN`):
    networks, optimisers, the discriminator step, the generator step's adversarial part, sampling.
    Subclasses decide the sharing (:meth:`_sharing`) and add generator-loss terms
    (:meth:`generator_losses`)."""

    #: the networks that make the outputs (averaged by the generator EMA, written by pygan export)
    generator_networks = ("generators",)

    data_kinds = ("two-domain",)
    default_data = "digits32-edge"

    def __init__(self, config, info: DataInfo):
        super().__init__(config, info)
        c = self.resolved_config
        ch, h, w = info.shape
        if h != w:
            raise ValueError(f"{self.name} needs square images, got {h}x{w}")
        if info.shape_b is not None and tuple(info.shape_b) != tuple(info.shape):
            raise ValueError(
                f"{self.name} needs both domains in one shape, got {info.shape} and {info.shape_b}"
            )
        norm = "layer" if c.loss == "wgan-gp" else "batch"
        g_shared, d_shared = self._sharing(c)

        def gen():
            return generator_stages(c.arch, c.z_dim, ch, h, c.g_width, c.g_first_conv)

        def disc():
            return discriminator_stages(c.arch, ch, h, c.d_width, norm)

        self.generators = CoupledGenerators(gen, g_shared)
        self.discriminators = CoupledDiscriminators(disc, d_shared)
        init_weights(self.generators, c.init)
        init_weights(self.discriminators, c.init)
        self.lazy_gp = LazyPenalty(c.gp_every, c.n_critic, names=("gp1", "gp2"))

    # -- settings
    def _sharing(self, c: dict):
        """``(g_shared(n_stages) -> int, d_shared(n_stages) -> int)``: how many generator stages
        (prefix) and discriminator stages (suffix) are shared."""
        raise NotImplementedError

    @property
    def batches_per_step(self) -> int:
        return self.resolved_config.n_critic

    def configure_optimizers(self):
        return {
            "generators": self._adam(self.generators),
            "discriminators": self._adam(self.discriminators),
        }

    def _adam(self, *modules: nn.Module) -> torch.optim.Adam:
        """Adam with the L2 weight decay ``c sum w^2`` (``weight_decay = 2c``) on conv/dense kernels
        only; parameters shared by two towers appear once."""
        c = self.resolved_config
        decay, rest, seen = [], [], set()
        for mod in modules:
            for m in mod.modules():
                for pname, p in m.named_parameters(recurse=False):
                    if id(p) in seen or not p.requires_grad:
                        continue
                    seen.add(id(p))
                    kernel = pname == "weight" and isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
                    (decay if kernel else rest).append(p)
        groups = [
            {"params": decay, "weight_decay": 2 * c.weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ]
        return torch.optim.Adam([g for g in groups if g["params"]], lr=c.lr, betas=c.betas)

    # -- pieces of the objective
    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.empty(n, self.resolved_config.z_dim, device=self.device)
        if self.resolved_config.z_dist == "uniform":
            return z.uniform_(-1.0, 1.0, generator=generator)
        return z.normal_(generator=generator)

    def d_loss(self, real_score: torch.Tensor, fake_score: torch.Tensor) -> torch.Tensor:
        """The discriminator's adversarial loss (without the penalty)."""
        if self.resolved_config.loss == "wgan-gp":
            return d_loss_wgan(real_score, fake_score)
        return d_loss_bce(real_score, fake_score)

    def g_adv(self, fake_score: torch.Tensor) -> torch.Tensor:
        """The generator's adversarial loss (non-saturating, or ``-mean D(G(z))``)."""
        return g_loss_wgan(fake_score) if self.resolved_config.loss == "wgan-gp" else g_loss_bce(fake_score)

    def _scores(self, x1: torch.Tensor, x2: torch.Tensor):
        return self.wrapped("discriminators", compiled=True)(x1, x2)

    def discriminator_step(self, part: Batch, penalise: bool = True) -> dict[str, torch.Tensor]:
        """One update of both discriminators on one real batch per domain (``part.x``, ``part.x_b``)
        and ``G1(z)``, ``G2(z)`` of one fresh ``z`` (detached). Under WGAN-GP with ``penalise`` the
        penalty is added (times ``gp_every``: lazy regularisation skips it on the other steps) and the
        logs hold each domain's penalty ``gp1``/``gp2`` (``lambda GP_i``); ``loss_d1``/``loss_d2`` are
        the losses as optimised (penalty included, times ``gp_every``)."""
        c = self.resolved_config
        real1, real2 = part.x, part.x_b
        if real2 is None:
            raise ValueError(f"{self.name} needs two-domain batches (batch.x_b); got a batch without x_b")
        G, D = self.wrapped("generators"), self.wrapped("discriminators")
        with torch.no_grad():
            fake1, fake2 = G(self.noise(len(real1)))
            fake1, fake2 = fake1.to(real1.dtype), fake2.to(real2.dtype)
        r1, r2 = self._scores(real1, real2)
        f1, f2 = self._scores(fake1, fake2)
        loss_d1, loss_d2 = self.d_loss(r1, f1), self.d_loss(r2, f2)
        logs = {}
        loss = loss_d1 + loss_d2
        if c.loss == "wgan-gp":
            n = len(real1)
            if penalise:

                def critic(x):  # D1 scores the first half, D2 the second
                    s1, s2 = D(x[:n], x[n:])
                    return torch.cat([s1, s2])

                k = c.gp_every
                gp, norms = gradient_penalty(
                    critic,
                    torch.cat([real1, real2]),
                    torch.cat([fake1, fake2]),
                    weight=2 * c.gp_weight * k,
                    return_norms=True,
                )
                loss = loss + gp  # = k (lambda GP_1 + lambda GP_2)
                with torch.no_grad():
                    per = c.gp_weight * (norms.float() - 1).square()
                    logs["gp1"], logs["gp2"] = per[:n].mean(), per[n:].mean()
                    loss_d1 = loss_d1 + (logs["gp1"] if k == 1 else k * logs["gp1"])
                    loss_d2 = loss_d2 + (logs["gp2"] if k == 1 else k * logs["gp2"])
            logs["wdist1"] = (r1.mean() - f1.mean()).detach()
            logs["wdist2"] = (r2.mean() - f2.mean()).detach()
        self.update("discriminators", loss)
        logs["loss_d1"], logs["loss_d2"] = loss_d1.detach(), loss_d2.detach()
        return logs

    def generator_losses(self, z: torch.Tensor, reals: tuple[torch.Tensor, torch.Tensor] | None = None):
        """``(L_G1, L_G2, logs)`` for one ``z`` with the discriminators frozen by the caller; the
        adversarial terms here, a subclass adds its coupling terms."""
        G = self.wrapped("generators")
        fake1, fake2 = G(z)
        s1, s2 = self._frozen_scores(fake1, fake2)
        adv1, adv2 = self.g_adv(s1), self.g_adv(s2)
        return adv1, adv2, {"adv1": adv1.detach(), "adv2": adv2.detach()}

    def _frozen_scores(self, x1, x2):
        return self.wrapped("discriminators", plain=True, compiled=True)(x1, x2)

    def generator_step(self, reals: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One update of both generators on a fresh ``z``: ``L_G1 + L_G2`` (each depends on its own
        generator only, so each generator's parameters get their own loss's gradient), with the
        discriminators frozen (no gradient reaches them)."""
        z = self.noise(len(reals[0]))
        with frozen(self.discriminators):
            loss_g1, loss_g2, logs = self.generator_losses(z, reals)
        self.update("generators", loss_g1 + loss_g2)
        logs["loss_g1"], logs["loss_g2"] = loss_g1.detach(), loss_g2.detach()
        return logs

    def prepare(self) -> None:
        """Readies frozen auxiliary networks before the first step (none here; see SCoGAN)."""

    def graph_phase(self, iteration: int):
        """Which discriminator steps compute the penalty (lazy regularisation); one phase otherwise."""
        return self.lazy_gp.phase(iteration)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        self.prepare()
        parts = batch.split(self.resolved_config.n_critic)
        due = self.lazy_gp.due(self.iteration)
        sums: dict[str, torch.Tensor] = {}
        gp: dict[str, torch.Tensor] = {}
        for part, penalise in zip(parts, due):
            for k, v in self.discriminator_step(part, penalise).items():
                if k in ("gp1", "gp2"):
                    gp[k] = gp.get(k, 0.0) + v
                else:
                    sums[k] = sums.get(k, 0.0) + v / len(parts)
        if self.resolved_config.loss == "wgan-gp":
            for k in ("gp1", "gp2"):
                sums[k] = self.lazy_gp.log(gp.get(k, 0.0), due, k)
        last = parts[-1]
        sums.update(self.generator_step((last.x, last.x_b)))
        return sums

    def bench_phases(self) -> dict:
        """The iteration's two sub-steps for ``bench/train_step.py --phases``: one discriminator
        step (with the penalty under WGAN-GP) and one generator step (all enabled regularisers)."""
        n = self.resolved_config.n_critic

        def critic(batch: Batch):
            return self.discriminator_step(batch.split(n)[0])

        def generator(batch: Batch):
            self.prepare()
            part = batch.split(n)[-1]
            return self.generator_step((part.x, part.x_b))

        return {"critic": critic, "generator": generator}

    # -- outputs
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, batch: Batch | None = None):
        """``(images_A, images_B)`` from the same ``z``, generators in eval mode."""
        with eval_mode(self.generators):
            x1, x2 = self.generators(self.noise(n, generator))
        return x1.float(), x2.float()

    def weight_difference(self) -> float:
        """Fig. 4.1's measure: ``sum over generator variables of mean((w_G1 - w_G2)^2)`` (shared
        variables contribute 0)."""
        total = 0.0
        with torch.no_grad():
            for p1, p2 in zip(self.generators.g1.parameters(), self.generators.g2.parameters()):
                total += float(mse(p1.float(), p2.float()))
        return total

    @torch.no_grad()
    def evaluate(self, data: Dataset, generator: torch.Generator) -> dict[str, float]:
        """``wdist1``/``wdist2``: each critic's ``mean D(x_test) - mean D(G(z))`` on up to 500 test
        rows per domain (networks in eval mode), and ``weight_diff`` (Fig. 4.1)."""
        real = data.fixed(500)
        with eval_mode(self.discriminators):
            fake1, fake2 = self.sample(len(real), generator)
            r1, r2 = self.discriminators(real.x.to(self.device), real.x_b.to(self.device))
            f1, f2 = self.discriminators(fake1, fake2)
        return {
            "wdist1": float(r1.mean() - f1.mean()),
            "wdist2": float(r2.mean() - f2.mean()),
            "weight_diff": self.weight_difference(),
        }

    def compile_networks(self) -> list[str]:
        """Compiles the generators and the discriminators' first-order passes (scoring real and fake
        batches, the generators' loss); the penalty's pass stays eager (its double backward does not
        go through ``torch.compile``)."""
        self.generators.compile()
        self.compile_first_order("discriminators")
        return ["generators", "discriminators (first-order passes)"]


@register("cogan")
class CoGAN(CoupledGAN):
    """CoGAN: hard weight sharing (generators' first layers, discriminators' last layers); see the
    module docstring."""

    Config = CoGANConfig
    # small: the CoGAN runs of docs/experiments/scogan.md (thesis nets scaled down: g_width 64,
    # d_width 10, batch 32; the "ns" loss is the default)
    PRESETS: ClassVar[dict[str, dict]] = {
        "paper": {},
        "small": {"g_width": 64, "d_width": 10, "batch_size": 32},
    }

    def _sharing(self, c):
        return (lambda n: max(0, n - c.g_unshared)), (lambda n: max(0, n - c.d_unshared))
