"""The one training loop: device, seed, autocast (bf16, or fp16 with a gradient scaler), DDP,
checkpoints, the generator EMA, logging, sample grids and evaluation hooks, for every model that
follows :mod:`pygan.models`' contract.

The run directory this loop writes (``--out RUN``: ``config.json``, checkpoints, samples, metrics) is
described in :mod:`pygan.runs`, which also reads it back (:func:`pygan.runs.load_run`) and says how
its ``config.json`` replays the run (:func:`load_config_file`).

Exactness and failure
=====================

* ``resume=True`` continues from ``checkpoints/last.pt``: model, optimizers, RNG states (per rank),
  data position and step are restored, and lines of ``metrics.jsonl`` past the checkpoint are
  dropped, so on CPU with a fixed seed the resumed loss curve equals the uninterrupted one.
* A process killed during a save leaves the previous checkpoint intact (the new one is written to a
  temporary file in the same folder, fsynced, then renamed over ``last.pt``).
* The losses stay on the device (:class:`pygan.graphs.LossMonitor`) and are read back every
  ``log_every`` steps, before every checkpoint and at least every 1,000 steps: no host sync per step.
  A non-finite loss stops training at the next read with :class:`NonFiniteLossError` naming the loss
  and the step it first appeared at; at most ``log_every`` steps run past it, and no checkpoint is
  written from them, so ``last.pt`` stays the last good state.
* Sampling and evaluation draw from their own seeded generators, so turning them on or off does not
  change the training run.
* SIGINT/SIGTERM (handlers installed for the duration of :func:`train`, main thread only) finish the
  current step, read the losses, write ``last.pt`` and raise :class:`TrainingInterrupted` (``pygan
  train`` exits 130/143); a second SIGINT aborts at once, leaving ``last.pt`` as it was. Under DDP
  the ranks agree on the stop at the next loss read and stop together (rank 0 writes).
* ``config.json`` is written once the data and the model are built; a folder with ``config.json``
  but no checkpoint is a failed start, which a new run (the same call) replaces after one line on
  stderr; ``resume=True`` on it raises :class:`NoCheckpointError`. A resume whose model, data, model
  settings, ``seed`` or ``amp`` differ from ``config.json`` raises one ConfigError (a ValueError) naming each
  difference; ``steps`` at or below the checkpoint's step says so and returns at once.
* Divergence watch: a loss whose magnitude exceeds ``divergence_threshold`` (default
  :data:`DIVERGENCE_THRESHOLD`, 1e10) at ``divergence_logs`` consecutive reads warns once, or with
  ``stop_on_divergence`` raises :class:`DivergenceError` (a :class:`NonFiniteLossError`) without
  writing a checkpoint from that state.

CUDA graphs
===========

``cuda_graphs=True`` (``--cuda-graphs``, CUDA only) captures each iteration's ``training_step`` once
as a CUDA graph after three eager warm-up iterations and replays it for every later batch
(:mod:`pygan.graphs`; the model contract in :mod:`pygan.models` says what a capturable step is).
A model that breaks the contract runs eagerly and the loop says why in one line. Checkpoints are the
same as an eager run's (optimizer step counters back on the CPU, ``capturable`` as configured), so a
graphed run resumes eagerly and vice versa. bf16 autocast runs inside the graph. Not with ``compile``
or DDP.

Mixed precision and determinism
===============================

``amp="bf16"`` (``--amp``; ``amp=True`` is the same) runs the step under bfloat16 autocast.
``amp="fp16"`` (``--amp fp16``, for GPUs without bf16) adds a ``torch.amp.GradScaler`` that the
models' updates and the gradient penalty go through (:mod:`pygan.amp`); its state is checkpointed.
With ``cuda_graphs`` it runs eagerly (the scaler reads its overflow flag on the host) and says so.

``deterministic=True`` (``--deterministic``) turns on ``torch.use_deterministic_algorithms``, cuDNN's
deterministic mode without autotuning, and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` for the run (the torch
flags are restored afterwards). pygan's own kernels are outside torch's switch; on CPU every run is
repeatable anyway.

DDP
===

Under ``torchrun`` (``WORLD_SIZE > 1``) the loop joins the process group (gloo on CPU, nccl on CUDA),
builds the same model on every rank (same seed), wraps the networks in ``DistributedDataParallel``
(``model.distribute``; never ``static_graph=True``, which is silently wrong with a gradient penalty),
gives every rank its own slice of each global batch and its own noise (seed + rank), and lets rank 0
write everything. ``batch_size`` is per process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import glob
import json
import math
import os
import random
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from pygan.amp import amp_dtype, check_amp, make_grad_scaler
from pygan.data.core import Batch, DataInfo, Loader, check_workers
from pygan.data.grid import save_grid, save_points
from pygan.data.registry import DataSpec
from pygan.errors import ConfigError
from pygan.graphs import EagerStep, GraphedStep, LossMonitor, NonFiniteLossError, portable_optimizer_state
from pygan.models import Model, config_from_dict, config_to_dict, get_model, preset_overrides
from pygan.runs import (
    CHECKPOINT_FORMAT,
    NO_CHECKPOINT_YET,
    RUN_FORMAT,
    NoCheckpointError,
    check_new_run_dir,
    clear_failed_start,
    copy_file,
    load_checkpoint,
    read_config,
    run_paths,
    save_checkpoint,
    write_json,
)

__all__ = [
    "DivergenceError",
    "NonFiniteLossError",
    "TrainOptions",
    "TrainingInterrupted",
    "load_config_file",
    "preset_overrides",
    "render_samples",
    "train",
]

# The loop reads the losses back at least this often (the LossMonitor's window).
MAX_READ_INTERVAL = 1000

# TrainOptions.divergence_threshold's default: |loss| above it counts as diverged. The registered
# models' normal losses stay below ~1e4 even at their paper sizes (the largest are summed
# reconstruction terms of the VAEs and the U-Nets); float32 saturation is ~3.4e38.
DIVERGENCE_THRESHOLD = 1e10


def _check_divergence_options(opts) -> None:
    t = opts.divergence_threshold
    if isinstance(t, bool) or not isinstance(t, (int, float)) or math.isnan(t) or t <= 0:
        raise ConfigError(
            f"divergence_threshold (--divergence-threshold) must be a number > 0 (inf: off), got {t!r}"
        )
    opts.divergence_threshold = float(t)
    n = opts.divergence_logs
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"divergence_logs must be an int >= 1, got {n!r}")
    if not isinstance(opts.stop_on_divergence, bool):
        raise ConfigError(f"stop_on_divergence must be a bool, got {opts.stop_on_divergence!r}")


class DivergenceError(NonFiniteLossError):
    """A loss's magnitude stayed above ``divergence_threshold`` for ``divergence_logs`` reads and
    ``stop_on_divergence`` is on: the run stopped as it does on a non-finite loss (a subclass of
    :class:`NonFiniteLossError`; ``loss``, ``value``, ``step`` say which), keeping the last good
    checkpoint."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped :func:`train`. ``signum`` is the signal, ``step`` the last step
    run, ``checkpoint`` the checkpoint that holds it (``None`` when none could be written: a
    second Ctrl-C during the save, or a stop before the first step of a new run). A subclass of
    ``KeyboardInterrupt`` (so ``except Exception`` does not swallow it); ``pygan train`` exits with
    ``128 + signum`` (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, signum: int, checkpoint: str | None = None, step: int | None = None):
        super().__init__(message)
        self.signum, self.checkpoint, self.step = signum, checkpoint, step

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


@dataclass
class TrainOptions:
    """Loop settings (``pygan train`` flags). Model settings live in the model's ``Config``."""

    steps: int
    seed: int = 0
    device: str = "auto"
    amp: bool | str = False  # False, "bf16" (True means the same) or "fp16" (pygan.amp)
    log_every: int = 10
    sample_every: int = 500  # 0: only at the end
    ckpt_every: int = 500  # 0: only at the end
    eval_every: int = 0
    n_samples: int = 64
    keep_checkpoints: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    progress: bool = True
    tensorboard: bool = True
    workers: int | None = None  # image-decoding processes (None: pygan.data.default_workers())
    deterministic: bool = False
    # the divergence watch (module docstring, "Stopping, failing and resuming"): a loss whose
    # magnitude exceeds divergence_threshold at divergence_logs consecutive reads warns once, or
    # stops the run with stop_on_divergence; float("inf") turns the watch off
    divergence_threshold: float = DIVERGENCE_THRESHOLD
    divergence_logs: int = 1
    stop_on_divergence: bool = False

    def __post_init__(self):
        check_workers(self.workers)
        self.amp = check_amp(self.amp)
        check_device(self.device, "device")
        _check_divergence_options(self)
        for k in ("steps", "log_every", "sample_every", "ckpt_every", "eval_every", "n_samples", "seed"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if k in ("steps", "n_samples") else 0):
                raise ConfigError(
                    f"{k} must be an int >= {1 if k in ('steps', 'n_samples') else 0}, got {v!r}"
                )
        for k in ("keep_checkpoints", "compile", "cuda_graphs", "progress", "tensorboard", "deterministic"):
            if not isinstance(getattr(self, k), bool):
                raise ConfigError(f"{k} must be true or false, got {getattr(self, k)!r}")


_DEVICE_FORM = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(device, what: str = "--device") -> str:
    """A device name of the forms pygan runs on: ``auto`` (cuda when available, else cpu), ``cpu``,
    ``cuda``, ``cuda:N``; :class:`~pygan.errors.ConfigError` naming ``what`` otherwise. Returns it."""
    if not isinstance(device, str) or not _DEVICE_FORM.fullmatch(device):
        raise ConfigError(f"{what} must be one of auto, cpu, cuda, cuda:N (N: a GPU index), got {device!r}")
    return device


def _rng_state() -> dict:
    st = np.random.get_state()  # noqa: NPY002 (the legacy global RNG is what user code draws from)
    py = random.getstate()
    out = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": torch.from_numpy(st[1].astype(np.int64)),
            "pos": int(st[2]),
            "has_gauss": int(st[3]),
            "cached": float(st[4]),
        },
        "python": {"version": py[0], "state": list(py[1]), "gauss": py[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def _set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    n = s["numpy"]
    np.random.set_state(  # noqa: NPY002
        ("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    p = s["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def _derived_seed(seed: int, *keys: int) -> int:
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1, np.uint64)[0] % (2**63))


# ---- config files (pygan train --config) ------------------------------------------------------------

# config.json keys that describe a run but are not settings (accepted in a config file and ignored)
_INFO_KEYS = ("format", "pygan_version", "data_info", "world_size", "created")
_CONFIG_KEYS = ("model", "preset", "model_config", "data", "train", *_INFO_KEYS)


def _read_mapping(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path} not found")
    with open(path) as f:
        text = f.read()
    if path.lower().endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError as exc:
            raise ImportError(
                f"config file {path}: reading YAML needs PyYAML (pip install pyyaml, or "
                "pip install 'pygan[yaml]'); or write the file as JSON"
            ) from exc
        try:
            obj = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path}: not valid YAML ({exc})") from exc
    else:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {path}: not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise ConfigError(
            f"config file {path}: expected a mapping at the top level, got {type(obj).__name__}"
        )
    return obj


def _config_value(path: str, model: str, key: str, value, tp):
    """A config file's ``value`` for the Config field ``key`` of type ``tp``, checked (lists become
    tuples; strings are parsed as ``--set`` would)."""
    import typing

    from pygan.models import _is_optional, _parse_value, _type_ok, _type_text

    optional, inner = _is_optional(tp)
    where = f"config file {path}: model {model!r} setting {key}"
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where} cannot be null")
    if isinstance(value, str) and inner is not str and typing.get_origin(inner) is not typing.Literal:
        return _parse_value(key, value, tp)
    if typing.get_origin(inner) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        args = typing.get_args(inner)
        if len(args) == 2 and args[1] is Ellipsis:
            types_ = [args[0]] * len(value)
        elif len(args) == len(value):
            types_ = list(args)
        else:
            raise ConfigError(f"{where} must have {len(args)} items, got {value!r}")
        return tuple(_config_value(path, model, key, v, t) for v, t in zip(value, types_))
    # the registry's own type check (lenient: an int is a float); a Literal is checked against its
    # choices when the Config is built, with the message that lists them
    if typing.get_origin(inner) is not typing.Literal and not _type_ok(value, inner):
        raise ConfigError(f"{where} must be {_type_text(inner)}, got {value!r}")
    return float(value) if inner is float else value


def load_config_file(path: str, model: str | None = None) -> dict:
    """Reads a run configuration for ``pygan train --config FILE``: a JSON file (YAML when the name
    ends in ``.yaml``/``.yml`` and PyYAML is installed) with the keys of a run's ``config.json`` —
    ``model``, ``preset`` (a preset name of the model, the layer under ``model_config``),
    ``model_config`` (the model's Config fields), ``data`` (``{"spec", "spec_b"}`` or a
    spec string) and ``train`` (:class:`TrainOptions` fields) — any of which may be left out;
    ``format``, ``pygan_version``, ``data_info``, ``world_size`` and ``created`` are accepted and
    ignored. A run's own ``config.json`` therefore replays that run.

    Returns ``{"model", "preset" (a name or None), "model_config" (typed values), "data", "data_b",
    "train"}``. ``model`` (the
    name the command line gives) must match the file's when both are given. Unknown keys, settings
    the model does not have and values of the wrong type raise ``ValueError`` naming them.
    """
    import typing

    cfg = _read_mapping(path)
    unknown = sorted(set(cfg) - set(_CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) {unknown}; expected {list(_CONFIG_KEYS)}")
    name = cfg.get("model")
    if name is not None and model is not None and name != model:
        raise ConfigError(f"config file {path} is for model {name!r}, not {model!r}")
    name = name if name is not None else model
    if name is None:
        raise ConfigError(f'config file {path} names no model: add "model" or give it on the command line')
    cls = get_model(name)
    mc = cfg.get("model_config") or {}
    if not isinstance(mc, dict):
        raise ConfigError(f"config file {path}: model_config must be a mapping, got {type(mc).__name__}")
    hints = typing.get_type_hints(cls.Config)
    fields = [f.name for f in dataclasses.fields(cls.Config)]
    for key in mc:
        if key not in fields:
            raise ConfigError(
                f"config file {path}: model {name!r} has no setting {key!r} (its Config fields: {fields})"
            )
    model_config = {k: _config_value(path, name, k, v, hints[k]) for k, v in mc.items()}
    preset = cfg.get("preset")
    if preset is not None:
        if not isinstance(preset, str):
            raise ConfigError(f"config file {path}: preset must be a preset name (a string), got {preset!r}")
        if preset not in cls.PRESETS:
            raise ConfigError(
                f"config file {path}: model {name!r} has no preset {preset!r}; "
                f"choose from {list(cls.PRESETS)}"
            )
    data = cfg.get("data")
    spec = spec_b = None
    if isinstance(data, str):
        spec = data
    elif isinstance(data, dict):
        bad = sorted(set(data) - {"spec", "spec_b"})
        if bad:
            raise ConfigError(f"config file {path}: unknown data key(s) {bad}; expected 'spec', 'spec_b'")
        spec, spec_b = data.get("spec"), data.get("spec_b")
    elif data is not None:
        raise ConfigError(f"config file {path}: data must be a spec string or {{'spec', 'spec_b'}}")
    train_opts = cfg.get("train") or {}
    if not isinstance(train_opts, dict):
        raise ConfigError(f"config file {path}: train must be a mapping, got {type(train_opts).__name__}")
    known = [f.name for f in dataclasses.fields(TrainOptions)]
    bad = sorted(set(train_opts) - set(known))
    if bad:
        raise ConfigError(f"config file {path}: unknown train option(s) {bad}; TrainOptions fields: {known}")
    return {
        "model": name,
        "preset": preset,
        "model_config": model_config,
        "data": spec,
        "data_b": spec_b,
        "train": dict(train_opts),
    }


def render_samples(model: Model, path: str, n: int, generator: torch.Generator, fixed: Batch | None) -> str:
    """Writes ``model.sample(n)`` as a PNG: an image grid; points as a scatter plot; paired data as
    (input, output, target) triples (a model returning several outputs, e.g. ED//GAN's
    (I_ED, I_G, Î), gets them all between input and target); two-domain samples as (A, B) pairs."""
    info = model.info
    out = model.sample(n, generator=generator, batch=fixed)
    if info.kind == "points":
        return save_points(out, path, info.meta.get("centers"))
    parts = list(out) if isinstance(out, (tuple, list)) else [out]
    if info.kind == "paired" and fixed is not None:
        parts = [fixed.x.to(parts[0].device), *parts, fixed.target.to(parts[0].device)]
    c = max(p.shape[1] for p in parts)
    parts = [p.float().expand(-1, c, -1, -1) if p.shape[1] == 1 else p.float() for p in parts]
    if len({tuple(p.shape[-2:]) for p in parts}) > 1:
        size = max(p.shape[-1] for p in parts)
        parts = [torch.nn.functional.interpolate(p, size=(size, size), mode="nearest") for p in parts]
    k = len(parts)
    tiles = torch.stack(parts, 1).flatten(0, 1)  # a0 b0 c0 a1 b1 c1 ...
    per_row = max(1, 8 // k) * k if k > 1 else 8
    scale = max(1, 64 // tiles.shape[-1])
    return save_grid(tiles.cpu(), path, nrow=per_row, scale=scale)


# ---- the loop ------------------------------------------------------------------------------------


_SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}

# Under DDP a SIGINT this soon after the first signal does not abort (torchrun forwards the Ctrl-C).
DDP_SIGNAL_GRACE = 2.0


class _StopSignals:
    """SIGINT/SIGTERM handlers for the duration of :func:`train` (main thread only; the previous
    handlers come back afterwards; a signal the process ignores, e.g. SIGINT in a background job
    of a non-interactive shell, stays ignored).

    The first signal only sets :attr:`signum`; the loop checks it between steps (never inside a
    step, so a CUDA graph replay is never cut), finishes the step, checkpoints and raises
    :class:`TrainingInterrupted`. A SIGINT after that (a second Ctrl-C) raises at once, wherever
    the loop is: a checkpoint being written is abandoned (its temporary file removed; ``last.pt``
    keeps the previous one). A SIGTERM after the first signal is ignored: the stop is under way.
    Under DDP a SIGINT within ``grace`` seconds of the first signal is ignored too: ``torchrun``
    forwards the terminal's Ctrl-C to workers that got it already."""

    def __init__(self, say: bool = True, grace: float = 0.0):
        self.say = say  # rank 0 only under DDP: one line, not one per process
        # a SIGINT within `grace` seconds of the first signal is the same request (under torchrun a
        # Ctrl-C reaches each worker twice: from the terminal, then forwarded by the agent)
        self.grace = grace
        self.t_first = 0.0
        self.signum: int | None = None
        self.good: tuple[str | None, int] = (None, 0)  # (last good checkpoint, its step)
        self._old: dict[int, object] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNAL_NAMES:
                old = signal.getsignal(sig)
                if old is signal.SIG_IGN or old is None:
                    continue
                self._old[sig] = old
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        return False

    def _handle(self, signum, frame):
        name = _SIGNAL_NAMES.get(signum, str(signum))
        if self.signum is None:
            self.signum = signum
            self.t_first = time.monotonic()
            if self.say:
                _say_raw(
                    f"{name}: stopping after the current step and writing a checkpoint "
                    "(Ctrl-C again to abort at once, without it)"
                )
            return
        if signum != signal.SIGINT or time.monotonic() - self.t_first < self.grace:
            return
        path, step = self.good
        kept = f"{path} is the checkpoint of step {step}" if path else "no checkpoint was written"
        raise TrainingInterrupted(
            f"{name} again: aborted at once ({kept})", signum, path, step if path else None
        )


def _say_raw(msg: str) -> None:
    """One line on stderr from a signal handler: an unbuffered write, which cannot collide with a
    buffered write (a progress bar's) that the signal interrupted."""
    try:
        os.write(sys.stderr.fileno(), (msg + "\n").encode())
    except (OSError, ValueError, AttributeError):  # pragma: no cover - stderr closed or replaced
        pass


def _dist_env() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local


def _pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(check_device(name))
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available here (use --device cpu or auto)")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
        if dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def _read_losses(
    monitor: LossMonitor,
    step: int,
    last_good: str | None,
    world: int,
    device: torch.device,
    threshold: float = math.inf,
    signum: int | None = None,
) -> tuple[list[tuple[int, dict[str, float]]], tuple | None, int]:
    """The losses of the steps since the last read (one device-to-host copy), or
    :class:`NonFiniteLossError` when one of them was not finite (on any rank: all stop together).

    Also returns the first ``(loss, value, step)`` whose magnitude exceeds ``threshold`` (``(None,
    None, step)`` when only another rank's did; None when none did) and the stop signal (this
    process's ``signum``; under DDP the largest of every rank's, so that all stop together)."""
    try:
        rows, error = monitor.read(), None
    except NonFiniteLossError as exc:
        rows, error = [], exc
    over = next(((k, v, s) for s, vals in rows for k, v in vals.items() if abs(v) > threshold), None)
    sig = int(signum or 0)
    where = f"the last good checkpoint is {last_good}" if last_good else NO_CHECKPOINT_YET
    if world > 1:  # every rank stops at the same step, for the same reasons
        flags = torch.tensor([1.0 if error else 0.0, 1.0 if over else 0.0, float(sig)], device=device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        bad, any_over, sig = flags.tolist()
        sig = int(sig)
        if bad and error is None:
            raise NonFiniteLossError(
                f"a loss on another rank was not finite by step {step}; stopping ({where})", step=step
            )
        if any_over and over is None:
            over = (None, None, step)
    if error is not None:
        late = f" at step {step}" if error.step != step else ""
        raise NonFiniteLossError(
            f"{error}; stopping{late} ({where})", error.loss, error.value, error.step
        ) from None
    return rows, over, sig


class _DivergenceWatch:
    """TrainOptions.divergence_*: counts the consecutive loss reads with a loss above the threshold
    in magnitude; at ``divergence_logs`` of them it warns once (stderr), or raises
    :class:`DivergenceError` with ``stop_on_divergence``."""

    def __init__(self, opts: TrainOptions, main: bool):
        self.threshold = opts.divergence_threshold
        self.logs = opts.divergence_logs
        self.stop = opts.stop_on_divergence
        self.main = main
        self.streak = 0
        self.first: tuple | None = None
        self.warned = False

    @property
    def holding(self) -> bool:
        """A checkpoint now would hold a state above the threshold, with stop_on_divergence: the
        loop writes none (the last good one stays)."""
        return self.stop and self.streak > 0

    def check(self, over: tuple | None, last_good: str | None, final: bool = False) -> None:
        """``over``: the first ``(loss, value, step)`` of this read above the threshold (None: none
        was). With stop_on_divergence, the last read of the run counts as the end of a streak."""
        if over is None:
            self.streak, self.first = 0, None
            return
        self.streak += 1
        self.first = self.first or over  # the streak's first value above the threshold
        if self.streak < self.logs and not (final and self.stop):
            return
        loss, value, step = self.first
        what = (
            f"loss {loss!r} is {value:.4g} at step {step}"
            if loss is not None
            else f"a loss on another rank, by step {step}, is"
        )
        reads = f" (and at {self.streak} consecutive reads)" if self.streak > 1 else ""
        msg = f"{what} above the divergence threshold {self.threshold:g} in magnitude{reads}"
        if self.stop:
            where = f"the last good checkpoint is {last_good}" if last_good else NO_CHECKPOINT_YET
            raise DivergenceError(f"{msg}; stopping (--stop-on-divergence; {where})", loss, value, step)
        if not self.warned:
            self.warned = True
            if self.main:
                _say(
                    f"warning: {msg}: the run may be diverging (warned once; --stop-on-divergence stops "
                    "it, --divergence-threshold sets the level)"
                )


class _Log:
    """metrics.jsonl, TensorBoard and the progress bar (rank 0 only)."""

    def __init__(self, paths: dict, opts: TrainOptions, start: int, enabled: bool):
        self.enabled = enabled
        self.path = paths["metrics"]
        self.tb = None
        self.bar = None
        if not enabled:
            return
        if start == 0:
            open(self.path, "w").close()
        else:  # drop lines past the checkpoint: they are about to be redone
            keep = []
            if os.path.isfile(self.path):
                with open(self.path) as f:
                    for line in f:
                        try:
                            if json.loads(line).get("step", 0) <= start:
                                keep.append(line)
                        except json.JSONDecodeError:
                            break
            with open(self.path, "w") as f:
                f.writelines(keep)
        self.file = open(self.path, "a")
        if opts.tensorboard:
            self.tb = _tensorboard_writer(paths["tb"], start)
        if opts.progress:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(
                    total=opts.steps, initial=start, unit="it", dynamic_ncols=True, file=sys.stderr
                )
            except ImportError:  # pragma: no cover - tqdm is a dependency
                self.bar = None

    def write(self, step: int, values: dict, **extra) -> None:
        if not self.enabled:
            return
        row = {"step": step, **extra, **values}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)
        if self.bar is not None and not any(k.startswith("eval/") for k in values):
            self.bar.set_postfix(
                {k: f"{v:.4g}" for k, v in values.items() if k != "img_per_s"}, refresh=False
            )

    def image(self, step: int, png_path: str, tag: str = "samples") -> None:
        """The sample grid just written to ``png_path``, as a TensorBoard image (what is on disk:
        the same pixels, a scatter plot for points)."""
        if not self.enabled or self.tb is None:
            return
        from PIL import Image

        with Image.open(png_path) as im:
            a = np.asarray(im.convert("RGB"))
        self.tb.add_image(tag, a, step, dataformats="HWC")
        self.tb.flush()

    def tick(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if not self.enabled:
            return
        self.file.close()
        if self.tb is not None:
            self.tb.close()
        if self.bar is not None:
            self.bar.close()


TENSORBOARD_MISSING = (
    "TensorBoard logging is on (the default) but the tensorboard package is not installed: "
    "pip install tensorboard (or pip install 'pygan[tensorboard]'); --no-tensorboard turns this off. "
    "metrics.jsonl and samples/ are written either way."
)


def _tensorboard_writer(path: str, start: int):
    """A ``SummaryWriter`` on ``path`` (events past ``start`` purged on resume), or None after one
    line on stderr saying that tensorboard is missing and how to install it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        _say(TENSORBOARD_MISSING)
        return None
    return SummaryWriter(path, purge_step=start + 1 if start else None)


def _make_config(model_name, model, data: DataSpec, opts: TrainOptions, world: int, preset=None) -> dict:
    import pygan

    return {
        "format": RUN_FORMAT,
        "pygan_version": pygan.__version__,
        "model": model_name,
        "preset": preset,
        "model_config": config_to_dict(model.config),
        "data": {"spec": data.spec, "spec_b": data.spec_b},
        "data_info": model.info.to_json(),
        "train": dataclasses.asdict(opts),
        "world_size": world,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def train(
    model: str,
    data: str,
    out: str,
    steps: int,
    *,
    data_b: str | None = None,
    overrides: list[str] | dict | None = None,
    resume: bool = False,
    preset: str | None = None,
    **options,
) -> Model:
    """Trains model ``model`` on ``data`` for ``steps`` iterations (total, counting resumed ones),
    writing the run directory ``out`` (see the module docstring). ``overrides`` are ``key=value``
    settings of the model's Config; ``preset`` names one of the model's presets
    (:func:`pygan.models.preset_overrides`), applied under ``overrides`` and recorded in
    ``config.json``; ``options`` are :class:`TrainOptions` fields. With ``resume`` a preset is
    optional; a named one must give the run's settings. Returns the trained model (its plain
    networks; DDP wrappers are dropped). Under ``torchrun`` every rank calls this."""
    if preset is not None:
        overrides = _with_preset(model, preset, overrides, out if resume else None)
    opts = TrainOptions(steps=steps, **options)
    world, rank, local = _dist_env()
    device = _pick_device(opts.device, local)
    if opts.compile and world > 1:
        raise ConfigError("compile=True is not supported with DDP yet; drop --compile or run one process")
    if opts.cuda_graphs:
        if device.type != "cuda":
            raise ConfigError(
                f"cuda_graphs=True (--cuda-graphs) needs a CUDA device; this run is on {device} "
                "(drop --cuda-graphs, or use --device cuda)"
            )
        if opts.compile:
            raise ConfigError("cuda_graphs=True and compile=True do not combine; choose one")
        if world > 1:
            raise ConfigError(
                "cuda_graphs=True is not supported with DDP yet; drop --cuda-graphs or run one process"
            )
    joined = False
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        joined = True
    try:
        with (
            _deterministic(opts.deterministic),
            _StopSignals(say=rank == 0, grace=DDP_SIGNAL_GRACE if world > 1 else 0.0) as stop,
        ):
            result = _train(
                model,
                DataSpec(data, data_b),
                out,
                opts,
                overrides,
                resume,
                world,
                rank,
                device,
                stop,
                preset=preset,
            )
        if joined:
            dist.barrier()  # leave together: a rank tearing gloo down while a peer still sends aborts it
        return result
    finally:
        if joined:
            dist.destroy_process_group()


@contextlib.contextmanager
def _deterministic(on: bool):
    """``deterministic=True`` (``--deterministic``): ``torch.use_deterministic_algorithms(True)``
    (an op without a deterministic implementation raises, naming itself), cuDNN deterministic with
    autotuning off, and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (cuBLAS needs it for reproducible GEMMs on
    CUDA >= 10.2; it must be set before the process's first cuBLAS call: the CLI sets it before
    torch touches CUDA, a library caller should export it). The torch flags are restored afterwards."""
    if not on:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    old = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old[0], warn_only=old[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old[2], old[3]


def _train(
    model_name,
    spec: DataSpec,
    out,
    opts: TrainOptions,
    overrides,
    resume,
    world,
    rank,
    device,
    stop=None,
    preset=None,
):
    paths = run_paths(out)
    main = rank == 0
    cls = get_model(model_name)
    stop = stop if stop is not None else _StopSignals()  # (not installed: never set)

    ckpt = None
    restart = False
    if resume:
        cfg = read_config(out)
        config = _resume_config(cfg, cls, model_name, spec, opts, overrides, out)
        if not os.path.isfile(paths["last"]):
            raise NoCheckpointError(
                f"--resume: {out} holds no checkpoint ({paths['last']} not found): its start failed "
                "before the first checkpoint, so there is nothing to resume; run the same command "
                "without --resume to start it again"
            )
        ckpt = load_checkpoint(paths["last"], map_location="cpu")  # RNG states must stay on CPU
        if opts.steps <= int(ckpt["step"]):
            return _already_done(cls, config, cfg, ckpt, out, opts, main)
    else:
        restart = check_new_run_dir(out, paths)
        config = cls.Config(**_overrides(cls, overrides or []))
    if world > 1:
        dist.barrier()  # every rank has checked the run directory before rank 0 writes to it

    train_data = spec.load("train")
    test_data = None
    if main:
        try:
            test_data = spec.load("test")
        except (ValueError, FileNotFoundError):
            test_data = train_data
    if device.type == "cuda" and train_data.x is not None:
        train_data.to(device)

    _seed_everything(opts.seed)
    model = cls(config, train_data.info).to(device)
    model.optimizers = model.configure_optimizers()
    model.make_ema()  # the generator EMA when config.ema_decay > 0 (None otherwise)
    scaler = make_grad_scaler(opts.amp, device)  # --amp fp16 only
    loader = Loader(
        train_data,
        model.batch_size * model.batches_per_step,
        seed=opts.seed,
        rank=rank,
        world_size=world,
        device=device,
        workers=opts.workers,
    )

    start = 0
    rng_states = None
    if resume:
        model.load_state_dict(ckpt["model"])
        for k, opt in model.optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][k])
        loader.load_state_dict(ckpt["loader"])
        _resume_extras(model, scaler, ckpt, paths["last"])
        start = int(ckpt["step"])
        rng_states = ckpt["rng"]
        del ckpt
    elif main:
        if restart:
            _say(
                f"{out}: its previous start failed before the first checkpoint (config.json, no "
                "checkpoint); starting the run again in it"
            )
            clear_failed_start(paths)
        os.makedirs(paths["checkpoints"], exist_ok=True)
        # written once the data and the model are built; a run that fails before its first
        # checkpoint leaves this without checkpoints/last.pt, which the same command restarts
        write_json(paths["config"], _make_config(model_name, model, spec, opts, world, preset))
    if main:
        for stale in glob.glob(os.path.join(paths["checkpoints"], ".*.tmp")):
            os.unlink(stale)  # left by a process killed mid-save

    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        model.distribute(lambda m: DDP(m, device_ids=ids))
    if opts.compile:
        model.compile_networks()

    if rng_states is not None and rank < len(rng_states):
        _set_rng_state(rng_states[rank])
    else:
        _seed_everything(_derived_seed(opts.seed, 1, rank))

    log = _Log(paths, opts, start, main)
    fixed = test_data.fixed(opts.n_samples) if test_data is not None else None
    last_good = paths["last"] if resume else None
    stop.good = (last_good, start)
    watch = _DivergenceWatch(opts, main)
    window = min(k for k in (opts.log_every, opts.ckpt_every, MAX_READ_INTERVAL) if k)
    monitor = LossMonitor(window, start)
    autocast_dtype = amp_dtype(opts.amp)
    model.train()
    if opts.cuda_graphs:
        runner = GraphedStep(
            model, monitor, device, autocast_dtype, say=_say if main else lambda _: None, scaler=scaler
        )
    else:
        runner = EagerStep(model, monitor, device, autocast_dtype, scaler=scaler)
    step = start
    t_last, n_last = time.perf_counter(), 0
    t0 = t_last
    try:
        if stop.signum is not None and world == 1:  # a signal while the data and model were built
            raise _interrupted(stop.signum, last_good, step, start, wrote=False)
        while step < opts.steps:
            batch = loader.next()
            runner(batch, step)  # the iteration's index, 0-based
            step += 1
            n_last += 1
            final = step == opts.steps
            log_now = bool(opts.log_every) and (step % opts.log_every == 0 or final)
            ckpt_now = bool(opts.ckpt_every and step % opts.ckpt_every == 0) or final
            # one process checks for a stop signal after every step; DDP ranks at the loss reads
            # (one collective decides for all, so they stop at the same step)
            stop_seen = world == 1 and stop.signum is not None
            signum = 0
            if log_now or ckpt_now or stop_seen or monitor.count - monitor.read_count >= window:
                rows, over, signum = _read_losses(
                    monitor, step, last_good, world, device, watch.threshold, stop.signum
                )
                watch.check(over, last_good, final)
                log.tick(len(rows))
                if log_now:
                    now = time.perf_counter()
                    ips = n_last * len(batch) * world / max(now - t_last, 1e-9)
                    logs = rows[-1][1] if rows else {}
                    log.write(step, {**logs, "img_per_s": ips}, time=round(now - t0, 3))
                    t_last, n_last = now, 0
            if signum and not final:
                if not watch.holding:
                    _checkpoint(model, loader, step, paths, opts, world, main, scaler)
                    last_good = paths["last"]
                    stop.good = (last_good, step)
                raise _interrupted(signum, last_good, step, stop.good[1], wrote=not watch.holding)
            if main and (final or (opts.sample_every and step % opts.sample_every == 0)):
                g = torch.Generator(device=device).manual_seed(_derived_seed(opts.seed, 2))
                with model.ema_applied():  # the grid shows the EMA weights when there is an EMA
                    p = render_samples(
                        model,
                        os.path.join(paths["samples"], f"step_{step:07d}.png"),
                        opts.n_samples,
                        g,
                        fixed,
                    )
                copy_file(p, os.path.join(paths["samples"], "last.png"))
                log.image(step, p)
            if main and opts.eval_every and (step % opts.eval_every == 0 or final) and test_data is not None:
                g = torch.Generator(device=device).manual_seed(_derived_seed(opts.seed, 3, step))
                res = model.evaluate(test_data, g)
                if res:
                    log.write(step, {f"eval/{k}": float(v) for k, v in res.items()})
            if ckpt_now:
                if watch.holding:  # above the divergence threshold, not yet for divergence_logs reads
                    if main:
                        _say(
                            f"checkpoint of step {step} not written: a loss is above the divergence "
                            f"threshold ({last_good or 'no checkpoint yet'} stays the last good one)"
                        )
                else:
                    _checkpoint(model, loader, step, paths, opts, world, main, scaler)
                    last_good = paths["last"]
                    stop.good = (last_good, step)
    finally:
        log.close()
        loader.close()  # the decoding workers end with the run, also when it fails
    model._wrapped.clear()
    model.train_stats = {
        "steps_run": step - start,
        "step_mode": runner.mode if runner.reason is None else "eager",
        "eager_reason": runner.reason,
        "graph_replays": getattr(runner, "replays", 0),
    }
    return model


def _interrupted(signum: int, last_good: str | None, step: int, good_step: int, wrote: bool):
    """The :class:`TrainingInterrupted` of a stop after ``step`` (``wrote``: a checkpoint of it was
    just written)."""
    name = _SIGNAL_NAMES.get(signum, f"signal {signum}")
    at = "before the first step" if step == 0 else f"after step {step}"
    if last_good is None:
        return TrainingInterrupted(
            f"{name}: stopped {at}, before any checkpoint ({NO_CHECKPOINT_YET})",
            signum,
            None,
            step,
        )
    if wrote:
        where = f"checkpoint of step {step} written to {last_good}"
    else:  # held back by the divergence watch, or stopped before the first step of a resumed run
        where = f"{last_good} holds step {good_step}"
    return TrainingInterrupted(
        f"{name}: stopped {at}; {where}; continue with --resume", signum, last_good, good_step
    )


# TrainOptions whose change would make a resumed run differ from an uninterrupted one (the data
# order and noise come from the seed, the arithmetic from amp); the others (logging, checkpoints,
# speed modes) may change between a run's sessions.
_RESUME_KEYS = ("seed", "amp")


def _resume_config(cfg: dict, cls, model_name: str, spec: DataSpec, opts: TrainOptions, overrides, out):
    """The run's Config (``config.json``), after checking that this call asks for the same run:
    model, data, the model settings ``overrides`` gives and the TrainOptions that shape the run
    (:data:`_RESUME_KEYS`). Every difference is named with both values, in one ValueError."""
    diffs = []
    if cfg["model"] != model_name:
        diffs.append(f"model: {cfg['model']!r} in the run, {model_name!r} now")
    data = cfg.get("data") or {}
    for key, now in (("spec", spec.spec), ("spec_b", spec.spec_b)):
        if data.get(key) != now:
            diffs.append(f"data {key}: {data.get(key)!r} in the run, {now!r} now")
    config = None
    if cfg["model"] == model_name:
        config = config_from_dict(cls.Config, cfg["model_config"])
        if overrides:
            new = dataclasses.replace(config, **_overrides(cls, overrides))
            was, now = config_to_dict(config), config_to_dict(new)
            diffs += [f"{k}: {was[k]!r} in the run, {now[k]!r} now" for k in was if was[k] != now[k]]
    run_train = cfg.get("train") or {}
    defaults = {f.name: f.default for f in dataclasses.fields(TrainOptions)}
    for key in _RESUME_KEYS:
        was, now = run_train.get(key, defaults[key]), getattr(opts, key)
        if key == "amp":
            was = check_amp(was)
        if was != now:
            diffs.append(f"{key}: {was!r} in the run, {now!r} now")
    if diffs:
        raise ConfigError(
            f"--resume: {out} was trained with other settings: {'; '.join(diffs)} (use the run's "
            "settings to continue it, or another --out for a new run)"
        )
    return config


def _already_done(cls, config, cfg: dict, ckpt: dict, out: str, opts: TrainOptions, main: bool) -> Model:
    """``--steps`` at or below the checkpoint's step: nothing to train. Says so (one line) and
    returns the checkpoint's model (built from config.json's DataInfo, without the data), touching
    no file."""
    at = int(ckpt["step"])
    if main:
        _say(
            f"{out} is already at step {at} (--steps {opts.steps}): nothing to do; raise --steps to continue"
        )
    torch.manual_seed(opts.seed)
    model = cls(config, DataInfo.from_json(cfg["data_info"]))
    model.load_state_dict(ckpt["model"])
    model.train_stats = {
        "steps_run": 0,
        "step_mode": None,
        "eager_reason": None,
        "graph_replays": 0,
        "already_at": at,
    }
    return model


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _with_preset(model_name: str, preset: str, overrides, resume_dir: str | None) -> dict:
    """``overrides`` on top of the preset ``preset``, as one dict of every Config field (so that a
    resumed run compares all of them, not only the preset's keys). On resume (``resume_dir``), a
    preset that does not give the run's settings raises, naming each differing field."""
    from pygan.errors import ConfigError

    cls = get_model(model_name)
    settings = {**preset_overrides(model_name, preset), **_overrides(cls, overrides or [])}
    full = dataclasses.asdict(cls.Config(**settings))
    path = run_paths(resume_dir)["config"] if resume_dir is not None else None
    if path is not None and os.path.isfile(path):
        cfg = read_config(resume_dir)
        run = dataclasses.asdict(config_from_dict(cls.Config, cfg["model_config"]))
        diff = [f"{k}={run[k]!r} (run) vs {full[k]!r}" for k in full if k in run and run[k] != full[k]]
        if diff:
            raise ConfigError(
                f"--resume: --preset {preset} does not give the settings of {resume_dir} (started with "
                f"preset {cfg.get('preset')!r}): {', '.join(diff)}; resume without --preset, or with "
                "the run's own"
            )
    return full


def _overrides(cls, overrides):
    from pygan.models import parse_overrides

    return parse_overrides(cls.Config, overrides)


def _resume_extras(model: Model, scaler, ckpt: dict, path: str) -> None:
    """Restores what a checkpoint holds beside the model and optimizers: the generator EMA and the
    float16 gradient scaler's state (its scale and growth counter), so a resumed run continues both
    exactly."""
    if model.ema is not None:
        if "ema" not in ckpt:
            raise ValueError(
                f"--resume: {path} holds no generator EMA, but the run's config has ema_decay > 0"
            )
        model.ema.load_state_dict(ckpt["ema"])
    if scaler is not None and ckpt.get("grad_scaler"):
        scaler.load_state_dict(ckpt["grad_scaler"])


def _checkpoint(
    model: Model,
    loader: Loader,
    step: int,
    paths: dict,
    opts: TrainOptions,
    world: int,
    main: bool,
    scaler=None,
):
    states = [_rng_state()]
    if world > 1:
        states = [None] * world
        dist.all_gather_object(states, _rng_state())
    if main:
        state = {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "model": model.state_dict(),
            "optimizers": {k: portable_optimizer_state(o) for k, o in model.optimizers.items()},
            "loader": loader.state_dict(),
            "rng": states,
            "world_size": world,
            "model_name": model.name,
            "time": time.time(),
        }
        if model.ema is not None:
            state["ema"] = model.ema.state_dict()
        if scaler is not None:
            state["grad_scaler"] = scaler.state_dict()
        save_checkpoint(state, paths["last"])
        if opts.keep_checkpoints:
            copy_file(paths["last"], os.path.join(paths["checkpoints"], f"step_{step:07d}.pt"))
    if world > 1:
        dist.barrier()
