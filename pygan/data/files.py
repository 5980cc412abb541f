"""Loaders for local files a user points at. Nothing is downloaded: get the files yourself.

* :func:`mnist` — MNIST-format idx files (also Fashion-MNIST, EMNIST), gzipped or not: a directory
  holding ``train-images-idx3-ubyte[.gz]``/``train-labels-idx1-ubyte[.gz]`` and ``t10k-...``, or one
  images file (its labels file is looked up beside it: ``images-idx3`` -> ``labels-idx1``).
* :func:`svhn` — SVHN cropped digits ``.mat`` (``X`` ``[32, 32, 3, N]`` uint8, ``y`` ``[N, 1]`` with
  10 meaning digit 0): a file, or a directory holding ``train_32x32.mat`` / ``test_32x32.mat``.
* :func:`image_folder` — a folder of images, either class subfolders (labels = sorted folder names)
  or flat (no labels); ``train/`` and ``test/`` subfolders, when present, are the splits.
* :func:`celeba` — CelebA: a folder with ``list_attr_celeba.txt`` (or ``.csv``) and the images (in
  ``img_align_celeba/`` or beside it); ``list_eval_partition.txt`` (0/1/2 = train/valid/test), when
  present, gives the splits. With ``attr=NAME`` it becomes a two-domain set split on that attribute
  (domain A = without, domain B = with; SCoGAN paper, Sec. 5).
* :func:`pix2pix` — pix2pix-style pairs: each image holds A and B side by side (width = 2 x height);
  ``direction="AtoB"`` makes A the input ``x`` and B the ``target``.

Pixels are scaled ``(v - 127.5) / 127.5`` to [-1, 1] (SCoGAN paper, Listing 6.2). Image files are decoded
lazily, batch by batch (Pillow; :class:`ImageFiles`): non-square images are centre-cropped to a square
of side ``crop * min(H, W)`` (``crop`` = 1 by default; 0.7 for CelebA, pygan's square version of the
``central_crop(0.7)`` in the SCoGAN code) and resized (bilinear, antialiased) to ``size``. Decoding
can run in loader worker processes (``Loader(..., workers=N)``, ``pygan train --workers N``); each
image is decoded once and kept (uint8) in memory for later epochs (``cache=False`` to not keep them);
``draft=True`` lets the JPEG decoder shrink large images while decoding (faster, not bit-identical).

Errors: a missing path raises ``FileNotFoundError``, a malformed file :class:`DataError` (a
``ValueError``); both name the path and what was expected.
"""

from __future__ import annotations

import glob
import gzip
import math
import os
import warnings

import numpy as np
import torch

from pygan.data import transforms as T
from pygan.data.core import DataError, Dataset, LazyRows

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFiles",
    "celeba",
    "image_folder",
    "mnist",
    "pix2pix",
    "read_idx",
    "svhn",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _exists(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory (expected {what})")
    return path


def _check_split(split: str, allowed=("train", "test", "all")) -> None:
    if split not in allowed:
        raise ValueError(f"split must be one of {list(allowed)}, got {split!r}")


def _scale(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32)).sub_(127.5).div_(127.5)


def _finish(x: torch.Tensor, size: int | None, channels: int | None) -> torch.Tensor:
    if channels is not None:
        x = T.set_channels(x, channels)
    if size is not None:
        x = T.resize(x, size)
    return x.contiguous()


# ---- MNIST idx ---------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str, ndim: int | None = None) -> np.ndarray:
    """Reads an idx file (the MNIST format: 2 zero bytes, a type byte, a rank byte, big-endian uint32
    dimensions, then the data), gzipped or not."""
    _exists(path, "an idx file (MNIST format)")
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(
                f"{path}: a truncated or corrupt gzip file ({exc}); expected a gzipped idx file"
            ) from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an idx file (expected the MNIST idx header 00 00 <type> <rank>)")
    rank = raw[3]
    if ndim is not None and rank != ndim:
        raise DataError(f"{path}: an idx file of rank {rank}, expected rank {ndim}")
    head = 4 + 4 * rank
    if len(raw) < head:
        raise DataError(f"{path}: idx header truncated (expected {rank} dimensions)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=rank, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    need = head + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != need:
        raise DataError(f"{path}: idx file of {len(raw)} bytes, expected {need} for dimensions {dims}")
    return np.frombuffer(raw, dtype, offset=head).reshape(dims)


def _find(directory: str, patterns: list[str]) -> str | None:
    for p in patterns:
        hits = sorted(glob.glob(os.path.join(directory, p)))
        if hits:
            return hits[0]
    return None


def mnist(
    path: str, split: str = "train", *, size: int | None = None, channels: int | None = None
) -> Dataset:
    """MNIST-format idx files at ``path``: ``images`` ``[N, C, size, size]`` with labels."""
    _exists(path, "an MNIST directory or idx images file")
    _check_split(split)
    if os.path.isdir(path):
        if split == "all":
            a = mnist(path, "train", size=size, channels=channels)
            b = mnist(path, "test", size=size, channels=channels)
            return Dataset(a.name, "images", torch.cat([a.x, b.x]), torch.cat([a.y, b.y]), num_classes=10)
        stem = "train" if split == "train" else "t10k"
        images = _find(path, [f"{stem}-images-idx3-ubyte*", f"{stem}-images.idx3-ubyte*"])
        labels = _find(path, [f"{stem}-labels-idx1-ubyte*", f"{stem}-labels.idx1-ubyte*"])
        if images is None:
            raise FileNotFoundError(
                f"{path}: expected {stem}-images-idx3-ubyte[.gz] (MNIST idx format) in this directory"
            )
    else:
        images = path
        cand = path.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
        labels = cand if cand != path and os.path.isfile(cand) else None
    a = read_idx(images, ndim=3)
    if a.dtype != np.uint8:
        raise DataError(f"{images}: expected uint8 images, got {a.dtype}")
    x = _finish(_scale(a).unsqueeze(1), size, channels)
    y = None
    if labels is not None:
        lab = read_idx(labels, ndim=1)
        if len(lab) != len(a):
            raise DataError(f"{labels}: {len(lab)} labels for {len(a)} images in {images}")
        y = torch.from_numpy(lab.astype(np.int64))
    return Dataset(f"mnist:{path}", "images", x, y, num_classes=10 if y is not None else None)


# ---- SVHN .mat ---------------------------------------------------------------------------------


def svhn(path: str, split: str = "train", *, size: int | None = None, channels: int | None = None) -> Dataset:
    """SVHN cropped digits (``.mat``, ``X`` ``[32, 32, 3, N]``): images with labels 0..9."""
    _exists(path, "an SVHN .mat file or a directory holding train_32x32.mat / test_32x32.mat")
    _check_split(split, ("train", "test", "extra", "all"))
    if os.path.isdir(path):
        if split == "all":
            a, b = (
                svhn(path, "train", size=size, channels=channels),
                svhn(path, "test", size=size, channels=channels),
            )
            return Dataset(a.name, "images", torch.cat([a.x, b.x]), torch.cat([a.y, b.y]), num_classes=10)
        f = os.path.join(path, f"{split}_32x32.mat")
        _exists(f, f"SVHN's {split}_32x32.mat")
        path = f
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise ImportError("reading SVHN .mat files needs scipy: pip install 'pygan[svhn]'") from exc
    try:
        m = loadmat(path)
    except Exception as exc:  # scipy raises several types for non-MAT input
        raise DataError(
            f"{path}: not a readable MATLAB .mat file ({exc}); expected SVHN's *_32x32.mat"
        ) from exc
    if "X" not in m or "y" not in m:
        raise DataError(
            f"{path}: expected variables 'X' and 'y' (SVHN format), "
            f"found {sorted(k for k in m if not k.startswith('__'))}"
        )
    X, y = m["X"], np.asarray(m["y"]).reshape(-1)
    if X.ndim != 4 or X.shape[2] != 3 or X.shape[3] != len(y):
        raise DataError(f"{path}: expected X of shape [H, W, 3, N] with N = len(y) = {len(y)}, got {X.shape}")
    x = _finish(_scale(np.ascontiguousarray(X.transpose(3, 2, 0, 1))), size, channels)
    labels = torch.from_numpy(y.astype(np.int64) % 10)
    return Dataset(f"svhn:{path}", "images", x, labels, num_classes=10)


# ---- image files -------------------------------------------------------------------------------


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _decode(path: str, mode: str, size: int, crop: float, halves: bool = False, draft: bool = False):
    """Decoded image(s) as uint8 arrays: one ``[size, size(, 3)]`` array, or (A, B) halves.

    ``draft``: let the JPEG decoder scale down by 1/2, 1/4 or 1/8 while decoding (Pillow's draft
    mode), as far as the crop stays at least ``size`` px; then the same crop and resize. Faster on
    large JPEGs, and a few grey levels different from the full decode (other formats: no change).
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            if draft:
                w, h = im.size
                side = crop * min(w // 2 if halves else w, h)
                if side > 2 * size:
                    im.draft(im.mode, (math.ceil(w * size / side), math.ceil(h * size / side)))
            im = im.convert(mode)
            w, h = im.size
            parts = [im.crop((0, 0, w // 2, h)), im.crop((w // 2, 0, 2 * (w // 2), h))] if halves else [im]
            out = []
            for p in parts:
                pw, ph = p.size
                side = max(1, round(crop * min(pw, ph)))
                left, top = (pw - side) // 2, (ph - side) // 2
                p = p.crop((left, top, left + side, top + side))
                if side != size:
                    p = p.resize((size, size), Image.Resampling.BILINEAR)
                out.append(np.asarray(p, dtype=np.uint8))
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, zlib.error ... on bad files
        raise DataError(f"{path}: cannot decode as an image ({type(exc).__name__}: {exc})") from exc
    return out if halves else out[0]


def _probe(path: str, what: str):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size, im.mode
    except Exception as exc:
        raise DataError(f"{path}: cannot decode as an image ({exc}); expected {what}") from exc


def _mode(channels: int | None, pil_mode: str) -> tuple[str, int]:
    if channels is None:
        channels = 1 if pil_mode in ("1", "L", "I", "I;16", "F", "LA") else 3
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    return ("L" if channels == 1 else "RGB"), channels


def _split_dir(path: str, split: str) -> list[str]:
    """The directories making up ``split``: ``path/<split>`` when path has train/test subfolders."""
    has = {s: os.path.isdir(os.path.join(path, s)) for s in ("train", "test", "val")}
    if has["train"] and (has["test"] or has["val"]):
        if split == "all":
            return [os.path.join(path, s) for s in ("train", "val", "test") if has[s]]
        sub = os.path.join(path, split)
        if not os.path.isdir(sub):
            raise FileNotFoundError(f"{sub}: no such directory (expected the {split} split of {path})")
        return [sub]
    return [path]


def _mem_available() -> int | None:
    """Bytes of memory the kernel says are available (``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover
        return None


# The decode cache may take at most this fraction of the available memory (split among the processes
# of one machine under torchrun); a larger one is not made (with a warning) and every epoch decodes.
CACHE_MEMORY_FRACTION = 0.5


class ImageFiles(LazyRows):
    """The rows of an image-file dataset (folder, CelebA, pix2pix), decoded on demand.

    Each row is one file: decoded (Pillow), converted to ``mode``, centre-cropped to ``crop`` of its
    short side, resized to ``size`` and kept as uint8 (``halves``: the left and right halves, A and
    B, each so). ``work`` (run in loader workers when there are any) decodes; ``finish`` (in the
    training process) scales to float32 in [-1, 1] and adds the labels.

    With ``cache`` (the default) the uint8 images are kept in this process's memory the first time
    they are decoded (``N * views * C * size^2`` bytes, e.g. 12 KiB per 64 px colour image), so
    later epochs decode nothing; :meth:`plan` sends only the rows not cached yet to the workers. The
    cache is never written by a worker (so no ordering between processes is needed) and its content
    is exactly what decoding gives, so batches are the same with or without it. When it would take
    more than :data:`CACHE_MEMORY_FRACTION` of the available memory it is not made (a warning says
    so).
    """

    def __init__(
        self,
        paths: list[str],
        labels: torch.Tensor | None,
        mode: str,
        size: int,
        crop: float,
        *,
        halves: bool = False,
        direction: str = "AtoB",
        draft: bool = False,
        cache: bool = True,
        name: str = "",
    ):
        self.paths, self.labels, self.mode, self.size, self.crop = list(paths), labels, mode, size, crop
        self.halves, self.direction, self.draft = halves, direction, bool(draft)
        channels = 1 if mode == "L" else 3
        self.row_shape = (2 if halves else 1, channels, size, size)
        self.cache = bool(cache)
        if self.cache:
            need = len(self.paths) * int(np.prod(self.row_shape))
            avail = _mem_available()
            try:
                local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
            except ValueError:
                local = 1
            if avail is not None and need > CACHE_MEMORY_FRACTION * avail / local:
                warnings.warn(
                    f"{name or paths[0]}: a decode cache of {need / 2**30:.1f} GiB would take more than "
                    f"{CACHE_MEMORY_FRACTION:.0%} of the {avail / 2**30:.1f} GiB available"
                    f"{f' to {local} processes' if local > 1 else ''}; every epoch decodes the files "
                    "again (a smaller ?size= fits; ?cache=0 silences this)",
                    stacklevel=3,
                )
                self.cache = False
        self._cache: np.ndarray | None = None  # [N, views, C, size, size] uint8, allocated on first use
        self._have: np.ndarray | None = None  # [N] bool: rows in the cache
        self._n_have = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"] = state["_have"] = None  # workers decode; only this process keeps the cache
        state["_n_have"] = 0
        return state

    @property
    def cached(self) -> int:
        """How many rows the cache holds."""
        return self._n_have

    @property
    def complete(self) -> bool:
        """Every row is in the cache: nothing is left to decode."""
        return self._n_have == len(self.paths)

    def plan(self, rows: torch.Tensor) -> dict:
        rows = np.asarray(torch.as_tensor(rows).cpu(), dtype=np.int64)
        todo = rows if self._have is None else rows[~self._have[rows]]
        return {"rows": rows, "decode": np.unique(todo)}

    def work(self, job: dict) -> torch.Tensor | None:
        """uint8 ``[len(job["decode"]), views, C, size, size]``: the rows to decode, decoded."""
        todo = job["decode"]
        if len(todo) == 0:
            return None
        out = np.empty((len(todo), *self.row_shape), dtype=np.uint8)
        for k, i in enumerate(todo.tolist()):
            parts = _decode(self.paths[i], self.mode, self.size, self.crop, self.halves, self.draft)
            for v, a in enumerate(parts if self.halves else [parts]):
                out[k, v] = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        return torch.from_numpy(out)

    def finish(self, job: dict, decoded: torch.Tensor | None, device: torch.device | None = None) -> dict:
        """The rows' fields; with a ``device``, the images are copied there as uint8 (a quarter of
        the bytes) and scaled there by a 256-entry table of the same float32 values (so the batch
        is bit-identical to one scaled on the CPU)."""
        rows, todo = job["rows"], job["decode"]
        if self.cache:
            if self._cache is None:
                self._cache = np.empty((len(self.paths), *self.row_shape), dtype=np.uint8)
                self._have = np.zeros(len(self.paths), dtype=bool)
            if decoded is not None:
                self._cache[todo] = decoded.numpy()
                self._n_have += int(np.count_nonzero(~self._have[todo]))
                self._have[todo] = True
            src, pos = self._cache, rows
        else:
            src, pos = decoded.numpy(), np.searchsorted(todo, rows)
        views = range(self.row_shape[0])
        if device is None:
            u8 = torch.from_numpy(src[pos])  # NumPy gathers and scales: one thread
            views = [_scale_u8(u8[:, v]) for v in views]
        else:
            device = torch.device(device)
            pin = device.type == "cuda"  # page-locked, so that the copy below is asynchronous
            u8 = torch.empty((len(rows), *self.row_shape), dtype=torch.uint8, pin_memory=pin)
            np.take(src, pos, axis=0, out=u8.numpy())
            f = _lut(device)[u8.to(device, non_blocking=True).long()]
            views = [f[:, v] if len(views) == 1 else f[:, v].contiguous() for v in views]
        out = {"x": views[0]}
        if self.halves:
            out["x"], out["target"] = views if self.direction == "AtoB" else views[::-1]
        if self.labels is not None:
            out["y"] = self.labels[torch.from_numpy(rows)]
        return out


def _scale_u8(u8: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 ``(v - 127.5) / 127.5`` (the same float32 arithmetic as :func:`_scale`:
    exact subtraction, correctly rounded division). NumPy, not torch: one thread, so a busy machine
    cannot stall it in OpenMP barriers (two torch threads took 30x longer than one on the shared
    2-core machine)."""
    out = torch.empty(u8.shape, dtype=torch.float32)
    o = out.numpy()
    np.subtract(u8.numpy(), np.float32(127.5), out=o, dtype=np.float32)
    np.divide(o, np.float32(127.5), out=o)
    return out


_LUTS: dict[torch.device, torch.Tensor] = {}


def _lut(device: torch.device) -> torch.Tensor:
    """The 256 values of :func:`_scale_u8` on ``device``: ``_lut(d)[u8.long()]`` scales there."""
    if device not in _LUTS:
        _LUTS[device] = _scale_u8(torch.arange(256, dtype=torch.uint8)).to(device)
    return _LUTS[device]


def _lazy_images(
    name,
    kind,
    paths,
    labels,
    size,
    channels,
    crop,
    *,
    halves=False,
    direction="AtoB",
    draft=False,
    cache=True,
    **kw,
):
    mode, channels = _mode(channels, _probe(paths[0], "an image")[1])
    for k, v in (("draft", draft), ("cache", cache)):
        if v not in (True, False, 0, 1):
            raise ValueError(f"{k} must be 0 or 1 (a bool), got {v!r}")
    rows = ImageFiles(
        paths,
        labels,
        mode,
        size,
        crop,
        halves=halves,
        direction=direction,
        draft=draft,
        cache=cache,
        name=name,
    )
    shape = (channels, size, size)
    return Dataset(
        name, kind, length=len(paths), fetch=rows, shape=shape, target_shape=shape if halves else None, **kw
    )


def image_folder(
    path: str,
    split: str = "train",
    *,
    size: int = 64,
    channels: int | None = None,
    crop: float = 1.0,
    draft: bool = False,
    cache: bool = True,
) -> Dataset:
    """A folder of images (class subfolders -> labels, or flat); decoded lazily (see
    :class:`ImageFiles` for ``draft`` and ``cache``)."""
    _exists(path, "a directory of images")
    if not os.path.isdir(path):
        raise DataError(f"{path}: expected a directory of images, got a file")
    _check_split(split)
    paths, labels, classes = [], [], []
    for d in _split_dir(path, split):
        subs = sorted(e for e in os.listdir(d) if os.path.isdir(os.path.join(d, e)))
        subs = [s for s in subs if any(_is_image(f) for f in os.listdir(os.path.join(d, s)))]
        if subs:
            for s in subs:
                if s not in classes:
                    classes.append(s)
                files = sorted(f for f in os.listdir(os.path.join(d, s)) if _is_image(f))
                paths += [os.path.join(d, s, f) for f in files]
                labels += [classes.index(s)] * len(files)
        else:
            paths += [os.path.join(d, f) for f in sorted(os.listdir(d)) if _is_image(f)]
    if not paths:
        raise DataError(f"{path}: no images found (expected files ending in {', '.join(IMAGE_EXTENSIONS)})")
    y = torch.tensor(labels, dtype=torch.int64) if classes else None
    meta = {"classes": classes} if classes else {}
    return _lazy_images(
        f"folder:{path}",
        "images",
        paths,
        y,
        size,
        channels,
        crop,
        draft=draft,
        cache=cache,
        num_classes=len(classes) or None,
        meta=meta,
    )


def pix2pix(
    path: str,
    split: str = "train",
    *,
    size: int = 64,
    channels: int | None = None,
    direction: str = "AtoB",
    draft: bool = False,
    cache: bool = True,
) -> Dataset:
    """pix2pix-style A|B pairs (each file: A on the left half, B on the right)."""
    _exists(path, "a directory of pix2pix A|B images")
    if direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
    _check_split(split, ("train", "test", "val", "all"))
    if not os.path.isdir(path):
        raise DataError(f"{path}: expected a directory of pix2pix A|B images, got a file")
    paths = []
    for d in _split_dir(path, split):
        paths += [os.path.join(d, f) for f in sorted(os.listdir(d)) if _is_image(f)]
    if not paths:
        raise DataError(
            f"{path}: no images found (expected A|B pairs ending in {', '.join(IMAGE_EXTENSIONS)})"
        )
    (w, h), _ = _probe(paths[0], "an A|B pair image")
    if w != 2 * h:
        raise DataError(f"{paths[0]}: a {w}x{h} image; expected A and B side by side (width = 2 x height)")
    return _lazy_images(
        f"pix2pix:{path}",
        "paired",
        paths,
        None,
        size,
        channels,
        1.0,
        halves=True,
        direction=direction,
        draft=draft,
        cache=cache,
        meta={"direction": direction},
    )


def _read_attrs(path: str) -> tuple[list[str], list[str], np.ndarray]:
    """(filenames, attribute names, values in {0, 1}) from list_attr_celeba.txt or .csv."""
    with open(path) as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    try:
        if path.endswith(".csv"):
            names = lines[0].split(",")[1:]
            rows = [ln.split(",") for ln in lines[1:]]
        else:
            start = 1 if lines[0].isdigit() else 0
            names = lines[start].split()
            rows = [ln.split() for ln in lines[start + 1 :]]
        files = [r[0] for r in rows]
        vals = np.array([[int(v) for v in r[1:]] for r in rows], dtype=np.int64)
    except (ValueError, IndexError) as exc:
        raise DataError(
            f"{path}: malformed attribute file ({exc}); expected CelebA's list_attr_celeba format "
            "(a count line, a line of attribute names, then 'filename v1 ... vK' with values 1/-1)"
        ) from exc
    if vals.ndim != 2 or vals.shape[1] != len(names):
        raise DataError(
            f"{path}: rows have {vals.shape[-1] if vals.ndim == 2 else '?'} values "
            f"for {len(names)} attributes"
        )
    if not np.isin(vals, (-1, 0, 1)).all():
        raise DataError(f"{path}: attribute values must be 1 or -1 (or 0)")
    return files, names, (vals > 0).astype(np.int64)


def celeba(
    path: str,
    split: str = "train",
    *,
    size: int = 64,
    channels: int | None = None,
    attr: str | None = None,
    crop: float = 0.7,
    draft: bool = False,
    cache: bool = True,
) -> Dataset:
    """CelebA at ``path``; ``attr`` splits it into two domains (A = without, B = with)."""
    _exists(path, "a CelebA directory with list_attr_celeba.txt and the images")
    _check_split(split, ("train", "valid", "test", "all"))
    attr_file = next(
        (
            os.path.join(path, f)
            for f in ("list_attr_celeba.txt", "list_attr_celeba.csv")
            if os.path.isfile(os.path.join(path, f))
        ),
        None,
    )
    if attr_file is None:
        raise FileNotFoundError(f"{path}: expected list_attr_celeba.txt (or .csv) in this directory")
    files, names, vals = _read_attrs(attr_file)
    if attr is not None and attr not in names:
        raise ValueError(f"attr must be one of CelebA's attributes {names}, got {attr!r}")
    img_dir = next(
        (
            d
            for d in (
                os.path.join(path, "img_align_celeba", "img_align_celeba"),
                os.path.join(path, "img_align_celeba"),
                path,
            )
            if os.path.isdir(d) and os.path.isfile(os.path.join(d, files[0]))
        ),
        None,
    )
    if img_dir is None:
        raise FileNotFoundError(
            f"{path}: image {files[0]} (first row of {attr_file}) not found in img_align_celeba/ or {path}"
        )
    keep = np.ones(len(files), dtype=bool)
    part_file = os.path.join(path, "list_eval_partition.txt")
    if split != "all":
        if os.path.isfile(part_file):
            with open(part_file) as f:
                part = dict(ln.split()[:2] for ln in f if ln.strip())
            code = {"train": "0", "valid": "1", "test": "2"}[split]
            keep = np.array([part.get(fn) == code for fn in files])
        else:
            warnings.warn(f"{part_file} not found: every split of {path} is the whole set", stacklevel=2)
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        raise DataError(f"{path}: the {split} split is empty")
    paths = [os.path.join(img_dir, files[i]) for i in idx]
    meta = {"attributes": names}
    if attr is None:
        return _lazy_images(
            f"celeba:{path}", "images", paths, None, size, channels, crop, draft=draft, cache=cache, meta=meta
        )
    dom = torch.from_numpy(vals[idx, names.index(attr)])
    meta.update(attr=attr, domains=[f"not {attr}", attr])
    return _lazy_images(
        f"celeba:{path}",
        "two-domain",
        paths,
        None,
        size,
        channels,
        crop,
        draft=draft,
        cache=cache,
        domain=dom,
        meta=meta,
    )
