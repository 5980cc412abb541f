"""Perceptual loss (Johnson et al. 2016) on a frozen feature network, as SCoGAN uses it (seed 003
§4.2.3, Eq. 4.5, Listings 6.17/6.18; spec §3.6):

* **content** (feature reconstruction loss, FRL): ``sum over content layers j of
  mean((phi_j(x) - phi_j(y))^2)``, divided by the number of content layers, times ``content_weight``
  (the mean over B*C*H*W is Eq. 4.5's ``1/(H_j W_j C_j)`` plus a batch mean, as the code);
* **style** (style reconstruction loss, SRL): ``sum over style layers j of
  mean((Gram(phi_j(x)) - Gram(phi_j(y)))^2)`` — per sample, ``x[i]`` against ``y[i]``, the mean over
  B*C*C — divided by the number of style layers, times ``style_weight``. The Gram difference is
  :func:`pygan.ops.style_loss` (the fused op). ``gram_normalize="hw"`` divides the Gram by H*W (the
  thesis' code, the default), ``"chw"`` by C*H*W (its equation and prose; spec decision 13).

Feature networks (never downloaded):

* ``"vgg19"``: :class:`VGG19`, the layout of ``torchvision.models.vgg19`` (same module indices, so
  ``VGG19().load_state_dict(torch.load("vgg19-dcbb9e9d.pth"))`` reads torchvision's file), from a
  local weights file. Layers are named as Keras names them (``block1_conv1`` ... ``block5_conv4``,
  the post-ReLU outputs; ``block{b}_pool``). Defaults (decision 11, the thesis' code): content
  ``block5_conv2``, style ``block1_conv1`` ... ``block5_conv1``. Input: ``[-1, 1]`` images (1 or 3
  channels; grey is repeated) mapped to [0, 1] and normalised with ImageNet's mean/std — the
  convention torchvision's weights were trained with. (The thesis feeds Keras' caffe-converted VGG19
  ``[0, 255]`` BGR mean-subtracted pixels, about 58x larger, so its weights ``alpha = 1e-3``,
  ``beta = 1e-11`` meet features ~58x / Grams ~3,400x larger than here; the losses are not on the
  same scale.) No resizing: the conv layers take any side >= 16 (2x2 at block5 for 32 px).
* ``"digits"``: pygan's shipped digits classifier (:mod:`pygan.metrics.classifier`), layers
  ``conv1``/``conv2``/``conv3`` (its post-ReLU maps, 32x32x16, 16x16x32, 8x8x64 after its own resize
  to 32 px grey). Defaults: content ``conv3``, style all three.
* any ``nn.Module`` with ``taps(x, names) -> {name: feature map}`` and ``layer_names``.

The feature network is frozen (``requires_grad=False``, eval mode — :meth:`PerceptualLoss.train`
keeps it there); gradients reach the *inputs* only.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import torch
from torch import nn

from pygan import ops

__all__ = ["VGG19", "VGG19_LAYERS", "DigitsFeatures", "PerceptualLoss", "load_vgg19"]

_VGG19_CFG = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    512,
    "M",
)


def _vgg19_layer_names() -> dict[str, int]:
    """Keras layer name -> index of the module in ``features`` whose output it is."""
    names, idx, block, conv = {}, 0, 1, 0
    for v in _VGG19_CFG:
        if v == "M":
            names[f"block{block}_pool"] = idx
            idx += 1
            block, conv = block + 1, 0
        else:
            conv += 1
            names[f"block{block}_conv{conv}"] = idx + 1  # the ReLU after the conv
            idx += 2
    return names


VGG19_LAYERS: dict[str, int] = _vgg19_layer_names()
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_features(cfg: Sequence[int | str]) -> nn.Sequential:
    """The ``features`` stack of a torchvision-layout VGG: for each entry of ``cfg`` a 3x3 conv
    (padding 1) + ReLU with that many output channels, or a 2x2 max-pool for ``"M"``; 3 input
    channels. Module indices match torchvision's, so its state dicts load."""
    layers: list[nn.Module] = []
    c = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    return nn.Sequential(*layers)


class VGG19(nn.Module):
    """VGG19 with ``torchvision.models.vgg19``'s module layout and state-dict keys
    (``features.<i>.weight``; with ``include_classifier`` also ``classifier.{0,3,6}.*``), for loading a
    local torchvision weights file. :meth:`taps` returns named intermediate outputs of [-1, 1] images
    (see the module docstring for the preprocessing)."""

    layer_names = tuple(VGG19_LAYERS)

    def __init__(self, include_classifier: bool = False, num_classes: int = 1000):
        super().__init__()
        self.features = vgg_features(_VGG19_CFG)
        self.include_classifier = include_classifier
        if include_classifier:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096),
                nn.ReLU(),
                nn.Dropout(),
                nn.Linear(4096, 4096),
                nn.ReLU(),
                nn.Dropout(),
                nn.Linear(4096, num_classes),
            )
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images (1 or 3 channels) -> ImageNet-normalised RGB."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"x must be images [N, 1 or 3, H, W] in [-1, 1], got shape {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return ((x + 1) * 0.5 - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (needs ``include_classifier``)."""
        if not self.include_classifier:
            raise RuntimeError("VGG19(include_classifier=False) has no classifier; use taps(x, names)")
        h = self.avgpool(self.features(self.preprocess(x)))
        return self.classifier(h.flatten(1))

    def taps(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """The outputs of the layers ``names`` (Keras names) for images ``x``; runs the features only
        up to the deepest one."""
        unknown = [n for n in names if n not in VGG19_LAYERS]
        if unknown:
            raise ValueError(f"unknown VGG19 layer(s) {unknown}; known: {list(VGG19_LAYERS)}")
        want = {VGG19_LAYERS[n]: n for n in names}
        out = {}
        h = self.preprocess(x)
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in want:
                out[want[i]] = h
                if len(out) == len(want):
                    break
        return out


def load_vgg19(path: str | os.PathLike, include_classifier: bool = False) -> VGG19:
    """A frozen :class:`VGG19` with the weights of the local file ``path`` (a torchvision
    ``vgg19`` state dict, e.g. ``vgg19-dcbb9e9d.pth``; ``classifier.*`` keys are skipped unless
    ``include_classifier``). Nothing is downloaded."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise FileNotFoundError(
            f"VGG19 weights {p!r} not found. pygan never downloads weights: get torchvision's "
            "vgg19-dcbb9e9d.pth (ImageNet) once and point at the local file."
        )
    sd = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{p!r} does not hold a state dict")
    model = VGG19(include_classifier=include_classifier)
    if not include_classifier:
        sd = {k: v for k, v in sd.items() if k.startswith("features.")}
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"{p!r} is not a torchvision vgg19 state dict: {exc}") from None
    if missing or unexpected:
        raise ValueError(
            f"{p!r} is not a torchvision vgg19 state dict: missing keys {list(missing)[:4]}, "
            f"unexpected keys {list(unexpected)[:4]}"
        )
    model.eval().requires_grad_(False)
    return model


class DigitsFeatures(nn.Module):
    """pygan's digits classifier as a feature network: layers ``conv1``, ``conv2``, ``conv3``."""

    layer_names = ("conv1", "conv2", "conv3")

    def __init__(self, classifier: nn.Module | None = None):
        super().__init__()
        if classifier is None:
            from pygan.metrics.classifier import load_digits_classifier

            classifier = copy.deepcopy(load_digits_classifier())  # the cached one stays untouched
        self.net = classifier

    def taps(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        unknown = [n for n in names if n not in self.layer_names]
        if unknown:
            raise ValueError(f"unknown digits-classifier layer(s) {unknown}; known: {list(self.layer_names)}")
        maps = dict(zip(self.layer_names, self.net.feature_maps(x)))
        return {n: maps[n] for n in names}


_DEFAULT_LAYERS = {
    "vgg19": (
        ("block5_conv2",),
        ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
    ),
    "digits": (("conv3",), ("conv1", "conv2", "conv3")),
}


class PerceptualLoss(nn.Module):
    """Content (FRL) and style (SRL, Gram) losses on a frozen feature network; see the module
    docstring.

    Args:
        extractor: ``"vgg19"`` (needs ``weights``), ``"digits"`` (``weights``: a saved digits
            classifier, default the shipped one) or a module with ``taps(x, names)``/``layer_names``.
        content_layers, style_layers: layer names (defaults per extractor, see above).
        content_weight, style_weight: multiply the two terms (SCoGAN's alpha_PL, beta_PL).
        gram_normalize: ``"hw"`` (the thesis' code) or ``"chw"``.
        weights: local weights file for ``"vgg19"``/``"digits"``.
        backend: for :func:`pygan.ops.style_loss`.

    ``forward(x, content_target, style_target)`` returns ``(content, style)`` with the targets'
    features taken as constants; :meth:`features` + :meth:`content_loss` / :meth:`style_loss` give
    finer control (e.g. computing each image's features once).
    """

    def __init__(
        self,
        extractor: str | nn.Module = "vgg19",
        content_layers: Sequence[str] | None = None,
        style_layers: Sequence[str] | None = None,
        content_weight: float = 1.0,
        style_weight: float = 1.0,
        gram_normalize: str = "hw",
        weights: str | os.PathLike | None = None,
        backend: str | None = None,
    ):
        super().__init__()
        if isinstance(extractor, str):
            if extractor not in _DEFAULT_LAYERS:
                raise ValueError(f"extractor must be 'vgg19', 'digits' or a module, got {extractor!r}")
            default_c, default_s = _DEFAULT_LAYERS[extractor]
            if extractor == "vgg19":
                if weights is None:
                    raise ValueError(
                        "extractor='vgg19' needs weights= a local torchvision vgg19 state dict "
                        "(nothing is downloaded); or use extractor='digits'"
                    )
                net: nn.Module = load_vgg19(weights)
            else:
                clf = None
                if weights is not None:
                    from pygan.metrics.classifier import load_digits_classifier

                    clf = copy.deepcopy(load_digits_classifier(weights))
                net = DigitsFeatures(clf)
            self.kind = extractor
        elif isinstance(extractor, nn.Module) and hasattr(extractor, "taps"):
            net, default_c, default_s, self.kind = extractor, None, None, "custom"
        else:
            raise TypeError(
                f"extractor must be 'vgg19', 'digits' or an nn.Module with taps(x, names), got "
                f"{type(extractor).__name__}"
            )
        for name, layers in (("content_layers", content_layers), ("style_layers", style_layers)):
            if layers is not None and (
                isinstance(layers, str) or not all(isinstance(n, str) for n in layers)
            ):
                raise TypeError(f"{name} must be a sequence of layer names, got {layers!r}")
        content = tuple(content_layers) if content_layers is not None else default_c
        style = tuple(style_layers) if style_layers is not None else default_s
        if content is None or style is None:
            raise ValueError("a custom extractor needs content_layers and style_layers")
        known = getattr(net, "layer_names", None)
        for name, layers in (("content_layers", content), ("style_layers", style)):
            if known is not None and any(n not in known for n in layers):
                raise ValueError(
                    f"{name}: unknown layer(s) {[n for n in layers if n not in known]}; known: {list(known)}"
                )
        if not content and not style:
            raise ValueError("give at least one content or style layer")
        if gram_normalize not in ("hw", "chw"):
            raise ValueError(f"gram_normalize must be 'hw' or 'chw', got {gram_normalize!r}")
        for name, w in (("content_weight", content_weight), ("style_weight", style_weight)):
            if isinstance(w, bool) or not isinstance(w, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(w).__name__}")
        self.net = net
        self.net.eval().requires_grad_(False)
        self.content_layers, self.style_layers = content, style
        self.content_weight, self.style_weight = float(content_weight), float(style_weight)
        self.gram_normalize, self.backend = gram_normalize, backend

    def train(self, mode: bool = True):
        super().train(mode)
        self.net.eval()  # frozen: never dropout/BN-training mode
        return self

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``(content maps, style maps)`` of images ``x`` (one pass of the feature network)."""
        names = list(dict.fromkeys(self.content_layers + self.style_layers))
        taps = self.net.taps(x, names)
        return [taps[n] for n in self.content_layers], [taps[n] for n in self.style_layers]

    def content_loss(self, a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
        """``content_weight * mean over layers of mean((a_j - b_j)^2)``."""
        if not a:
            raise ValueError("no content layers")
        total = sum((x - y).square().mean() for x, y in zip(a, b))
        return total * (self.content_weight / len(a))

    def style_loss(self, a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
        """``style_weight * mean over layers of mean((Gram(a_j) - Gram(b_j))^2)`` (per sample)."""
        if not a:
            raise ValueError("no style layers")
        total = sum(
            ops.style_loss(x, y, self.gram_normalize, "mean", target_is_gram=False, backend=self.backend)
            for x, y in zip(a, b)
        )
        return total * (self.style_weight / len(a))

    def forward(
        self, x: torch.Tensor, content_target: torch.Tensor | None, style_target: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(content, style)`` of ``x`` against the constant targets (either may be None: its term
        is 0)."""
        cx, sx = self.features(x)
        zero = x.new_zeros(())
        content = style = zero
        with torch.no_grad():
            ct = self.features(content_target)[0] if content_target is not None else None
            st = self.features(style_target)[1] if style_target is not None else None
        if ct is not None and self.content_layers:
            content = self.content_loss(cx, ct)
        if st is not None and self.style_layers:
            style = self.style_loss(sx, st)
        return content, style

    def extra_repr(self) -> str:
        return (
            f"kind={self.kind!r}, content={list(self.content_layers)}, style={list(self.style_layers)}, "
            f"content_weight={self.content_weight}, style_weight={self.style_weight}, "
            f"gram_normalize={self.gram_normalize!r}"
        )
