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

Lazy datasets whose rows are a :class:`LazyRows` (the image-file sets of :mod:`pygan.data.files`)
can be decoded in ``torch.utils.data`` worker processes (``Loader(..., workers=N)``): the loader's
own index stream feeds the workers, so the batches are bit-identical whatever ``N`` is, and the
position it saves is that of the batches handed out, not of those prefetched. In-memory datasets
never use workers (indexing a tensor is cheaper than any hand-over).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from pygan.errors import ConfigError

__all__ = [
    "KINDS",
    "Batch",
    "DataError",
    "DataInfo",
    "Dataset",
    "LazyRows",
    "Loader",
    "check_workers",
    "default_workers",
]

KINDS = ("images", "points", "paired", "two-domain")


class DataError(ValueError):
    """A data file exists but is not what was expected (raised by the loaders of
    :mod:`pygan.data.files`; defined here so that the loader's worker plumbing needs no upward import)."""


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

    @classmethod
    def from_rows(cls, r: dict, rb: dict | None = None) -> Batch:
        """A batch from the row dicts of :meth:`Dataset.rows` (``rb``: the domain-B rows)."""
        b = cls(x=r["x"], y=r.get("y"), target=r.get("target"))
        if rb is not None:
            b.x_b, b.y_b = rb["x"], rb.get("y")
        return b

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


class LazyRows:
    """Rows that are produced on demand (decoded from files), in three parts so that the expensive
    one can run in a worker process while the training process keeps the bookkeeping:

    * ``plan(rows) -> job`` (training process; cheap): what must be done for ``rows`` (an int64
      tensor), as a picklable object (e.g. which rows are not in a decode cache yet);
    * ``work(job) -> result`` (any process; the expensive part, e.g. decoding image files): a
      picklable result (tensors travel through shared memory);
    * ``finish(job, result, device=None) -> dict`` (training process): the row fields
      (``{"x": ..., "y": ..., "target": ...}``), e.g. after filling a cache; given a ``device`` (a
      GPU the batch goes to), fields may already be returned there (the loader moves the rest).

    Calling the object does all three in the calling process. Subclasses must be picklable (workers
    started by ``spawn``/``forkserver`` receive a pickled copy) and ``work`` must not touch a GPU.
    ``complete`` says that ``work`` has nothing left to do for any row (e.g. all are in a cache):
    the loader then stops its workers and cuts the batches in its own process.
    """

    complete: bool = False

    def plan(self, rows: torch.Tensor):
        return rows

    def work(self, job):
        raise NotImplementedError

    def finish(self, job, result, device: torch.device | None = None) -> dict:
        return result

    def __call__(self, rows: torch.Tensor, device: torch.device | None = None) -> dict:
        job = self.plan(rows)
        return self.finish(job, self.work(job), device)


class Dataset:
    """One split of a dataset. ``x``/``y``/``target``/``domain`` are either tensors held in memory or
    decoded lazily by ``fetch(rows) -> dict`` (image files; see :mod:`pygan.data.files`).

    Args:
        name: the spec it was loaded from (e.g. ``"digits32"``), for messages and ``config.json``.
        kind: one of :data:`KINDS`.
        x, y, target, domain: in-memory tensors (``x`` required unless ``fetch`` is given).
        length: number of rows (only with ``fetch``).
        fetch: ``fetch(rows: LongTensor) -> {"x": ..., "y": ..., "target": ...}`` for lazy data; a
            :class:`LazyRows` can run in loader workers, a plain callable runs in the loader's
            process.
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
        return Batch.from_rows(self.rows(idx), self.rows(idx_b) if idx_b is not None else None)

    @property
    def lazy_rows(self) -> LazyRows | None:
        """The :class:`LazyRows` this dataset decodes from, when it can run in loader workers."""
        return self._fetch if isinstance(self._fetch, LazyRows) else None

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
        epoch, offset = int(s["epoch"]), int(s["offset"])
        if (epoch, offset) != (self.epoch, self.offset):
            self.epoch, self.offset, self._perm = epoch, offset, None

    def copy(self) -> _Stream:
        c = _Stream(self.pool, self.seed, self.shuffle)
        c.epoch, c.offset, c._perm = self.epoch, self.offset, self._perm
        return c


def _take(stream: _Stream, n: int, rank: int, world_size: int) -> torch.Tensor:
    """The next ``n * world_size`` rows of ``stream``; rank ``rank`` keeps its slice."""
    idx = stream.take(n * world_size)
    return idx[rank * n : (rank + 1) * n]


# ---- worker processes ----------------------------------------------------------------------------


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """``workers=None``: one core left for the training process, the rest (at most 16) for
    decoding, shared among the processes of one machine under ``torchrun`` (``LOCAL_WORLD_SIZE``).
    A full decode of a CelebA-sized file costs ~0.5 ms (JPEG) to ~1.3 ms (PNG) of one core, and a
    GPU can take ~8,000 img/s (wgan-gp, 64 px), so a first epoch needs every core it can get."""
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, min(16, usable_cores() // local - 1))


def check_workers(workers) -> int | None:
    """Validates a ``workers`` setting: ``None`` (auto, :func:`default_workers`) or an int in
    ``[0, cores]`` (0: decode in the training process). Returns it."""
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers must be an int >= 0 or None (auto), got {workers!r}")
    if workers < 0:
        raise ConfigError(f"workers must be >= 0 (0: decode in the training process), got {workers}")
    cores = usable_cores()
    if workers > cores:
        raise ConfigError(
            f"workers={workers} is more than the {cores} CPU cores this process may use: decoding "
            f"cannot go faster with more processes than cores; use at most {cores} "
            f"(or leave workers unset for {default_workers()})"
        )
    return workers


# start method of the worker processes: None = torch's default for the platform (fork on Linux up to
# Python 3.13); the tests set "spawn" to check that everything a worker needs pickles.
_MP_CONTEXT: str | None = None


class _Failed:
    """An exception raised in a worker, carried back to be raised in the training process as
    itself (a :class:`DataError` naming the file, not a worker traceback)."""

    def __init__(self, exc: BaseException, tb: str):
        try:
            pickle.dumps(exc)
            self.exc = exc
        except Exception:  # an exception that cannot cross processes: keep its type name and text
            self.exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        self.tb = tb

    def raise_(self):
        exc = self.exc
        if not isinstance(exc, DataError) and hasattr(exc, "add_note"):
            exc.add_note(f"(raised in a data-loading worker process)\n{self.tb}")
        raise exc


class _Work(torch.utils.data.Dataset):
    """What a worker runs: ``LazyRows.work`` for each job of a task."""

    def __init__(self, rows: LazyRows):
        self.rows = rows

    def __getitem__(self, task):
        jobs, state = task
        try:
            return jobs, tuple(self.rows.work(j) for j in jobs), state
        except Exception as exc:
            return jobs, _Failed(exc, traceback.format_exc()), state


class _Tasks(torch.utils.data.Sampler):
    """The worker pool's sampler: the loader's own index stream, continued from a position. Each
    task is the jobs of one batch (one per stream) and the stream position after it."""

    def __init__(self, streams: list[_Stream], n: int, rank: int, world_size: int, rows: LazyRows):
        self.streams = [s.copy() for s in streams]
        self.n, self.rank, self.world_size, self.rows = n, rank, world_size, rows

    def __iter__(self):
        streams = [s.copy() for s in self.streams]
        while True:
            jobs = tuple(self.rows.plan(_take(s, self.n, self.rank, self.world_size)) for s in streams)
            yield jobs, [s.state() for s in streams]


def _identity(x):
    return x


def _worker_init(_worker_id: int) -> None:
    """A decoding worker ignores SIGINT and SIGTERM: a Ctrl-C reaches the whole process group, and
    the training process, which stops after its current step and checkpoints (pygan.train), ends
    the workers itself (a worker that died of the signal would fail that step instead)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _Pipeline:
    """``workers`` processes decoding the batches that follow the loader's current position, up to
    ``prefetch`` batches each ahead of the training process (torch's DataLoader)."""

    def __init__(self, loader: Loader):
        tasks = _Tasks(loader.streams, loader.batch_size, loader.rank, loader.world_size, loader.rows)
        self._dl = torch.utils.data.DataLoader(
            _Work(loader.rows),
            batch_size=None,
            sampler=tasks,
            num_workers=loader.workers,
            collate_fn=_identity,
            worker_init_fn=_worker_init,
            prefetch_factor=loader.prefetch,
            generator=torch.Generator(),  # the workers' seeds: never drawn from the global RNG
            multiprocessing_context=_MP_CONTEXT,
        )
        self._it = iter(self._dl)

    def get(self):
        jobs, results, state = next(self._it)
        if isinstance(results, _Failed):
            results.raise_()
        return jobs, results, state

    def close(self) -> None:
        it, self._it = self._it, None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()  # joins the workers now, not whenever the iterator is collected


class Loader:
    """Endless deterministic batches of ``dataset`` for one rank.

    Each draw takes the next ``batch_size * world_size`` rows of the stream; rank ``r`` keeps the
    ``r``-th slice. ``batch_size`` is per process (DDP convention). Two-domain data uses two
    independent streams (A rows, B rows), so ``x`` and ``x_b`` are unpaired.

    With ``workers > 0`` and a dataset decoded from files (a :class:`LazyRows`), ``workers``
    processes decode the coming batches while the caller trains; the index stream stays in this
    process, so the batches are bit-identical to ``workers=0``, and :meth:`state_dict` is the
    position after the batches handed out (prefetched ones are decoded again after a resume).
    Once every row is decoded into the dataset's cache (``LazyRows.complete``) the workers stop and
    the batches are cut in this process. On CUDA the images of a file dataset are gathered as uint8
    in pinned memory, copied with ``non_blocking`` and scaled to float on the GPU (bit-identical to
    the CPU scaling). Call :meth:`close` (or use ``with Loader(...) as
    loader``) to stop the workers.

    Args:
        dataset: the :class:`Dataset`.
        batch_size: rows per batch on this rank.
        seed: the shuffling seed (the same on every rank).
        rank, world_size: this process's slice of each global batch.
        shuffle: draw a new permutation every epoch (else the stored order, repeated).
        device: where the batches go.
        workers: decoding processes: 0 (default) decodes in this process; ``None`` picks
            :func:`default_workers` for a file dataset. In-memory datasets always use 0 (a warning
            says so when ``workers > 0`` was asked for).
        prefetch: batches each worker decodes ahead.
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
        workers: int | None = 0,
        prefetch: int = 2,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        check_workers(workers)
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be a positive int, got {prefetch!r}")
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
        self.rows = dataset.lazy_rows
        if self.rows is None:
            if workers:
                warnings.warn(
                    f"workers={workers} ignored: {dataset.name!r} is held in memory, so its batches "
                    "are cut in this process (there is no decoding to move to workers)",
                    stacklevel=2,
                )
            self.workers = 0
        else:
            self.workers = default_workers() if workers is None else workers
        self.prefetch = prefetch
        # finish() may build the batch on the GPU (from pinned host memory) only for a CUDA target:
        # pinning on a CPU-only torch warns or raises
        self.gpu = self.device if self.device.type == "cuda" and torch.cuda.is_available() else None
        self._pipe: _Pipeline | None = None

    def next(self, n: int | None = None) -> Batch:
        """The next batch of ``n`` rows (default ``batch_size``)."""
        n = self.batch_size if n is None else n
        if self.workers and n == self.batch_size and not self.rows.complete:
            return self._next_from_workers()
        # in this process: no workers, nothing left for them (a full cache), or a batch of another
        # size (the prefetched batches do not follow it)
        self._stop()
        idx = [_take(s, n, self.rank, self.world_size) for s in self.streams]
        if self.rows is not None:
            rows = [self.rows(i, device=self.gpu) for i in idx]
            b = Batch.from_rows(rows[0], rows[1] if len(rows) > 1 else None)
        else:
            dev = self.dataset.x.device if self.dataset.x is not None else torch.device("cpu")
            idx = [i.to(dev) for i in idx]
            b = self.dataset.batch(idx[0], idx[1] if len(idx) > 1 else None)
        return b.to(self.device, non_blocking=True)

    def _next_from_workers(self) -> Batch:
        if self._pipe is None:
            self._pipe = _Pipeline(self)
        try:
            jobs, results, state = self._pipe.get()
        except BaseException:
            self._stop()
            raise
        rows = [self.rows.finish(j, r, device=self.gpu) for j, r in zip(jobs, results)]
        for s, st in zip(self.streams, state):
            s.load(st)  # the position after the batch handed out, not after the prefetched ones
        if self.rows.complete:
            self._stop()  # everything is decoded: the workers have nothing left to do
        b = Batch.from_rows(rows[0], rows[1] if len(rows) > 1 else None)
        return b.to(self.device, non_blocking=True)

    def __iter__(self) -> Iterator[Batch]:
        while True:
            yield self.next()

    def _stop(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()

    def close(self) -> None:
        """Stops the worker processes (they start again, from the current position, on the next
        :meth:`next`)."""
        self._stop()

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def state_dict(self) -> dict:
        return {"streams": [s.state() for s in self.streams]}

    def load_state_dict(self, state: dict) -> None:
        streams = state["streams"]
        if len(streams) != len(self.streams):
            raise ValueError(f"loader state has {len(streams)} streams, this loader {len(self.streams)}")
        self._stop()  # prefetched batches belong to the old position
        for s, st in zip(self.streams, streams):
            s.load(st)
