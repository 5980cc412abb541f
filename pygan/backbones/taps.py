"""Tapped conv trunks for LPIPS-style distances, with torchvision's module indices so that a local
torchvision state dict loads (never downloaded): :class:`AlexNetFeatures` and
:class:`VGG16Features`, each returning its five LPIPS taps; :func:`load_state_dict_file` (from
:mod:`pygan.backbones._files`) reads such a local weights file.
"""

from __future__ import annotations

import torch
from torch import nn

from pygan.backbones._files import load_state_dict_file
from pygan.backbones.vgg import vgg_features

__all__ = ["AlexNetFeatures", "VGG16Features", "load_state_dict_file"]


class _TappedTrunk(nn.Module):
    """A ``features`` stack whose outputs at the module indices ``taps`` are returned, in order."""

    features: nn.Sequential
    taps: tuple[int, ...]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class AlexNetFeatures(_TappedTrunk):
    """AlexNet conv trunk with torchvision's module indices (``features.0`` ... ``features.10``), so a
    torchvision ``alexnet`` state dict (``classifier.*`` keys are ignored) loads. Returns the five
    post-ReLU maps that LPIPS taps (relu1..relu5)."""

    channels = (64, 192, 384, 256, 256)

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.taps = (1, 4, 7, 9, 11)


class VGG16Features(_TappedTrunk):
    """VGG-16 conv trunk with torchvision's indices (``features.0`` ... ``features.28``); returns the
    LPIPS taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3."""

    channels = (64, 128, 256, 512, 512)
    _cfg = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)

    def __init__(self):
        super().__init__()
        self.features = vgg_features(self._cfg)
        self.taps = (3, 8, 15, 22, 29)
