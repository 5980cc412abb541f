"""SCoGAN — Soft-Coupled GANs (Juul-Nyholm & Alminde, "Improved Learning of Joint Distributions
using Soft-Coupled GANs", Aalborg University 2020).

CoGAN's hard weight sharing is removed: two GANs (the networks of :mod:`pygan.models.cogan`,
with **no** shared layers by default) see the same ``z``, and the generators are coupled softly by
regularisers added to *both* generator losses (Chapter 4)::

    L_G1 = adv(D1(G1(z))) + a_FR FR + a_SL SL + a_CC L_cyc + a_PL FRL(G1, G2) + b_PL SRL(G1(z), x1)
    L_G2 = adv(D2(G2(z))) + a_FR FR + a_SL SL + a_CC L_cyc + a_PL FRL(G2, G1) + b_PL SRL(G2(z), x2)

    FR    = sum_{k<=K} mean (G1^k(z) - G2^k(z))^2          first K=3 layer outputs   (Eq. 4.1, code)
    SL    = mean (d(G1(z)) - d(G2(z)))^2                   frozen classifier's probabilities (Eq. 4.2)
    L_cyc = mean|F(G1(z)) - z| + mean|F(G2(z)) - z|        F a jointly trained encoder      (Eq. 4.3)
    FRL   = mean (phi_j(G1(z)) - phi_j(G2(z)))^2           content, frozen feature net      (Eq. 4.5)
    SRL   = mean (Gram(phi(G_i(z))) - Gram(phi(x_i)))^2    style vs a real batch of domain i

Any combination is chosen with ``regularizers`` (``fr``, ``sl``, ``cc``, ``pl``; the thesis' variants
SCoGAN-FR, -SL, -CC, -PL, -SLFR, -SLCC, -FRCC; ``()`` is its uncoupled baseline). FR is
:func:`pygan.ops.feature_regularizer`, the Gram difference of SRL :func:`pygan.ops.style_loss`
(through :class:`pygan.nn.PerceptualLoss`), the critics' penalty :func:`pygan.ops.gradient_penalty`.

**Which loss updates which network** (§3.8). The thesis differentiates ``L_G1`` w.r.t. G1's variables
only and ``L_G2`` w.r.t. G2's, so in each generator's loss the *other* generator's output is a
constant. :meth:`SCoGAN.generator_losses` writes that literally — every coupling term in ``L_G1``
sees ``G2``'s outputs detached (and vice versa) — and the step descends ``L_G1 + L_G2``, which then
gives each generator exactly its own loss's gradient. The discriminators are frozen in the generator
step and see detached fakes in theirs; the classifier (SL) and the feature network (PL) are frozen
for good (``requires_grad=False``, eval mode); the encoder ``F`` is frozen inside the generator
losses (the CC gradient flows *through* it to the generators) and updated afterwards on the
unweighted ``L_cyc`` of the same images, detached (its own Adam with the generators' settings).

Decisions (the spec's §8 list; the architecture ones are detailed in :mod:`pygan.models.cogan`):

1. Table shapes read as "input side x output channels"; true shapes derived (cogan docstring).
2. Digits generator: Dense -> reshape -> BN -> PReLU (Listing 6.3) *and* Table 3.1's stride-1 4x4
   layer (``g_first_conv=True``; off gives Listing 6.7's stack).
3. Output layers: tanh, no BN (the listings).
4. ``share_fc=False``: strict SCoGAN, nothing shared (the §5 text); True shares the Dense stage
   (Listing 6.7 as printed, the public code).
5. FR compares the first ``fr_layers`` = 3 stage outputs *after* the Dense stage — at 32 px the
   4x4x1024, 8x8x512 and 16x16x256 maps: the high-level layers the text means, never the image
   (Listing 6.7 taken literally would include the image; that would force the two domains' pixels
   together). Set ``fr_layers`` up to the number of stages to include later ones.
6. Discriminators unshared (§5); ``share_discriminators=True`` keeps CoGAN's sharing (Chapter 4).
7. No input BatchNorm in the faces discriminator. 8. LayerNorm over (C, H, W), affine.
9. Semantic classifier: :class:`SemanticClassifier` (Table B.1; B.2 for multi-label): 'same' 3x3
   convs, a 2x2 max-pool of stride 2 (the table's stride 1 contradicts its own shapes), flatten,
   dropout as printed. Trained with pygan (:func:`pygan.backbones.digits.train_digits_classifier`)
   for 10 epochs (§5.1), Adam 1e-3, batch 64, no augmentation, on the labelled training rows of
   **both** domains (``sl_train_on="both"``: the thesis' stated preference and its MNIST2SVHN
   choice; ``"a"`` = domain A only, its MNIST2edge choice); cached under ``$PYGAN_CACHE`` and kept in
   the model's state dict. No SVHN pruning (pygan uses the SVHN files the user gives).
10. Encoder F (CC): pygan's DCGAN encoder (:class:`pygan.models.nets.ConvEncoder`, ``enc_width``,
    output ``z_dim``), Adam with the generators' settings (the public code's choice).
11. VGG19 (ImageNet, a local torchvision file, ``pl_weights``); content ``block5_conv2``, style
    ``block1_conv1`` ... ``block5_conv1`` (the public code); no resizing; torchvision's
    preprocessing. Without weights the shipped digits classifier's maps (never downloaded).
12. ``pl_style_weight`` (beta) = 1e-11 (the MNIST2SVHN and CelebA runs, §5.2/§5.3);
    ``pl_content_weight`` (alpha) = 1e-3.
13. Gram normalised by H*W (the code; ``pl_gram_norm="chw"`` for the equation).
14. SRL pairs fake[i] with real[i]; the real batch is the last critic step's batch of that domain
    (the thesis' code).
15. ``cc_norm="l1"``: mean absolute error (the code and §6.6); ``"mse"`` for the squared form.
16. SL on probabilities (softmax; sigmoid for multi-label), mean over batch x classes, no /2.
17. FR without Eq. 4.1's 1/K (the code; alpha absorbs it).
18. Non-saturating loss in the standard BCE-with-logits form. 19. Every generator loss is
    "adversarial + weighted regularisers", minimised.
20. No weight clipping (pygan offers WGAN-GP and the non-saturating loss; clipping was only for
    plain WGAN). 21. Weight decay applied (``c sum w^2`` on kernels; 5e-4 digits, 1e-4 faces).
22. Digits: Adam 2e-4, betas (0.5, 0.999), batch 128 with either loss (§5.1); faces + WGAN-GP:
    Adam 1e-4, betas (0, 0.9) (§5.3). 23. ``n_critic`` 5 with WGAN-GP, 1 non-saturating.
24. Batch 128 also for faces (not stated). 25. Xavier-normal (digits), N(0, 0.02) (faces), biases 0.
26. ``z ~ U[-1, 1]^100``. 27. One Adam over both generators (one over both discriminators) on the
    sum of the two losses. 28. The same ``z`` for both generators in the discriminator step.
29. Iterations are ``pygan train --steps`` (the thesis: 20,000 MNIST2edge, 25,000 MNIST2SVHN,
    35,000 CelebA); ``fr_weight`` 10 (MNIST2edge; the MNIST2SVHN pairs SLFR/FRCC use 100).
30./31./32. Preprocessing is :mod:`pygan.data`'s (bilinear resize, the domain transform after
    resizing, 3x3 dilation for edges, ``?channels=3`` for the thesis' 3-channel digits; CelebA centre
    crop 0.7; MNIST as the user's files give it).
33. Evaluation: pygan reports semantic agreement of pairs and per-domain FID
    (:func:`pygan.evaluate.evaluate_run`), generators in eval mode; the thesis' LPIPS is not used.
34. The thesis' typos are ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, get_args

import torch
from torch import nn

from pygan.backbones.digits import predict_classes
from pygan.data.core import DataInfo
from pygan.errors import ConfigError
from pygan.models import COUNT, WEIGHT, frozen, knob, register
from pygan.models.cogan import CoGANConfig, CoupledGAN, Loss
from pygan.models.losses import l1, mse
from pygan.models.nets import ConvEncoder, init_dcgan
from pygan.ops import feature_regularizer

__all__ = [
    "REGULARIZERS",
    "SCoGAN",
    "SCoGANConfig",
    "SemanticClassifier",
    "load_semantic_classifier",
    "save_semantic_classifier",
    "train_semantic_classifier",
]

Regularizer = Literal["fr", "sl", "cc", "pl"]
REGULARIZERS = get_args(Regularizer)
_CLF_ARCH = "pygan-scogan-semantic-v1"


@dataclass(frozen=True)
class SCoGANConfig(CoGANConfig):
    """SCoGAN settings: :class:`pygan.models.cogan.CoGANConfig`'s (architecture, optimiser, loss;
    ``g_unshared``/``d_unshared`` unused) plus the soft coupling. Defaults: the thesis' §5 numbers.

    Attributes:
        loss: ``"wgan-gp"`` (every §5 SCoGAN run).
        regularizers: any of ``fr``, ``sl``, ``cc``, ``pl`` (``--set regularizers=sl,fr``);
            ``()`` trains two independent GANs (the thesis' §4.1 baseline). Default: FR, the first
            proposal (§4.1).
        share_fc: share the generators' Dense stage (default False: nothing shared).
        share_discriminators: CoGAN's discriminator sharing (default False).
        fr_weight: alpha_FR = 10 (§4.1/§5.1; 100 in the MNIST2SVHN SLFR/FRCC runs).
        fr_layers: K = 3.
        sl_weight: alpha_SL = 10. sl_classifier: a classifier file (:func:`save_semantic_classifier`,
            or ``python -m pygan.models.scogan classifier``); None = train Table B.1 on the run's
            labelled domains. sl_train_on: ``"both"`` or ``"a"``. sl_epochs: 10.
        cc_weight: alpha_CC = 10. cc_norm: ``"l1"`` (the code) or ``"mse"``. enc_width: F's width.
        pl_content_weight: alpha_PL = 1e-3. pl_style_weight: beta_PL = 1e-11.
        pl_extractor: ``"vgg19"``, ``"digits"`` or ``"auto"`` (VGG19 when ``pl_weights`` is given,
            else the digits classifier). pl_weights: local VGG19 (torchvision) weights file.
        pl_content_layers, pl_style_layers: None = the extractor's defaults.
        pl_gram_norm: ``"hw"`` (the code) or ``"chw"``.
    """

    loss: Loss = "wgan-gp"
    regularizers: tuple[Regularizer, ...] = ("fr",)
    share_fc: bool = False
    share_discriminators: bool = False
    fr_weight: float = knob(10.0, WEIGHT)
    fr_layers: int = knob(3, COUNT)
    sl_weight: float = knob(10.0, WEIGHT)
    sl_classifier: str | None = None
    sl_train_on: Literal["both", "a"] = "both"
    sl_epochs: int = knob(10, COUNT)
    cc_weight: float = knob(10.0, WEIGHT)
    cc_norm: Literal["l1", "mse"] = "l1"
    enc_width: int = knob(64, COUNT)
    pl_content_weight: float = knob(1e-3, WEIGHT)
    pl_style_weight: float = knob(1e-11, WEIGHT)
    pl_extractor: Literal["auto", "vgg19", "digits"] = "auto"
    pl_weights: str | None = None
    pl_content_layers: tuple[str, ...] | None = None
    pl_style_layers: tuple[str, ...] | None = None
    pl_gram_norm: Literal["hw", "chw"] = "hw"

    def __post_init__(self) -> None:
        super().__post_init__()
        regs = tuple(self.regularizers)
        if len(set(regs)) != len(regs):
            raise ConfigError(f"regularizers must be distinct names from {list(REGULARIZERS)}, got {regs!r}")
        if "pl" in regs and self.pl_extractor == "vgg19" and self.pl_weights is None:
            raise ConfigError("pl_extractor='vgg19' needs pl_weights=PATH (a local torchvision vgg19 file)")

    def resolve(self, info: DataInfo):
        """:meth:`CoGANConfig.resolve`, and ``pl_extractor="auto"``: VGG19 when ``pl_weights`` is
        given, else the digits classifier."""
        ext = self.pl_extractor
        if ext == "auto":
            ext = "vgg19" if self.pl_weights is not None else "digits"
        return dataclasses.replace(super().resolve(info), pl_extractor=ext)


# ---- the semantic-loss classifier (Appendix B) -------------------------------------------------


class SemanticClassifier(nn.Module):
    """Appendix B's classifier: conv 3x3 (32) - LeakyReLU(0.3) - conv 3x3 (64) - LeakyReLU(0.3) -
    max-pool 2x2/2 - dropout 0.25 - dense 128 - LeakyReLU(0.3) - dropout 0.5 - dense ``num_outputs``
    (Table B.1: 10 digit classes, softmax; Table B.2: 13 CelebA attributes, ``multi_label`` sigmoid).
    ``forward`` returns logits; :meth:`probabilities` the softmax/sigmoid outputs the semantic loss
    compares."""

    def __init__(self, channels: int, size: int, num_outputs: int = 10, multi_label: bool = False):
        super().__init__()
        if size < 2 or size % 2:
            raise ValueError(f"SemanticClassifier needs an even image side, got {size}")
        self.meta = dict(channels=channels, size=size, num_outputs=num_outputs, multi_label=multi_label)
        self.multi_label = multi_label
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.LeakyReLU(0.3),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.LeakyReLU(0.3),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            nn.Flatten(),
            nn.Linear(64 * (size // 2) ** 2, 128),
            nn.LeakyReLU(0.3),
            nn.Dropout(0.5),
            nn.Linear(128, num_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        logits = self(x)
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, 1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        return predict_classes(self, x, batch_size)


def save_semantic_classifier(
    model: SemanticClassifier, path: str | os.PathLike, meta: dict | None = None
) -> str:
    """Writes ``model`` (weights + architecture + ``meta``) for ``sl_classifier=PATH``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    info = {**getattr(model, "train_config", {}), **(meta or {}), **model.meta, "arch": _CLF_ARCH}
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    torch.save({"state_dict": model.state_dict(), "meta": info}, tmp)
    os.replace(tmp, p)
    return str(p)


def load_semantic_classifier(path: str | os.PathLike) -> SemanticClassifier:
    """A frozen :class:`SemanticClassifier` from a file written by :func:`save_semantic_classifier`."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"semantic classifier {str(p)!r} not found; train one with "
            "`python -m pygan.models.scogan classifier --data ... --out FILE`"
        )
    blob = torch.load(p, map_location="cpu", weights_only=True)
    meta = blob.get("meta", {}) if isinstance(blob, dict) else {}
    if meta.get("arch") != _CLF_ARCH:
        raise ValueError(f"{str(p)!r} is not a SCoGAN semantic classifier file (arch {meta.get('arch')!r})")
    with torch.random.fork_rng(devices=[]):  # building it draws initial weights: leave the RNG alone
        model = SemanticClassifier(meta["channels"], meta["size"], meta["num_outputs"], meta["multi_label"])
    model.load_state_dict(blob["state_dict"])
    model.train_config = dict(meta)  # how it was trained (data, epochs, test accuracies ...)
    return model.eval().requires_grad_(False)


def _labelled_rows(spec: str, spec_b: str | None, split: str, train_on: str):
    """``(x, y, domain)`` of the labelled rows of a two-domain data spec (both domains, or A)."""
    from pygan.data import load_data

    ds = load_data(spec, split, spec_b=spec_b)
    if ds.kind != "two-domain":
        raise ValueError(f"the semantic classifier trains on two-domain data; {spec!r} is {ds.kind}")
    rows = ds.rows(torch.arange(len(ds)))
    if rows.get("y") is None:
        raise ValueError(
            f"the semantic loss needs labelled domains, and {ds.name!r} has no labels; give "
            "sl_classifier=PATH (a classifier saved by pygan.models.scogan.save_semantic_classifier)"
        )
    keep = torch.ones(len(ds), dtype=torch.bool) if train_on == "both" else rows["domain"] == 0
    return rows["x"][keep], rows["y"][keep], rows["domain"][keep], ds.num_classes or int(rows["y"].max()) + 1


def _data_specs(info: DataInfo) -> tuple[str, str | None]:
    """The data spec(s) a run was trained on, recovered from its DataInfo: the embedded digits with
    a SCoGAN-paper domain transform, or two datasets joined with ``--data-b`` (their specs are the domain
    names). Anything else: ValueError asking for ``sl_classifier``."""
    meta = info.meta
    c, size = info.channels, info.size
    if meta.get("source") == "sklearn load_digits" and meta.get("transform") in ("edge", "negative"):
        return f"digits{size}-{meta['transform']}" + ("?channels=3" if c == 3 else ""), None
    domains = meta.get("domains")
    if set(meta) == {"domains"} and isinstance(domains, list) and len(domains) == 2:
        return str(domains[0]), str(domains[1])
    raise ValueError(
        "the semantic loss needs a classifier for these domains: pygan trains one only on labelled "
        "two-domain data it can reload (digits<N>-edge/-negative, or --data A --data-b B with labels); "
        "give sl_classifier=PATH (e.g. a Table B.2 CelebA classifier saved with "
        "pygan.models.scogan.save_semantic_classifier)"
    )


def train_semantic_classifier(
    spec: str,
    spec_b: str | None = None,
    *,
    train_on: str = "both",
    epochs: int = 10,
    seed: int = 0,
    verbose: bool = False,
) -> SemanticClassifier:
    """Trains Table B.1's classifier on the labelled training rows of a two-domain data spec
    (``load_data(spec, spec_b=spec_b)``) with pygan's classifier loop (Adam 1e-3, batch 64, no
    augmentation); records the test accuracy per domain in ``model.train_config``. The global RNG is
    left as it was."""
    if train_on not in ("both", "a"):
        raise ValueError(f"train_on must be 'both' or 'a', got {train_on!r}")
    from pygan.backbones.digits import train_digits_classifier

    x, y, _, k = _labelled_rows(spec, spec_b, "train", train_on)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SemanticClassifier(x.shape[1], x.shape[-1], k)
        model = train_digits_classifier(
            model=model, data=(x, y), epochs=epochs, max_shift=0, seed=seed, verbose=verbose
        )
    model.train_config.update(data=spec, data_b=spec_b, train_on=train_on)
    try:
        xt, yt, dt, _ = _labelled_rows(spec, spec_b, "test", "both")
        pred = model.predict(xt)
        for d in (0, 1):
            model.train_config[f"test_accuracy_{'ab'[d]}"] = float(
                (pred[dt == d] == yt[dt == d]).double().mean()
            )
    except (ValueError, FileNotFoundError):
        pass
    return model.eval().requires_grad_(False)


def _cached_semantic_classifier(info: DataInfo, train_on: str, epochs: int) -> SemanticClassifier:
    """Table B.1 trained on the run's labelled domains, from ``$PYGAN_CACHE`` or trained and cached
    (the global RNG is left alone either way, so a run does not depend on the cache)."""
    from pygan.backbones.digits import cache_dir

    spec, spec_b = _data_specs(info)
    key = hashlib.sha256(repr((_CLF_ARCH, spec, spec_b, train_on, epochs, 0)).encode()).hexdigest()[:12]
    path = cache_dir() / "classifiers" / f"scogan-semantic-{key}.pt"
    if path.is_file():
        try:
            return load_semantic_classifier(path)
        except (ValueError, KeyError, RuntimeError):
            pass  # a stale or foreign file: retrain and overwrite
    model = train_semantic_classifier(spec, spec_b, train_on=train_on, epochs=epochs)
    save_semantic_classifier(model, path)
    return model


# ---- the model ---------------------------------------------------------------------------------


@register("scogan")
class SCoGAN(CoupledGAN):
    """Soft-Coupled GAN; see the module docstring."""

    Config = SCoGANConfig
    # small: docs/experiments/scogan.md's settings (the non-saturating loss instead of WGAN-GP's 5
    # critic steps, g_width 64, d_width 10, batch 32; the CC encoder at width 16)
    PRESETS: ClassVar[dict[str, dict]] = {
        "paper": {},
        "small": {"loss": "ns", "g_width": 64, "d_width": 10, "batch_size": 32, "enc_width": 16},
    }

    def __init__(self, config: SCoGANConfig, info: DataInfo):
        super().__init__(config, info)
        c = self.resolved_config
        regs = tuple(config.regularizers)
        self.regs = regs
        n_stages = len(self.generators.g1.stages)
        k = config.fr_layers
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_stages - 1:
            raise ConfigError(
                f"fr_layers must be an int in 1..{n_stages - 1} (stages after the Dense one), got {k!r}"
            )
        ch, size = info.channels, info.size
        if "sl" in regs:
            if config.sl_classifier is None:
                _data_specs(info)  # fails now, not at the first step, when pygan cannot train one
                self.classifier = SemanticClassifier(ch, size, info.num_classes or 10)
            else:
                self.classifier = load_semantic_classifier(config.sl_classifier)
                m = self.classifier.meta
                if (m["channels"], m["size"]) != (ch, size):
                    raise ConfigError(
                        f"sl_classifier {config.sl_classifier!r} takes {m['channels']}x{m['size']}px images, "
                        f"the data is {ch}x{size}px"
                    )
            self.classifier.eval().requires_grad_(False)
            # whether self.classifier holds trained weights (saved with the model, so a resumed or
            # reloaded run never retrains it)
            self.register_buffer("classifier_ready", torch.tensor(config.sl_classifier is not None))
        if "cc" in regs:
            self.encoder = ConvEncoder(ch, size, config.enc_width, out_dim=c.z_dim)
            self.encoder.apply(init_dcgan)
        if "pl" in regs:
            self.pl_kind = c.pl_extractor
        # the frozen perceptual network lives outside the module tree (not in checkpoints)
        self.__dict__["_pl"] = None

    def _sharing(self, c):
        cfg = self.config

        def g_shared(n):
            return 1 if cfg.share_fc else 0

        def d_shared(n):
            return n - 1 if cfg.share_discriminators else 0

        return g_shared, d_shared

    def train(self, mode: bool = True):
        super().train(mode)
        if hasattr(self, "classifier"):
            self.classifier.eval()  # frozen: dropout off for good
        return self

    def configure_optimizers(self):
        opts = super().configure_optimizers()
        if "cc" in self.regs:
            opts["encoder"] = self._adam(self.encoder)
        return opts

    # -- frozen auxiliary networks
    def prepare(self) -> None:
        """Makes the frozen auxiliary networks ready (called by the first training step): trains or
        loads the semantic classifier (cached), builds the perceptual loss's feature network."""
        if "sl" in self.regs and not bool(self.classifier_ready):
            trained = _cached_semantic_classifier(self.info, self.config.sl_train_on, self.config.sl_epochs)
            self.classifier.load_state_dict(trained.state_dict())
            self.classifier.train_config = dict(getattr(trained, "train_config", {}))
            self.classifier_ready.fill_(True)
        self.perceptual()

    def perceptual(self):
        """The :class:`pygan.nn.PerceptualLoss` of ``pl`` (built on first use, on this device)."""
        if "pl" not in self.regs:
            return None
        pl = self.__dict__["_pl"]
        if pl is None:
            from pygan.nn.perceptual import PerceptualLoss

            c = self.config
            pl = PerceptualLoss(
                self.pl_kind,
                c.pl_content_layers,
                c.pl_style_layers,
                content_weight=c.pl_content_weight,
                style_weight=c.pl_style_weight,
                gram_normalize=c.pl_gram_norm,
                weights=c.pl_weights,
            )
            self.__dict__["_pl"] = pl
        if next(pl.parameters()).device != self.device:
            pl.to(self.device)
        return pl

    # -- the objective
    def generator_losses(self, z: torch.Tensor, reals=None):
        """``(L_G1, L_G2, logs)``: adversarial + the enabled coupling terms, each generator's loss
        with the other generator's outputs detached (constants)."""
        c = self.config
        G = self.wrapped("generators")
        (x1, x2), (f1, f2) = G(z, return_features=True)
        s1, s2 = self._frozen_scores(x1, x2)
        adv1, adv2 = self.g_adv(s1), self.g_adv(s2)
        loss1, loss2 = adv1, adv2
        logs = {"adv1": adv1.detach(), "adv2": adv2.detach()}
        if "fr" in self.regs:  # Eq. 4.1 (Listing 6.10): sum over the first K layers of the MSE
            k = c.fr_layers
            a, b = f1[1 : 1 + k], f2[1 : 1 + k]
            fr1 = feature_regularizer(a, b, detach_b=True)
            fr2 = feature_regularizer(b, a, detach_b=True)
            loss1, loss2 = loss1 + c.fr_weight * fr1, loss2 + c.fr_weight * fr2
            logs["fr"] = fr1.detach()
        if "sl" in self.regs:  # Eq. 4.2 (Listing 6.15): MSE of the frozen classifier's probabilities
            p1, p2 = self.classifier.probabilities(x1), self.classifier.probabilities(x2)
            sl1, sl2 = mse(p1, p2.detach()), mse(p2, p1.detach())
            loss1, loss2 = loss1 + c.sl_weight * sl1, loss2 + c.sl_weight * sl2
            logs["sl"] = sl1.detach()
        if "cc" in self.regs:  # Eq. 4.3 (Listing 6.16): F(G_i(z)) back to z; F frozen here
            with frozen(self.encoder):
                e1, e2 = self._recon(self.encoder(x1), z), self._recon(self.encoder(x2), z)
            cyc1, cyc2 = e1 + e2.detach(), e1.detach() + e2
            loss1, loss2 = loss1 + c.cc_weight * cyc1, loss2 + c.cc_weight * cyc2
            logs["cyc"] = cyc1.detach()
            self._cc_batch = (z, x1.detach(), x2.detach())
        if "pl" in self.regs:  # Eq. 4.5 (Listings 6.17/6.18): content between the pair, style vs reals
            pl = self.perceptual()
            real1, real2 = reals
            c1, st1 = pl.features(x1)
            c2, st2 = pl.features(x2)
            with torch.no_grad():
                rs1, rs2 = pl.features(real1.to(x1.dtype))[1], pl.features(real2.to(x2.dtype))[1]
            con1 = pl.content_loss(c1, [t.detach() for t in c2])
            con2 = pl.content_loss(c2, [t.detach() for t in c1])
            sty1, sty2 = pl.style_loss(st1, rs1), pl.style_loss(st2, rs2)
            loss1, loss2 = loss1 + con1 + sty1, loss2 + con2 + sty2
            logs.update(content=con1.detach(), style1=sty1.detach(), style2=sty2.detach())
        return loss1, loss2, logs

    def _recon(self, z_hat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return l1(z_hat, z) if self.config.cc_norm == "l1" else mse(z_hat, z)

    def generator_step(self, reals):
        logs = super().generator_step(reals)
        if "cc" in self.regs:  # F minimises the unweighted L_cyc of the same pair (its own update)
            z, x1, x2 = self._cc_batch
            del self._cc_batch
            F_ = self.wrapped("encoder")
            loss_enc = self._recon(F_(x1), z) + self._recon(F_(x2), z)
            self.update("encoder", loss_enc)
            logs["loss_enc"] = loss_enc.detach()
        return logs

    def compile_networks(self) -> list[str]:
        names = super().compile_networks()
        if "cc" in self.regs:
            self.encoder.compile()
            names.append("encoder")
        return names


# ---- command line: train a semantic classifier ---------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pygan.models.scogan",
        description="Train SCoGAN's semantic-loss classifier (Table B.1) on labelled two-domain data "
        "and save it for --set sl_classifier=FILE.",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("classifier", help="train and save a semantic classifier")
    t.add_argument("--data", required=True, help="two-domain data spec (or domain A with --data-b)")
    t.add_argument("--data-b", help="domain B's data spec")
    t.add_argument("--out", required=True, help="output file")
    t.add_argument("--train-on", choices=("both", "a"), default="both")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = train_semantic_classifier(
        args.data, args.data_b, train_on=args.train_on, epochs=args.epochs, seed=args.seed, verbose=True
    )
    save_semantic_classifier(model, args.out)
    acc = {k: round(v, 4) for k, v in model.train_config.items() if k.startswith("test_accuracy")}
    print(f"saved {args.out} ({time.perf_counter() - t0:.1f}s); test accuracy {acc}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
