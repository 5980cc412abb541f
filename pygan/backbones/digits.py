"""The pygan digits classifier: a small CNN trained on the embedded digits (:func:`pygan.data.load_digits`).

It serves three metrics: the default FID/KID feature extractor for digit data (its 128-d
penultimate layer), the labeller for semantic agreement, and the LPIPS-style fallback backbone.

**Shipped, not trained on first use.** The weights (``pygan/backbones/weights/digits_cnn.pt``, ~0.6 MB)
ship inside the package. A feature extractor for a metric must be *the same network everywhere*:
training on first use would make every machine's FID depend on its own float rounding (oneDNN
kernels and thread counts change the summation order, so weights trained on two CPUs are not
bitwise equal), and would cost every fresh install a training run. The file is regenerated,
deterministically on a given machine, with::

    python -m pygan.backbones.digits --out pygan/backbones/weights/digits_cnn.pt

(seed 0, 30 epochs, Adam 1e-3, batch 64, random ±2 px shifts; ~20-40 s on 2 CPU cores). Its
training settings and test accuracy are stored in the file (``meta``). Classifiers for
*transformed* domains (e.g. edge images, which cannot be undone) are trained on demand by
:func:`train_domain_classifier` and cached under ``$PYGAN_CACHE`` (default ``~/.cache/pygan``),
keyed by a name the caller gives the transform — there is nothing to ship for transforms users
invent.

Input convention: ``[N, 1 or 3, H, W]`` in [-1, 1]; 3 channels are averaged to grey; other sizes are
resized (bilinear, antialiased when shrinking) to 32 x 32.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DEFAULT_WEIGHTS",
    "DigitsClassifier",
    "DigitsFeatures",
    "accuracy",
    "cache_dir",
    "load_digits_classifier",
    "predict_classes",
    "save_classifier",
    "train_digits_classifier",
    "train_domain_classifier",
]

DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "digits_cnn.pt"
_ARCH = "pygan-digits-cnn-v1"
_SIZE = 32


def cache_dir() -> Path:
    """``$PYGAN_CACHE`` or ``~/.cache/pygan``."""
    return Path(os.environ.get("PYGAN_CACHE") or Path.home() / ".cache" / "pygan")


def _to_grey32(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N, 1 or 3, H, W] in [-1, 1], got shape {tuple(x.shape)}")
    if x.shape[1] == 3:
        x = x.mean(1, keepdim=True)
    if tuple(x.shape[-2:]) != (_SIZE, _SIZE):
        shrink = x.shape[-1] > _SIZE or x.shape[-2] > _SIZE
        x = F.interpolate(x, size=(_SIZE, _SIZE), mode="bilinear", align_corners=False, antialias=shrink)
    return x


@torch.no_grad()
def predict_classes(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """``argmax`` of ``model``'s logits over ``x`` in batches, in eval mode (the mode is restored):
    class indices ``[N]`` (int64) on the CPU."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = torch.cat(
        [model(x[i : i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
    )
    model.train(was)
    return out


class DigitsClassifier(nn.Module):
    """conv3x3(16)-ReLU-maxpool, conv3x3(32)-ReLU-maxpool, conv3x3(64)-ReLU-maxpool, FC 1024->128-ReLU
    (the features), FC 128->10 (logits)."""

    feature_dim = 128

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 4 * 4, 128)
        self.fc2 = nn.Linear(128, 10)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The three post-ReLU conv maps (32x32x16, 16x16x32, 8x8x64): the LPIPS-style taps."""
        x = _to_grey32(x)
        h1 = F.relu(self.conv1(x))
        h2 = F.relu(self.conv2(F.max_pool2d(h1, 2)))
        h3 = F.relu(self.conv3(F.max_pool2d(h2, 2)))
        return [h1, h2, h3]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 128-d penultimate activations (the FID/KID features)."""
        h3 = self.feature_maps(x)[-1]
        return F.relu(self.fc1(F.max_pool2d(h3, 2).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.features(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Class indices ``[N]`` (int64)."""
        return predict_classes(self, x, batch_size)


class DigitsFeatures(nn.Module):
    """pygan's digits classifier as a feature network: layers ``conv1``, ``conv2``, ``conv3`` (its
    post-ReLU conv maps, ``channels`` 16, 32, 64). ``forward(x)`` returns the three maps in order (the
    LPIPS-style backbone of :class:`pygan.metrics.PerceptualDistance`); ``taps(x, names)`` the named
    ones (the perceptual loss's interface, :class:`pygan.nn.PerceptualLoss`).

    ``classifier``: the :class:`DigitsClassifier` to read; None: a copy of the shipped one (the cached
    one stays untouched)."""

    layer_names = ("conv1", "conv2", "conv3")
    channels = (16, 32, 64)

    def __init__(self, classifier: nn.Module | None = None):
        super().__init__()
        if classifier is None:
            classifier = copy.deepcopy(load_digits_classifier())  # the cached one stays untouched
        self.net = classifier

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.feature_maps(x)

    def taps(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        unknown = [n for n in names if n not in self.layer_names]
        if unknown:
            raise ValueError(f"unknown digits-classifier layer(s) {unknown}; known: {list(self.layer_names)}")
        maps = dict(zip(self.layer_names, self.net.feature_maps(x)))
        return {n: maps[n] for n in names}


def _shift(x: torch.Tensor, g: torch.Generator, max_shift: int) -> torch.Tensor:
    """Random integer translation by up to ``max_shift`` px per image, background filled with -1."""
    if max_shift == 0:
        return x
    n, c, h, w = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p), value=-1.0)  # [n, c, h + 2p, w + 2p]
    dy = torch.randint(0, 2 * p + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=g)
    rows = (dy[:, None] + torch.arange(h)[None]).view(n, 1, h, 1).expand(n, c, h, w + 2 * p)
    cols = (dx[:, None] + torch.arange(w)[None]).view(n, 1, 1, w).expand(n, c, h, w)
    by_row = padded.gather(2, rows)  # [n, c, h, w + 2p]
    return by_row.gather(3, cols)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` whose predicted class equals ``labels``."""
    pred = model.predict(images) if hasattr(model, "predict") else model(images).argmax(1)
    return float((pred == labels).double().mean())


def train_digits_classifier(
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    max_shift: int = 2,
    seed: int = 0,
    max_images: int | None = None,
    verbose: bool = False,
    model: nn.Module | None = None,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> DigitsClassifier:
    """Trains a :class:`DigitsClassifier` on the embedded digits train split (32 x 32), optionally on
    ``transform(images)`` (a domain transform, e.g. edges or negatives; applied after the random
    shift augmentation, to each batch). Deterministic for a given machine and thread count: seeded
    init (``torch.manual_seed(seed)``) and a seeded ``torch.Generator`` for shuffling and shifts.
    ``max_images`` trains on the first that many training images only (quick checks).

    Other classifiers reuse this loop: ``model`` (an ``nn.Module`` mapping images to logits, e.g.
    SCoGAN's semantic-loss classifier) is trained instead of a new :class:`DigitsClassifier`, and
    ``data`` (``(images, int64 labels)``) replaces the embedded digits."""
    from pygan.data import load_digits

    if data is not None:
        x, y = data
        if (
            not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor))
            or len(x) != len(y)
            or not len(x)
        ):
            raise ValueError("data must be (images, labels): two tensors with the same number of rows (>= 1)")
    else:
        x, y = load_digits(_SIZE, "train")
    if max_images is not None:
        x, y = x[:max_images], y[:max_images]
    torch.manual_seed(seed)
    if model is None:
        model = DigitsClassifier()
    elif not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            xb = _shift(x[idx], g, max_shift)
            if transform is not None:
                xb = transform(xb)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        if verbose:
            print(f"epoch {epoch + 1}/{epochs} loss {total / len(x):.4f} ({time.perf_counter() - t0:.1f}s)")
    model.eval()
    model.train_config = dict(
        arch=_ARCH if type(model) is DigitsClassifier else type(model).__name__,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_shift=max_shift,
        seed=seed,
        optimizer="Adam",
    )
    if max_images is not None:
        model.train_config["max_images"] = max_images
    return model


def save_classifier(model: DigitsClassifier, path: str | os.PathLike, meta: dict | None = None) -> None:
    meta = dict(getattr(model, "train_config", {}), **(meta or {}))
    meta.setdefault("arch", _ARCH)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "meta": meta}, path)


def _load(path: Path) -> DigitsClassifier:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise ValueError(f"{str(path)!r} is not a pygan digits classifier file (no 'state_dict')")
    arch = blob.get("meta", {}).get("arch")
    if arch != _ARCH:
        raise ValueError(f"{str(path)!r} holds architecture {arch!r}, expected {_ARCH!r}")
    model = DigitsClassifier()
    model.load_state_dict(blob["state_dict"])
    model.meta = blob.get("meta", {})
    model.eval()
    model.requires_grad_(False)
    return model


_LOADED: dict[str, DigitsClassifier] = {}


def load_digits_classifier(path: str | os.PathLike | None = None) -> DigitsClassifier:
    """The shipped digits classifier (or one saved with :func:`save_classifier` at ``path``), frozen,
    in eval mode. Cached per path within the process; do not modify the returned module in place."""
    p = Path(path) if path is not None else DEFAULT_WEIGHTS
    key = str(p.resolve())
    if key not in _LOADED:
        if not p.is_file():
            hint = (
                " The shipped file is missing from this installation; regenerate it with "
                "`python -m pygan.backbones.digits --out " + str(DEFAULT_WEIGHTS) + "`."
                if path is None
                else ""
            )
            raise FileNotFoundError(f"digits classifier weights {str(p)!r} not found.{hint}")
        _LOADED[key] = _load(p)
    return _LOADED[key]


def train_domain_classifier(
    transform: Callable[[torch.Tensor], torch.Tensor],
    name: str | None = None,
    *,
    epochs: int = 30,
    seed: int = 0,
    cache: bool = True,
    **kwargs,
) -> DigitsClassifier:
    """A digits classifier trained on ``transform``-ed digits, for a domain whose images cannot be
    mapped back to plain digits (e.g. edges ``dilate(x) - x``). With ``name`` and ``cache=True`` the
    weights are cached under ``$PYGAN_CACHE/classifiers/digits-<name>-<hash of settings>.pt`` and
    reused; without a name nothing is cached (a callable has no stable identity across runs)."""
    if not callable(transform):
        raise TypeError(f"transform must be callable, got {type(transform).__name__}")
    path = None
    if name is not None and cache:
        if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"name must be a short alphanumeric string (- and _ allowed), got {name!r}")
        key = hashlib.sha256(repr((_ARCH, epochs, seed, sorted(kwargs.items()))).encode()).hexdigest()[:12]
        path = cache_dir() / "classifiers" / f"digits-{name}-{key}.pt"
        if path.is_file():
            return load_digits_classifier(path)
    model = train_digits_classifier(transform, epochs=epochs, seed=seed, **kwargs)
    model.requires_grad_(False)
    if path is not None:
        save_classifier(model, path, meta={"domain": name})
        _LOADED[str(path.resolve())] = model
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the pygan digits classifier and save its weights.")
    ap.add_argument("--out", default=str(DEFAULT_WEIGHTS), help="output .pt file (default: the shipped one)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from pygan.data import load_digits

    t0 = time.perf_counter()
    model = train_digits_classifier(epochs=args.epochs, seed=args.seed, verbose=True)
    secs = time.perf_counter() - t0
    xt, yt = load_digits(_SIZE, "test")
    acc = accuracy(model, xt, yt)
    save_classifier(model, args.out, meta={"test_accuracy": acc, "torch": torch.__version__.split("+")[0]})
    print(f"test accuracy {acc:.4f} ({len(yt)} images); trained in {secs:.1f}s; saved {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
