"""Perceptual loss (Johnson et al. 2016) on a frozen feature network, as SCoGAN uses it (Soft-Coupled
GANs paper, Sec. 4.2.3, Eq. 4.5, Listings 6.17/6.18):

* **content** (feature reconstruction loss, FRL): ``sum over content layers j of
  mean((phi_j(x) - phi_j(y))^2)``, divided by the number of content layers, times ``content_weight``
  (the mean over B*C*H*W is Eq. 4.5's ``1/(H_j W_j C_j)`` plus a batch mean, as the code);
* **style** (style reconstruction loss, SRL): ``sum over style layers j of
  mean((Gram(phi_j(x)) - Gram(phi_j(y)))^2)`` — per sample, ``x[i]`` against ``y[i]``, the mean over
  B*C*C — divided by the number of style layers, times ``style_weight``. The Gram difference is
  :func:`pygan.ops.style_loss` (the fused op). ``gram_normalize="hw"`` divides the Gram by H*W (the
  thesis' code, the default), ``"chw"`` by C*H*W (its equation and prose).

Feature networks (never downloaded):

* ``"vgg19"``: :class:`~pygan.backbones.vgg.VGG19`, the layout of ``torchvision.models.vgg19`` (same
  module indices, so ``VGG19().load_state_dict(torch.load("vgg19-dcbb9e9d.pth"))`` reads
  torchvision's file), from a local weights file. Layers are named as Keras names them
  (``block1_conv1`` ... ``block5_conv4``, the post-ReLU outputs; ``block{b}_pool``). Defaults (the
  thesis' code): content
  ``block5_conv2``, style ``block1_conv1`` ... ``block5_conv1``. Input: ``[-1, 1]`` images (1 or 3
  channels; grey is repeated) mapped to [0, 1] and normalised with ImageNet's mean/std — the
  convention torchvision's weights were trained with. (The thesis feeds Keras' caffe-converted VGG19
  ``[0, 255]`` BGR mean-subtracted pixels, about 58x larger, so its weights ``alpha = 1e-3``,
  ``beta = 1e-11`` meet features ~58x / Grams ~3,400x larger than here; the losses are not on the
  same scale.) No resizing: the conv layers take any side >= 16 (2x2 at block5 for 32 px).
* ``"digits"``: pygan's shipped digits classifier (:mod:`pygan.backbones.digits`), layers
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
from pygan.backbones.digits import DigitsFeatures, load_digits_classifier
from pygan.backbones.vgg import VGG19, VGG19_LAYERS, load_vgg19

__all__ = ["VGG19", "VGG19_LAYERS", "DigitsFeatures", "PerceptualLoss", "load_vgg19"]


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
