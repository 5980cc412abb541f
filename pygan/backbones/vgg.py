"""VGG feature networks with torchvision's module layout, loaded from local weights files (never
downloaded): :class:`VGG19` with named taps (the perceptual loss of :mod:`pygan.nn.perceptual`) and
:func:`vgg_features`, the torchvision-layout ``features`` stack (also the VGG-16 trunk of
:mod:`pygan.backbones.taps`).

:class:`VGG19` takes ``[-1, 1]`` images (1 or 3 channels; grey is repeated), maps them to [0, 1] and
normalises them with ImageNet's mean/std, the convention torchvision's weights were trained with.
Layers are named as Keras names them (``block1_conv1`` ... ``block5_conv4``, the post-ReLU outputs;
``block{b}_pool``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from pygan.backbones._files import load_state_dict_file

__all__ = ["VGG19", "VGG19_LAYERS", "load_vgg19", "vgg_features"]

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
    sd = load_state_dict_file(p, "VGG19")
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
