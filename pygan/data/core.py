"""The uniform data interface every model and the training loop understand.

A :class:`Dataset` holds one split of one dataset, of one of four kinds (``Dataset.kind``):

* ``"images"``     ``x`` ``[N, C, H, W]`` float32 in [-1, 1], optional labels ``y`` ``[N]`` int64.
* ``"points"``     ``x`` ``[N, D]`` float32 in data coordinates (the 2-D Gaussian mixtures; not scaled
  to [-1, 1]: the mode centres and sigma in ``meta`` are in the same units).
* ``"paired"``     image-to-image: input ``x`` ``[N, C, H, W]`` and its ``target`` ``[N, C', H', W']``,
  both in [-1, 1] (edges -> photo, blurred -> sharp, gray -> colour, pix2pix A|B files).
* ``"two-domain"`` unpaired domains A and B (CoGAN/SCoGAN, CelebA split on an attribute): rows of
  both domains with a ``domain`` id ``[N]`` (0 = A, 1 = B); the loader draws A and B independently.

A :class:`Loader` turns a dataset into an endless, deterministic stream of :class:`Batch` objects:
each epoch is a permutation drawn from ``(seed, epoch, stream)``; under DDP every rank sees a
disjoint slice of the same global batch; its position (:meth:`Loader.state_dict`) is saved in the
checkpoints, so a resumed run sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

__all__ = ["KINDS", "Batch", "DataInfo", "Dataset", "Loader"]

KINDS = ("images", "points", "paired", "two-domain")


@dataclass
class Batch:
    """One batch, as the loop hands it to ``model.training_step``.

    Attributes:
        x: the main input: images ``[B, C, H, W]`` in [-1, 1] (domain A for two-domain data; the
            condition/input image for paired data) or points ``[B, D]``.
        y: class labels of ``x`` ``[B]`` int64, when the dataset has them.
        target: the paired target of ``x`` (image-to-image data), ``[B, C', H', W']``.
        x_b: an independent batch of domain B (two-domain data), same batch size as ``x``.
        y_b: labels of ``x_b``, when the dataset has them.
    """

    x: torch.Tensor
    y: torch.Tensor | None = None
    target: torch.Tensor | None = None
    x_b: torch.Tensor | None = None
    y_b: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def fields(self) -> dict[str, torch.Tensor]:
        """The tensors that are present, by name."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }

    def to(self, device, non_blocking: bool = False) -> Batch:
        return Batch(**{k: v.to(device, non_blocking=non_blocking) for k, v in self.fields().items()})

    def split(self, k: int) -> list[Batch]:
        """``k`` equal batches (a model with ``batches_per_step = k`` receives ``k`` batches stacked
        into one; e.g. WGAN-GP's critic takes one per critic step)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        n = len(self)
        if n % k:
            raise ValueError(f"a batch of {n} rows cannot be split into {k} equal batches")
        parts = {name: t.split(n // k) for name, t in self.fields().items()}
        return [Batch(**{name: p[i] for name, p in parts.items()}) for i in range(k)]

    def __getitem__(self, idx) -> Batch:
        """Row selection on every field (``batch[:8]``)."""
        return Batch(**{k: v[idx] for k, v in self.fields().items()})


@dataclass
class DataInfo:
    """What a model needs to know to build its networks for a dataset.

    Attributes:
        kind: one of :data:`KINDS`.
        shape: per-sample shape of ``x``: ``(C, H, W)`` for images, ``(D,)`` for points.
        target_shape: per-sample shape of ``target`` (paired data), else None.
        shape_b: per-sample shape of ``x_b`` (two-domain data), else None.
        num_classes: number of label classes, or None when the data has no labels.
        meta: anything else (mode ``centers`` and ``std`` of the mixtures, ``domains`` names, the
            CelebA attribute, the source files of photo patches ...). JSON-serialisable.
    """

    kind: str
    shape: tuple[int, ...]
    target_shape: tuple[int, ...] | None = None
    shape_b: tuple[int, ...] | None = None
    num_classes: int | None = None
    meta: dict = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        """Image side in pixels (images are square in pygan; points: 0)."""
        return self.shape[-1] if len(self.shape) == 3 else 0

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("shape", "target_shape", "shape_b"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d

    @classmethod
    def from_json(cls, d: dict) -> DataInfo:
        d = dict(d)
        for k in ("shape", "target_shape", "shape_b"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


class Dataset:
    """One split of a dataset. ``x``/``y``/``target``/``domain`` are either tensors held in memory or
    decoded lazily by ``fetch(rows) -> dict`` (image files; see :mod:`pygan.data.files`).

    Args:
        name: the spec it was loaded from (e.g. ``"digits32"``), for messages and ``config.json``.
        kind: one of :data:`KINDS`.
        x, y, target, domain: in-memory tensors (``x`` required unless ``fetch`` is given).
        length: number of rows (only with ``fetch``).
        fetch: ``fetch(rows: LongTensor) -> {"x": ..., "y": ..., "target": ...}`` for lazy data.
        shape: per-sample shape of ``x`` (only with ``fetch``); ``target_shape`` likewise.
        num_classes, meta: see :class:`DataInfo`.
    """

    def __init__(
        self,
        name: str,
        kind: str,
        x: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
        domain: torch.Tensor | None = None,
        *,
        length: int | None = None,
        fetch: Callable[[torch.Tensor], dict] | None = None,
        shape: tuple[int, ...] | None = None,
        target_shape: tuple[int, ...] | None = None,
        num_classes: int | None = None,
        meta: dict | None = None,
    ):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
        if (x is None) == (fetch is None):
            raise ValueError("give exactly one of x (in-memory) or fetch (lazy)")
        self.name = name
        self.kind = kind
        self.x, self.y, self.target, self.domain = x, y, target, domain
        self._fetch = fetch
        if x is not None:
            if x.dtype != torch.float32:
                raise TypeError(f"x must be float32, got {x.dtype}")
            length = x.shape[0]
            shape = tuple(x.shape[1:])
            if target is not None:
                target_shape = tuple(target.shape[1:])
            for fname, t in (("y", y), ("target", target), ("domain", domain)):
                if t is not None and t.shape[0] != length:
                    raise ValueError(f"{fname} has {t.shape[0]} rows but x has {length}")
        elif length is None or shape is None:
            raise ValueError("a lazy dataset needs length and shape")
        self.length = int(length)
        self.shape = tuple(shape)
        self.target_shape = tuple(target_shape) if target_shape is not None else None
        if kind == "paired" and self.target_shape is None:
            raise ValueError("a paired dataset needs targets")
        if kind == "two-domain":
            if domain is None:
                raise ValueError("a two-domain dataset needs domain ids")
            counts = torch.bincount(domain, minlength=2)
            if len(counts) != 2 or int(counts.min()) == 0:
                raise ValueError(
                    f"a two-domain dataset needs rows of domain 0 and 1, got counts {counts.tolist()}"
                )
        if y is not None and num_classes is not None and len(y):
            if y.dtype.is_floating_point or int(y.min()) < 0 or int(y.max()) >= num_classes:
                raise ValueError(f"labels y must be integers in [0, {num_classes}), got {y.dtype} values "
                                 f"{y.min().item()}..{y.max().item()}")  # fmt: skip
        self.num_classes = num_classes
        self.meta = dict(meta or {})

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        extra = f", target={self.target_shape}" if self.target_shape else ""
        return f"Dataset({self.name!r}, kind={self.kind!r}, n={self.length}, shape={self.shape}{extra})"

    @property
    def info(self) -> DataInfo:
        shape_b = self.shape if self.kind == "two-domain" else None
        return DataInfo(self.kind, self.shape, self.target_shape, shape_b, self.num_classes, dict(self.meta))

    def rows(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """The rows ``idx`` (int64 tensor) of every field, on the dataset's device."""
        if self._fetch is not None:
            out = self._fetch(idx)
            if self.domain is not None:
                out["domain"] = self.domain[idx]
            return out
        out = {"x": self.x[idx]}
        for k in ("y", "target", "domain"):
            t = getattr(self, k)
            if t is not None:
                out[k] = t[idx]
        return out

    def batch(self, idx: torch.Tensor, idx_b: torch.Tensor | None = None) -> Batch:
        """A :class:`Batch` of rows ``idx`` (and, for two-domain data, domain-B rows ``idx_b``)."""
        r = self.rows(idx)
        b = Batch(x=r["x"], y=r.get("y"), target=r.get("target"))
        if idx_b is not None:
            rb = self.rows(idx_b)
            b.x_b, b.y_b = rb["x"], rb.get("y")
        return b

    def fixed(self, n: int) -> Batch:
        """``n`` rows spread evenly over the dataset (of each domain, for two-domain data), as one
        batch: the same rows every time, for sample grids and evaluation."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")

        def spread(pool: torch.Tensor) -> torch.Tensor:
            m = min(n, len(pool))
            return pool[torch.linspace(0, len(pool) - 1, m).round().long()]

        if self.kind == "two-domain":
            dom = self.domain.cpu()
            a = spread(torch.nonzero(dom == 0).flatten())
            b = spread(torch.nonzero(dom == 1).flatten())
            m = min(len(a), len(b))
            return self.batch(a[:m], b[:m])
        return self.batch(spread(torch.arange(self.length)))

    def to(self, device) -> Dataset:
        """Moves in-memory tensors to ``device`` (in place; lazy datasets stay where they decode)."""
        for k in ("x", "y", "target", "domain"):
            t = getattr(self, k)
            if t is not None and (self._fetch is None or k == "domain"):
                setattr(self, k, t.to(device))
        return self


class _Stream:
    """An endless stream of row indices into ``pool``: epoch ``e`` is a permutation drawn from
    ``seed`` and ``e``; its position (epoch, offset) is the whole state."""

    def __init__(self, pool: torch.Tensor, seed: int, shuffle: bool):
        if len(pool) == 0:
            raise ValueError("cannot draw batches from an empty dataset")
        self.pool = pool
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.offset = 0
        self._perm: torch.Tensor | None = None

    def _order(self) -> torch.Tensor:
        if self._perm is None:
            if self.shuffle:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
                self._perm = self.pool[torch.randperm(len(self.pool), generator=g)]
            else:
                self._perm = self.pool
        return self._perm

    def take(self, n: int) -> torch.Tensor:
        parts = []
        while n > 0:
            order = self._order()
            k = min(n, len(order) - self.offset)
            parts.append(order[self.offset : self.offset + k])
            self.offset += k
            n -= k
            if self.offset == len(order):
                self.epoch, self.offset, self._perm = self.epoch + 1, 0, None
        return torch.cat(parts)

    def state(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def load(self, s: dict) -> None:
        self.epoch, self.offset, self._perm = int(s["epoch"]), int(s["offset"]), None


class Loader:
    """Endless deterministic batches of ``dataset`` for one rank.

    Each draw takes the next ``batch_size * world_size`` rows of the stream; rank ``r`` keeps the
    ``r``-th slice. ``batch_size`` is per process (DDP convention). Two-domain data uses two
    independent streams (A rows, B rows), so ``x`` and ``x_b`` are unpaired.

    Args:
        dataset: the :class:`Dataset`.
        batch_size: rows per batch on this rank.
        seed: the shuffling seed (the same on every rank).
        rank, world_size: this process's slice of each global batch.
        shuffle: draw a new permutation every epoch (else the stored order, repeated).
        device: where the batches go.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        device: torch.device | str = "cpu",
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        if dataset.kind == "two-domain":
            dom = dataset.domain.cpu()
            pools = [torch.nonzero(dom == 0).flatten(), torch.nonzero(dom == 1).flatten()]
        else:
            pools = [torch.arange(len(dataset))]
        self.streams = [_Stream(p, seed + 7919 * i, shuffle) for i, p in enumerate(pools)]

    def _take(self, stream: _Stream, n: int) -> torch.Tensor:
        idx = stream.take(n * self.world_size)
        return idx[self.rank * n : (self.rank + 1) * n]

    def next(self, n: int | None = None) -> Batch:
        """The next batch of ``n`` rows (default ``batch_size``)."""
        n = self.batch_size if n is None else n
        idx = [self._take(s, n) for s in self.streams]
        dev = self.dataset.x.device if self.dataset.x is not None else torch.device("cpu")
        idx = [i.to(dev) for i in idx]
        b = self.dataset.batch(idx[0], idx[1] if len(idx) > 1 else None)
        return b.to(self.device, non_blocking=True)

    def __iter__(self) -> Iterator[Batch]:
        while True:
            yield self.next()

    def state_dict(self) -> dict:
        return {"streams": [s.state() for s in self.streams]}

    def load_state_dict(self, state: dict) -> None:
        streams = state["streams"]
        if len(streams) != len(self.streams):
            raise ValueError(f"loader state has {len(streams)} streams, this loader {len(self.streams)}")
        for s, st in zip(self.streams, streams):
            s.load(st)
