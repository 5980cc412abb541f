"""Datasets by name or path: the ``--data`` argument of ``pygan train``.

A data spec is ``[KIND:]NAME_OR_PATH[?key=value&key=value...]``:

=========================  ==========================================================================
``digits<N>``              the 1,797 handwritten digits pygan ships at N px (``digits`` = 32), labels
``digits<N>-edge``         two domains: half the digits as they are, the other half as edges (SCoGAN)
``digits<N>-negative``     two domains: half as they are, the other half negated (SCoGAN)
``ring8``, ``grid25``      2-D Gaussian mixtures (points, with mode centres); also ``square4``
``faces``/``faces<N>``     the 100 real LFW face crops scikit-image ships (25 px or resized)
``photos<N>``              colour photo patches (unpaired)
``photo-edges<N>``         paired: edge map -> photo patch
``photo-blur<N>``          paired: blurred -> sharp photo patch
``photo-gray<N>``          paired: gray -> colour photo patch
``mnist:PATH``             MNIST idx(.gz) files (a directory or an images file)
``svhn:PATH``              SVHN ``.mat`` (a file or a directory with ``train_32x32.mat``/``test_32x32.mat``)
``folder:PATH``            a folder of images (class subfolders or flat)
``celeba:PATH``            CelebA (``?attr=Smiling`` makes it two-domain: without / with)
``pix2pix:PATH``           pix2pix A|B side-by-side pairs (``?direction=BtoA`` to swap)
=========================  ==========================================================================

A bare path (no ``KIND:``) is recognised by its contents: idx files -> mnist, ``.mat`` -> svhn,
``list_attr_celeba.txt`` -> celeba, otherwise a folder of images (pix2pix needs its prefix).

Options: ``size`` (px), ``channels`` (1 or 3), ``limit`` (keep the first N rows), ``domain``
(``edge``/``negative``: make a two-domain set by the half/half split), ``seed`` (of that split),
``crop`` (folder/celeba centre-crop fraction), ``attr`` (celeba), ``direction`` (pix2pix), ``sources``
(photos: ``all`` or ``sklearn``); for image files (folder/celeba/pix2pix) ``cache`` (1, the default:
keep each decoded image in memory for later epochs; 0: decode every epoch) and ``draft`` (1: let the
JPEG decoder shrink large images while decoding; faster, a few grey levels different; default 0).
Two separate datasets become one two-domain set with ``load_data(spec, spec_b=other)``
(``pygan train --data A --data-b B``, e.g. MNIST -> SVHN).
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import torch

from pygan.data import files, photos, synthetic
from pygan.data import transforms as T
from pygan.data.core import DataError, DataInfo, Dataset, LazyRows
from pygan.data.digits import load_digits
from pygan.errors import ConfigError

__all__ = ["DATASETS", "PATH_KINDS", "DataSpec", "list_datasets", "load_data", "parse_spec"]

PATH_KINDS = ("mnist", "svhn", "folder", "celeba", "pix2pix")

# name pattern -> (description, needs)
DATASETS: dict[str, tuple[str, str]] = {
    "digits<N>": ("the UCI handwritten digits pygan ships (1,797, 10 classes) at N px, split 1,438/359", ""),
    "digits<N>-edge": ("two domains: half the digits, the other half as edges (SCoGAN MNIST2edge)", ""),
    "digits<N>-negative": ("two domains: half the digits, the other half negated (SCoGAN)", ""),
    "ring8": ("8 Gaussians on a circle (radius 2, sigma 0.02), points with mode centres", ""),
    "grid25": ("25 Gaussians on a 5x5 grid (spacing 2, sigma 0.05), points with mode centres", ""),
    "square4": ("4 Gaussians at (+-2, +-2) (sigma 0.1), points with mode centres (ACL toy)", ""),
    "faces<N>": ("the 100 real LFW face crops scikit-image ships (25 px; N resizes), split 80/20", "images"),
    "photos<N>": ("colour photo patches from shipped photographs (2,000/256)", "images"),
    "photo-edges<N>": ("paired: edge map -> colour photo patch", "images"),
    "photo-blur<N>": ("paired: blurred -> sharp colour photo patch", "images"),
    "photo-gray<N>": ("paired: gray -> colour photo patch", "images"),
    "mnist:PATH": ("MNIST idx(.gz) files: a directory or an images file", ""),
    "svhn:PATH": ("SVHN .mat: a file or a directory with train_32x32.mat / test_32x32.mat", ""),
    "folder:PATH": ("a folder of images: class subfolders (labels) or flat", ""),
    "celeba:PATH": ("CelebA: list_attr_celeba.txt + images; ?attr=Smiling -> two domains", ""),
    "pix2pix:PATH": ("pix2pix pairs: A|B side by side in each image", ""),
}

_INT_OPTS = {"size", "channels", "limit", "seed", "cache", "draft"}
_FLOAT_OPTS = {"crop"}
_STR_OPTS = {"domain", "attr", "direction", "sources"}


def parse_spec(spec: str) -> tuple[str | None, str, dict]:
    """``"[kind:]target[?k=v&...]"`` -> ``(kind or None, target, typed options)``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"data spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    kind = None
    head, sep, query = spec.partition("?")
    prefix, colon, rest = head.partition(":")
    if colon and prefix in PATH_KINDS:
        kind, head = prefix, rest
    opts: dict = {}
    if sep:
        for k, v in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            if k in _INT_OPTS:
                try:
                    opts[k] = int(v)
                except ValueError:
                    raise ConfigError(f"data option {k} must be an int, got {v!r} (in {spec!r})") from None
            elif k in _FLOAT_OPTS:
                try:
                    opts[k] = float(v)
                except ValueError:
                    raise ConfigError(f"data option {k} must be a number, got {v!r} (in {spec!r})") from None
            elif k in _STR_OPTS:
                opts[k] = v
            else:
                known = sorted(_INT_OPTS | _FLOAT_OPTS | _STR_OPTS)
                raise ConfigError(f"unknown data option {k!r} in {spec!r}; known options: {known}")
    return kind, head, opts


def _sniff(path: str) -> str:
    if os.path.isfile(path):
        name = os.path.basename(path).lower()
        if name.endswith(".mat"):
            return "svhn"
        if "idx" in name or "ubyte" in name:
            return "mnist"
        raise DataError(
            f"{path}: cannot tell the format of this file; expected an MNIST idx file or an SVHN .mat "
            f"(or prefix the path with one of {', '.join(k + ':' for k in PATH_KINDS)})"
        )
    entries = os.listdir(path)
    if any("idx3-ubyte" in e or "idx3_ubyte" in e for e in entries):
        return "mnist"
    if any(e.endswith("_32x32.mat") for e in entries):
        return "svhn"
    if any(e.startswith("list_attr_celeba") for e in entries):
        return "celeba"
    return "folder"


def _pop(opts: dict, allowed: set, spec: str) -> None:
    extra = set(opts) - allowed
    if extra:
        raise ConfigError(
            f"data option(s) {sorted(extra)} do not apply to {spec!r}; it takes {sorted(allowed)}"
        )


def _post(d: Dataset, opts: dict, spec: str) -> Dataset:
    """Applies the generic options ``channels`` (in-memory images), ``limit``, ``domain``."""
    if "channels" in opts and d.x is not None and d.kind in ("images", "two-domain"):
        if d.shape[0] != opts["channels"]:
            d = Dataset(
                d.name,
                d.kind,
                T.set_channels(d.x, opts["channels"]),
                d.y,
                None,
                d.domain,
                num_classes=d.num_classes,
                meta=d.meta,
            )
    if "limit" in opts:
        n = opts["limit"]
        if n < 1:
            raise ConfigError(f"data option limit must be >= 1, got {n}")
        if d.x is None:
            raise ConfigError(f"data option limit needs an in-memory dataset; {spec!r} is decoded from files")
        d = Dataset(
            d.name,
            d.kind,
            d.x[:n],
            *(t[:n] if t is not None else None for t in (d.y, d.target, d.domain)),
            num_classes=d.num_classes,
            meta=d.meta,
        )
    if opts.get("domain"):
        tr = opts["domain"]
        if tr not in T.DOMAIN_TRANSFORMS:
            raise ConfigError(f"data option domain must be one of {list(T.DOMAIN_TRANSFORMS)}, got {tr!r}")
        if d.kind != "images" or d.x is None:
            raise ConfigError(f"domain={tr} needs an in-memory image dataset; {spec!r} is {d.kind}")
        _, b = T.half_split(len(d), opts.get("seed", 0))
        x = d.x.clone()
        x[b] = T.DOMAIN_TRANSFORMS[tr](d.x[b])
        dom = torch.zeros(len(d), dtype=torch.int64)
        dom[b] = 1
        meta = dict(d.meta, domains=["original", tr], transform=tr)
        d = Dataset(d.name, "two-domain", x, d.y, None, dom, num_classes=d.num_classes, meta=meta)
    return d


_GENERIC = {"channels", "limit", "domain", "seed"}
_DECODE = {"cache", "draft"}


def _decode_opts(opts: dict) -> dict:
    out = {}
    for k, default in (("cache", 1), ("draft", 0)):
        v = opts.get(k, default)
        if v not in (0, 1):
            raise ConfigError(f"data option {k} must be 0 or 1, got {v}")
        out[k] = bool(v)
    return out


def _load_one(spec: str, split: str) -> Dataset:
    kind, target, opts = parse_spec(spec)
    if kind is None:
        m = re.fullmatch(r"digits(\d+)?(?:-(edge|negative))?", target)
        if m:
            _pop(opts, _GENERIC | {"size"}, spec)
            size = opts.get("size", int(m.group(1) or 32))
            if m.group(2):
                opts.setdefault("domain", m.group(2))
            x, y = load_digits(size, split)
            d = Dataset(target, "images", x, y, num_classes=10, meta={"source": "sklearn load_digits"})
            return _post(d, opts, spec)
        if target in synthetic.MIXTURES:
            _pop(opts, {"limit"}, spec)
            return _post(synthetic.mixture(target, split), opts, spec)
        m = re.fullmatch(r"faces(\d+)?", target)
        if m:
            _pop(opts, _GENERIC | {"size"}, spec)
            return _post(photos.faces(opts.get("size", int(m.group(1) or 25)), split), opts, spec)
        m = re.fullmatch(r"photos(\d+)|photo-(edges|blur|gray)(\d+)", target)
        if m:
            _pop(
                opts,
                {"limit", "sources", "size"} | ({"channels", "domain", "seed"} if m.group(1) else set()),
                spec,
            )
            size = opts.get("size", int(m.group(1) or m.group(3)))
            task = m.group(2) or "none"
            return _post(photos.photo_patches(size, task, split, opts.get("sources", "all")), opts, spec)
        if not os.path.exists(target):
            names = ", ".join(DATASETS)
            raise FileNotFoundError(
                f"{target!r} is neither a dataset name ({names}) nor an existing path "
                "(nothing is downloaded: point --data at local files)"
            )
        kind = _sniff(target)
    files._exists(target, f"{kind} data")
    if kind in ("mnist", "svhn"):
        _pop(opts, _GENERIC | {"size"}, spec)
        loader = files.mnist if kind == "mnist" else files.svhn
        d = loader(target, split, size=opts.get("size"), channels=opts.get("channels"))
    elif kind == "folder":
        _pop(opts, {"size", "channels", "crop"} | _DECODE, spec)
        d = files.image_folder(
            target,
            split,
            size=opts.get("size", 64),
            channels=opts.get("channels"),
            crop=opts.get("crop", 1.0),
            **_decode_opts(opts),
        )
    elif kind == "celeba":
        _pop(opts, {"size", "channels", "crop", "attr"} | _DECODE, spec)
        d = files.celeba(
            target,
            "valid" if split == "val" else split,
            size=opts.get("size", 64),
            channels=opts.get("channels"),
            attr=opts.get("attr"),
            crop=opts.get("crop", 0.7),
            **_decode_opts(opts),
        )
    else:
        _pop(opts, {"size", "channels", "direction"} | _DECODE, spec)
        d = files.pix2pix(
            target,
            split,
            size=opts.get("size", 64),
            channels=opts.get("channels"),
            direction=opts.get("direction", "AtoB"),
            **_decode_opts(opts),
        )
    d.name = spec
    return _post(d, {k: v for k, v in opts.items() if k in ("limit", "domain", "seed")}, spec)


def _two_domains(a: Dataset, b: Dataset, name: str) -> Dataset:
    if a.kind != "images" or b.kind != "images":
        raise ValueError(
            f"two datasets combine into two domains only when both are images, got {a.kind} and {b.kind}"
        )
    if a.shape != b.shape:
        raise ValueError(
            f"domain A {a.name!r} has samples of shape {a.shape} and domain B {b.name!r} {b.shape}; "
            "make them match with ?size= and ?channels= (e.g. mnist:DIR?size=32&channels=3)"
        )
    n_a = len(a)
    dom = torch.cat([torch.zeros(n_a, dtype=torch.int64), torch.ones(len(b), dtype=torch.int64)])
    labelled = a.num_classes is not None and b.num_classes is not None
    meta = {"domains": [a.name, b.name]}
    num_classes = max(a.num_classes, b.num_classes) if labelled else None
    if a.x is not None and b.x is not None:
        y = torch.cat([a.y, b.y]) if labelled else None
        return Dataset(
            name, "two-domain", torch.cat([a.x, b.x]), y, None, dom, num_classes=num_classes, meta=meta
        )

    return Dataset(
        name,
        "two-domain",
        domain=dom,
        length=len(dom),
        fetch=_TwoDomainRows(a, b, labelled),
        shape=a.shape,
        num_classes=num_classes,
        meta=meta,
    )


class _TwoDomainRows(LazyRows):
    """The rows of two datasets, A (rows ``[0, len(a))``) then B, one of which at least is decoded
    from files; the loader draws each batch from one domain, so a batch is A rows or B rows."""

    def __init__(self, a: Dataset, b: Dataset, labelled: bool):
        self.a, self.b, self.labelled = a, b, labelled

    @property
    def complete(self) -> bool:
        return all(d.lazy_rows is None or d.lazy_rows.complete for d in (self.a, self.b))

    def plan(self, rows: torch.Tensor):
        rows = torch.as_tensor(rows).cpu()
        in_a = rows < len(self.a)
        if bool(in_a.all()):
            side = 0
        elif not bool(in_a.any()):
            side, rows = 1, rows - len(self.a)
        else:
            raise RuntimeError("a batch mixes rows of both domains")  # the Loader never does
        lazy = (self.a, self.b)[side].lazy_rows
        return side, (lazy.plan(rows) if lazy is not None else rows.numpy())

    def work(self, job):
        side, sub = job
        lazy = (self.a, self.b)[side].lazy_rows
        return lazy.work(sub) if lazy is not None else None

    def finish(self, job, result, device: torch.device | None = None) -> dict:
        side, sub = job
        d = (self.a, self.b)[side]
        lazy = d.lazy_rows
        r = lazy.finish(sub, result, device) if lazy is not None else d.rows(torch.from_numpy(sub))
        return {k: v for k, v in r.items() if k == "x" or (k == "y" and self.labelled)}


def _named(spec: str, split: str) -> Dataset:
    d = _load_one(spec, split)
    d.name = spec
    return d


def load_data(spec: str, split: str = "train", *, spec_b: str | None = None) -> Dataset:
    """Loads ``split`` (``"train"``, ``"test"`` or ``"all"``) of the dataset ``spec`` (see the module
    docstring); with ``spec_b``, the two datasets become domains A and B of one two-domain set."""
    if split not in ("train", "test", "all", "val"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    a = _named(spec, split)
    if spec_b is None:
        return a
    return _two_domains(a, _named(spec_b, split), f"{spec} + {spec_b}")


def list_datasets() -> list[dict]:
    """The dataset names/kinds with a description and whether they are usable here."""
    out = []
    for name, (desc, needs) in DATASETS.items():
        ok, why = True, ""
        if needs == "images":
            try:
                photos._skimage_data_dir()
            except ImportError:
                ok, why = name.startswith("photo"), photos.IMAGES_HINT
                if ok:
                    why = "without scikit-image: only ?sources=sklearn"
            # The photo patches always include scikit-learn's two photographs (pygan[images]).
            if name.startswith("photo") and importlib.util.find_spec("sklearn") is None:
                ok, why = False, "scikit-learn is not installed: pip install 'pygan[images]'"
        out.append({"name": name, "description": desc, "available": ok, "note": why})
    return out


@dataclass
class DataSpec:
    """Where a run's data comes from: ``spec`` (and ``spec_b`` for a second domain); ``info`` is the
    DataInfo a model was built for, when known (:func:`pygan.runs.load_run` fills it in)."""

    spec: str
    spec_b: str | None = None
    info: DataInfo | None = field(default=None, repr=False)

    def load(self, split: str = "train") -> Dataset:
        return load_data(self.spec, split, spec_b=self.spec_b)
