"""Real images that installed packages ship: photo patches for image-to-image tasks, and faces.

Sources (read straight from the files inside the installed wheels; nothing is fetched, and none of
scikit-image's ``data`` functions is called, since some of them download through pooch):

* scikit-learn (``pip install pygan[images]``): ``china.jpg``, ``flower.jpg`` (427x640 RGB).
* scikit-image (``pip install pygan[images]``): ``astronaut.png`` (512x512), ``coffee.png``
  (400x600), ``chelsea.png`` (300x451), ``rocket.jpg`` (427x640), ``motorcycle_left.png`` (the colour
  photographs in its data folder; microscopy, astronomy and synthetic images are left out), and
  ``lfw_subset.npy``.

**Photo patches** (``photos<N>``, ``photo-edges<N>``, ``photo-blur<N>``, ``photo-gray<N>``): square
windows of a random side in [96, 192] px (clipped to the region) cut at random positions with a fixed
seed, resized (antialiased) to N px. Train patches come from the left 70% of every photo's width,
test patches from the right 30%, so the splits never share pixels. 2,000 train and 256 test patches,
the same number from each photo. ``?sources=sklearn`` uses only the two scikit-learn photos (no
scikit-image needed); the default ``all`` needs scikit-image. Paired tasks (input -> target photo):

* ``edges``: input = 1-channel edge map of the gray patch: the SCoGAN paper's ``dilate(g) - g`` (3x3), scaled
  by 4 and clipped, drawn as dark lines on white (``1 - 4 (dilate(g) - g)`` on [0, 1]), like the
  pix2pix edges2* sets;
* ``blur``: input = the patch blurred with a Gaussian of sigma ``1.5 * N / 32`` px;
* ``gray``: input = the BT.601 luma of the patch (1 channel), target = the colour patch.

**Faces** (``faces`` at 25 px, ``faces<N>`` resized): scikit-image's ``lfw_subset`` holds 100 face
crops followed by 100 *non-face* patches (its docstring says so; checked by eye); only the 100 faces
are used: the first 80 train, the last 20 test. Gray, 1 channel, no labels.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

from pygan.data import transforms as T
from pygan.data.core import Dataset

__all__ = ["PHOTO_TASKS", "faces", "photo_files", "photo_patches"]

PHOTO_TASKS = ("none", "edges", "blur", "gray")
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
SKIMAGE_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")
_COUNTS = {"train": 2000, "test": 256}
_TRAIN_FRACTION = 0.7
_WINDOW = (96, 192)

IMAGES_HINT = "scikit-image is not installed: pip install 'pygan[images]' (or pip install scikit-image)"


def _require_pillow():
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is a dependency
        raise ImportError("reading images needs Pillow: pip install pillow") from exc
    return Image


def _skimage_data_dir() -> str:
    try:
        import skimage
    except ImportError as exc:
        raise ImportError(IMAGES_HINT) from exc
    return os.path.join(os.path.dirname(skimage.__file__), "data")


def photo_files(sources: str = "all") -> list[str]:
    """Paths of the photographs used for patches (``sources``: ``"all"`` or ``"sklearn"``)."""
    if sources not in ("all", "sklearn"):
        raise ValueError(f"sources must be 'all' or 'sklearn', got {sources!r}")
    try:
        import sklearn.datasets
    except ImportError as exc:
        raise ImportError(
            "scikit-learn (the photographs' source) is not installed: pip install 'pygan[images]' "
            "(or pip install scikit-learn)"
        ) from exc

    sk_dir = os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")
    files = [os.path.join(sk_dir, f) for f in SKLEARN_PHOTOS]
    if sources == "all":
        d = _skimage_data_dir()
        files += [os.path.join(d, f) for f in SKIMAGE_PHOTOS]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise FileNotFoundError(f"expected photographs shipped by installed packages, missing: {missing}")
    return files


@functools.lru_cache(maxsize=16)
def _photo(path: str) -> torch.Tensor:
    Image = _require_pillow()
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.float32)
    return T.from_unit(torch.from_numpy(a / 255.0).permute(2, 0, 1).contiguous())


def _patches(photos: list[torch.Tensor], size: int, split: str, seed: int) -> torch.Tensor:
    n = _COUNTS[split]
    per = [n // len(photos) + (i < n % len(photos)) for i in range(len(photos))]
    g = torch.Generator().manual_seed(seed * 2 + (split == "test"))
    out = []
    for img, k in zip(photos, per):
        _, h, w = img.shape
        cut = int(w * _TRAIN_FRACTION)
        x0, x1 = (0, cut) if split == "train" else (cut, w)
        hi = min(_WINDOW[1], x1 - x0, h)
        lo = min(_WINDOW[0], hi)
        for _ in range(k):
            side = int(torch.randint(lo, hi + 1, (), generator=g))
            top = int(torch.randint(0, h - side + 1, (), generator=g))
            left = x0 + int(torch.randint(0, x1 - x0 - side + 1, (), generator=g))
            crop = img[:, top : top + side, left : left + side].unsqueeze(0)
            out.append(T.resize(crop, size))
    return torch.cat(out)


@functools.lru_cache(maxsize=8)
def _cached_patches(files: tuple[str, ...], size: int, split: str) -> torch.Tensor:
    photos = [_photo(f) for f in files]
    if split == "all":
        return torch.cat([_patches(photos, size, s, 0) for s in ("train", "test")])
    return _patches(photos, size, split, 0)


def photo_patches(size: int, task: str = "none", split: str = "train", sources: str = "all") -> Dataset:
    """Photo patches at ``size`` px; ``task`` ``"none"`` gives an ``images`` dataset, the others a
    ``paired`` one (input ``x``, target = the colour patch). See the module docstring."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    if task not in PHOTO_TASKS:
        raise ValueError(f"task must be one of {list(PHOTO_TASKS)}, got {task!r}")
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    files = photo_files(sources)
    rgb = _cached_patches(tuple(files), size, split).clone()
    meta = {"sources": [os.path.basename(f) for f in files], "task": task}
    name = f"photo-{task}{size}" if task != "none" else f"photos{size}"
    if task == "none":
        return Dataset(name, "images", rgb, meta=meta)
    if task == "edges":
        g = T.to_unit(T.rgb_to_gray(rgb))
        e = (T.dilate(g) - g).mul_(4.0).clamp_(0.0, 1.0)
        x = T.from_unit(1.0 - e)
    elif task == "blur":
        x = T.gaussian_blur(rgb, 1.5 * size / 32).clamp_(-1.0, 1.0)
    else:
        x = T.rgb_to_gray(rgb)
    return Dataset(name, "paired", x.contiguous(), target=rgb, meta=meta)


def faces(size: int = 25, split: str = "train") -> Dataset:
    """The 100 real face crops of scikit-image's ``lfw_subset`` (gray, [-1, 1]) at ``size`` px."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    path = os.path.join(_skimage_data_dir(), "lfw_subset.npy")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: expected scikit-image's lfw_subset.npy (200 x 25 x 25)")
    a = np.load(path)
    if a.shape != (200, 25, 25):
        raise ValueError(f"{path}: expected an array of shape (200, 25, 25), got {a.shape}")
    rows = {"train": slice(0, 80), "test": slice(80, 100), "all": slice(0, 100)}[split]
    x = T.from_unit(torch.from_numpy(a[rows].astype(np.float32))).unsqueeze(1)
    x = T.resize(x, size).contiguous()
    return Dataset(f"faces{size}", "images", x, meta={"source": "skimage lfw_subset (faces only)"})
