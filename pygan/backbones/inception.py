"""The FID Inception-v3 network, written here (torchvision cannot be installed beside this torch build:
see :mod:`pygan.metrics.frechet`), state-dict compatible with the standard FID weights file
``pt_inception-2015-12-05-6726825d.pth`` as pytorch-fid names it (TensorFlow's 2015-12-05 Inception
graph ported to PyTorch; 1008-way ``fc``).

Module names follow torchvision's ``Inception3`` (``Conv2d_1a_3x3.conv.weight``,
``Mixed_5b.branch1x1.bn.running_mean``, ..., ``fc.weight``), which is what that file's keys are. The
FID variant differs from torchvision's Inception in four places, all reproduced here:

* average pools inside the A, C and first E blocks exclude the zero padding
  (``count_include_pad=False``, TensorFlow's behaviour);
* the pool branch of the last E block (``Mixed_7c``) uses *max* pooling;
* the classifier has 1008 outputs;
* BatchNorm eps is 0.001.

Features are the 2048-d global average pool after ``Mixed_7c`` ("pool3"). Inputs: images in
[-1, 1] (pygan's range), 1 or 3 channels (grey is repeated), resized bilinearly
(``align_corners=False``) to 299 x 299 like pytorch-fid (which resizes [0, 1] images and then maps
them to [-1, 1]; both steps are linear, so the order does not matter).

pygan never downloads the weights. :func:`load_fid_inception` loads them from a local path:
``weights_path=``, else the ``PYGAN_INCEPTION_WEIGHTS`` environment variable, else
``$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth`` — where pytorch-fid's own
download puts the file (``torch.hub.get_dir()``: ``~/.cache/torch/hub`` unless ``TORCH_HOME`` or
``XDG_CACHE_HOME`` say otherwise), so a machine that ran pytorch-fid once needs nothing more — and
otherwise fails with a message naming the file and those places (:func:`find_inception_weights`).

Inception Score uses :meth:`FIDInceptionV3.logits_unbiased`: pool3 times the classifier's weights
*without* its bias, which is what Salimans et al.'s original TensorFlow code computes (it reads the
``MatMul`` before the bias add) and torch-fidelity's ``logits_unbiased`` reproduces.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pygan.backbones._files import load_state_dict_file

__all__ = [
    "FID_WEIGHTS_FILE",
    "FIDInceptionV3",
    "find_inception_weights",
    "hub_weights_path",
    "load_fid_inception",
]

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
_ENV = "PYGAN_INCEPTION_WEIGHTS"


class _Conv(nn.Module):
    """Conv (no bias) -> BatchNorm(eps=1e-3) -> ReLU; names ``conv`` / ``bn`` as in torchvision."""

    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg3(x):
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _Conv(cin, 64, 1)
        self.branch5x5_1 = _Conv(cin, 48, 1)
        self.branch5x5_2 = _Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, padding=1)
        self.branch_pool = _Conv(cin, pool_features, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg3(x))
        return torch.cat([b1, b5, b3, bp], 1)


class _BlockB(nn.Module):  # grid reduction 35 -> 17
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = _Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class _BlockC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = _Conv(cin, 192, 1)
        self.branch7x7_1 = _Conv(cin, c7, 1)
        self.branch7x7_2 = _Conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _Conv(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _Conv(cin, c7, 1)
        self.branch7x7dbl_2 = _Conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _Conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _Conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _Conv(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_avg3(x))
        return torch.cat([b1, b7, bd, bp], 1)


class _BlockD(nn.Module):  # grid reduction 17 -> 8
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = _Conv(cin, 192, 1)
        self.branch3x3_2 = _Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _Conv(cin, 192, 1)
        self.branch7x7x3_2 = _Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class _BlockE(nn.Module):
    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = _Conv(cin, 320, 1)
        self.branch3x3_1 = _Conv(cin, 384, 1)
        self.branch3x3_2a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _Conv(cin, 448, 1)
        self.branch3x3dbl_2 = _Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([b1, b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 as used for FID. ``forward(x)`` returns the 2048-d pool3 features; ``logits(x)``
    the 1008-way classifier output. Build it, then load weights with :func:`load_fid_inception` (or
    ``load_state_dict`` on a state dict with the standard key names)."""

    def __init__(self, resize_input: bool = True):
        super().__init__()
        self.resize_input = resize_input
        self.Conv2d_1a_3x3 = _Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, 3)
        self.Mixed_5b = _BlockA(192, 32)
        self.Mixed_5c = _BlockA(256, 64)
        self.Mixed_5d = _BlockA(288, 64)
        self.Mixed_6a = _BlockB(288)
        self.Mixed_6b = _BlockC(768, 128)
        self.Mixed_6c = _BlockC(768, 160)
        self.Mixed_6d = _BlockC(768, 160)
        self.Mixed_6e = _BlockC(768, 192)
        self.Mixed_7a = _BlockD(768)
        self.Mixed_7b = _BlockE(1280, max_pool=False)
        self.Mixed_7c = _BlockE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)
        self.eval()
        self.requires_grad_(False)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"x must be [N, 1 or 3, H, W] images in [-1, 1], got shape {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.resize_input and tuple(x.shape[-2:]) != (299, 299):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        if min(x.shape[-2:]) < 75:
            raise ValueError(f"Inception needs inputs of at least 75 x 75 pixels, got {tuple(x.shape[-2:])}")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward(x))

    def logits_unbiased(self, x: torch.Tensor) -> torch.Tensor:
        """The 1008-way logits without the classifier's bias (the Inception Score's input)."""
        return self.head_unbiased(self.forward(x))

    def head_unbiased(self, features: torch.Tensor) -> torch.Tensor:
        """pool3 features ``[N, 2048]`` -> unbiased logits ``[N, 1008]``."""
        return features @ self.fc.weight.T.to(features.dtype)


def hub_weights_path() -> Path:
    """Where pytorch-fid's download leaves the weights: ``torch.hub.get_dir()/checkpoints/`` +
    :data:`FID_WEIGHTS_FILE` (``$TORCH_HOME/hub/checkpoints/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE


def find_inception_weights(weights_path: str | os.PathLike | None = None) -> Path | None:
    """The weights file to use: ``weights_path``, else ``$PYGAN_INCEPTION_WEIGHTS``, else
    :func:`hub_weights_path` when that file exists; None when there is none. (An explicit path or
    the environment variable is returned even if it does not exist, so that the loader can say so.)"""
    if weights_path is not None:
        return Path(weights_path)
    env = os.environ.get(_ENV)
    if env:
        return Path(env)
    hub = hub_weights_path()
    return hub if hub.is_file() else None


def load_fid_inception(weights_path: str | os.PathLike | None = None) -> FIDInceptionV3:
    """The FID Inception with weights from a local file (``weights_path``, ``$PYGAN_INCEPTION_WEIGHTS``
    or pytorch-fid's copy in the torch hub cache: :func:`find_inception_weights`).

    The file is a state dict with torchvision ``Inception3`` key names — the standard
    ``pt_inception-2015-12-05-6726825d.pth``. Loading is strict, except that BatchNorm
    ``num_batches_tracked`` counters may be absent (they do not affect inference). Raises
    ``FileNotFoundError`` (with instructions) when there is no file; pygan never downloads it."""
    p = find_inception_weights(weights_path)
    if p is None:
        raise FileNotFoundError(
            "the FID Inception-v3 weights are not bundled with pygan and pygan never downloads them. "
            f"Get the file {FID_WEIGHTS_FILE} (~91 MB: TensorFlow's 2015-12-05 Inception ported to "
            "PyTorch, published in the pytorch-fid project's GitHub releases; pytorch-fid's own "
            f"download puts it there) and put it at {hub_weights_path()} (the torch hub cache, "
            "$TORCH_HOME/hub/checkpoints/), or pass its local path: "
            "fid(real, fake, extractor='inception', weights_path='/path/to/" + FID_WEIGHTS_FILE + "') / "
            f"pygan eval RUN --inception-weights PATH, or set {_ENV}=/path/to/{FID_WEIGHTS_FILE}. "
            "Or use extractor='digits' for digit data."
        )
    if not p.is_file():
        raise FileNotFoundError(
            f"Inception weights file {str(p)!r} does not exist (expected {FID_WEIGHTS_FILE}); pass the "
            f"local path with weights_path= or {_ENV}"
        )
    state = load_state_dict_file(p, "Inception", name_type=True)
    model = FIDInceptionV3()
    own = model.state_dict()
    state = {k: v for k, v in state.items()}
    for k in own:
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = own[k]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{str(p)!r} is not an FID Inception state dict ({FID_WEIGHTS_FILE} key names): "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. "
            f"{unexpected[:3]})"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{str(p)!r}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    model.load_state_dict(state)
    model.eval()
    return model
