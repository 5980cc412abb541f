"""Run directories: their layout, ``config.json``, checkpoints (written atomically) and
:func:`load_run`, which rebuilds a run's trained model (so this module sits above
:mod:`pygan.models`; :mod:`pygan.train` writes runs, :mod:`pygan.evaluate`, :mod:`pygan.export` and
:mod:`pygan.cli` read them).

Run directory (``--out RUN``)
=============================

::

    RUN/
      config.json            what the run is (written once, when the data and model are built; see below)
      checkpoints/last.pt    the latest checkpoint (atomic: temp file, fsync, rename)
      checkpoints/step_<7 digits>.pt   kept copies, with --keep-checkpoints
      samples/step_<7 digits>.png      sample grid every --sample-every steps and at the end (fixed noise;
                             the generator EMA's weights when the model keeps one)
      samples/last.png       the latest grid
      metrics.jsonl          one JSON object per line: {"step", "time" (s since this process began
                             training), <losses>, "img_per_s"} every --log-every steps and
                             {"step", "eval/<name>": ...} every --eval-every steps
      tb/                    TensorBoard scalars and the sample grids (when tensorboard is installed;
                             when it is not, one line on stderr says so and how to install it)
      metrics.json           written by ``pygan eval RUN`` (pygan.evaluate.evaluate_run)

``config.json``::

    {"format": "pygan-run-1", "pygan_version": ..., "model": "wgan-gp", "preset": "small" (or null),
     "model_config": {dataclass fields}, "data": {"spec": "digits32", "spec_b": null},
     "data_info": {DataInfo: kind, shape, target_shape, shape_b, num_classes, meta},
     "train": {TrainOptions fields}, "world_size": 1, "created": "<ISO time>"}

``preset`` is the name of the model preset the run started from (``--preset``; null when none was
named); ``model_config`` is the resolved configuration (defaults, then the preset, then ``--set``),
which is what ``--resume``, ``pygan sample`` and ``pygan eval`` read.

A checkpoint (``torch.load(path, weights_only=True)`` reads it) is a dict: ``format``, ``step``,
``model`` (the model's ``state_dict``; the same keys with or without DDP), ``optimizers`` (name ->
``state_dict``), ``loader`` (the data stream position), ``rng`` (one entry per rank: torch CPU and
CUDA, numpy and python states), ``world_size``, ``model_name``, ``time``; with ``ema_decay > 0``
also ``ema`` (:meth:`pygan.models.EMA.state_dict`: the averaged parameters under their state-dict
names and the update count), with ``--amp fp16`` also ``grad_scaler`` (the scaler's scale and growth
counter).

``config.json`` is also a config file: ``pygan train --config RUN/config.json --out NEW`` replays the
run (:func:`pygan.train.load_config_file`; on CPU the losses are bitwise the same at the same ``--threads``,
which is a process setting and not recorded).

:func:`load_run` rebuilds the trained model from a run directory without loading the data (the
DataInfo is in ``config.json``): ``model, config, data = load_run(RUN)``; ``data.load("test")``
gives the test split when the data is present. This is what ``pygan sample``/``pygan eval`` and
``pygan.evaluate.evaluate_run`` use.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile

import torch

from pygan.data import DataSpec
from pygan.data.core import DataInfo
from pygan.models import Model, config_from_dict, get_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "NO_CHECKPOINT_YET",
    "RUN_FORMAT",
    "NoCheckpointError",
    "build_run_model",
    "check_new_run_dir",
    "clear_failed_start",
    "copy_file",
    "load_checkpoint",
    "load_run",
    "read_config",
    "run_paths",
    "save_checkpoint",
    "write_json",
]

RUN_FORMAT = "pygan-run-1"
CHECKPOINT_FORMAT = "pygan-checkpoint-1"

# What a stop before the first checkpoint says (NoCheckpointError and the loop's messages).
NO_CHECKPOINT_YET = "no checkpoint was written yet; the same command, without --resume, starts the run again"


class NoCheckpointError(FileNotFoundError):
    """``resume=True`` on a run directory whose start failed before its first checkpoint: there is
    nothing to resume; the same command without ``--resume`` starts the run again."""


def run_paths(run_dir: str) -> dict[str, str]:
    """The paths of a run directory's parts (see the module docstring)."""
    return {
        "config": os.path.join(run_dir, "config.json"),
        "checkpoints": os.path.join(run_dir, "checkpoints"),
        "last": os.path.join(run_dir, "checkpoints", "last.pt"),
        "samples": os.path.join(run_dir, "samples"),
        "metrics": os.path.join(run_dir, "metrics.jsonl"),
        "tb": os.path.join(run_dir, "tb"),
        "eval": os.path.join(run_dir, "metrics.json"),
    }


# ---- checkpoints ---------------------------------------------------------------------------------


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _mkstemp(path: str) -> tuple[int, str]:
    """A temporary file beside ``path``, with the permissions a plain ``open`` would give."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=d)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    return fd, tmp


def _atomic_write(path: str, mode: str, write_fn) -> None:
    """Writes ``path`` atomically: ``write_fn(f)`` fills a temporary file beside it (opened with
    ``mode``), which is flushed, fsynced and ``os.replace``d over ``path``, then the folder is fsynced.
    A crash at any moment leaves either the old or the new file at ``path``, never a partial one; on
    an error (or an interrupt) the temporary file is removed."""
    fd, tmp = _mkstemp(path)
    try:
        with os.fdopen(fd, mode) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def save_checkpoint(state: dict, path: str) -> str:
    """Writes ``state`` with ``torch.save`` atomically (:func:`_atomic_write`: a temporary file in the
    same folder, flushed and fsynced, then ``os.replace``d over ``path``, and the folder fsynced). A
    crash at any moment leaves either the old or the new file at ``path``, never a partial one."""
    _atomic_write(path, "wb", lambda f: torch.save(state, f))
    return path


def load_checkpoint(path: str, map_location="cpu") -> dict:
    """Reads a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no checkpoint here (expected a file written by pygan train)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable pygan checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a pygan checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return ckpt


# ---- config.json -------------------------------------------------------------------------------


def write_json(path: str, obj) -> None:
    """Writes ``obj`` as indented JSON to ``path`` atomically (:func:`_atomic_write`)."""

    def dump(f) -> None:
        json.dump(obj, f, indent=2)
        f.write("\n")

    _atomic_write(path, "w", dump)


def read_config(run_dir: str) -> dict:
    """``config.json`` of a run directory, checked."""
    path = run_paths(run_dir)["config"]
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: not found; {run_dir} is not a pygan run directory (pygan train --out)"
        )
    with open(path) as f:
        try:
            cfg = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if cfg.get("format") != RUN_FORMAT:
        raise ValueError(f"{path}: expected a pygan run config (format {RUN_FORMAT!r})")
    return cfg


# ---- reading a run back ---------------------------------------------------------------------------


def build_run_model(cfg: dict) -> Model:
    """The untrained model a run config (``config.json``, or the config an exported file carries)
    describes: the registered model class built from its ``model_config`` for its ``data_info``
    (parameters initialised from seed 0), with ``model.run_config = cfg``. :func:`load_run` and
    :func:`pygan.export.load_generator` load weights into it."""
    cls = get_model(cfg["model"])
    config = config_from_dict(cls.Config, cfg["model_config"])
    info = DataInfo.from_json(cfg["data_info"])
    torch.manual_seed(0)
    model = cls(config, info)
    model.run_config = cfg
    return model


def load_run(
    run_dir: str, device: str | torch.device = "cpu", checkpoint: str | None = None, ema: bool = True
):
    """Rebuilds a run's trained model: returns ``(model, config, data)``.

    ``model`` is the registered model class built from ``config.json`` with the checkpoint's weights
    (``checkpoints/last.pt`` unless ``checkpoint`` names another file), on ``device``, in eval mode;
    ``config`` its ``Config`` dataclass; ``data`` a :class:`pygan.data.DataSpec` (``data.load("test")``
    loads the test split; ``data.info`` is the DataInfo the model was built for). Optimizers are not
    restored.

    With ``ema=True`` (the default) and a checkpoint that holds a generator EMA (``ema_decay > 0``),
    the output networks get the averaged weights; ``ema=False`` keeps the trained (raw) ones.
    ``model.weights`` says which (``"ema"`` or ``"raw"``); ``model.run_config`` is ``config.json``.
    """
    cfg = read_config(run_dir)
    model = build_run_model(cfg)
    config, info = model.config, model.info
    path = checkpoint or run_paths(run_dir)["last"]
    ckpt = load_checkpoint(path)
    model.load_state_dict(ckpt["model"])
    model.weights = _apply_checkpoint_ema(model, ckpt, path) if ema else "raw"
    model.to(torch.device(device)).eval()
    model.trained_steps = int(ckpt["step"])
    return model, config, DataSpec(cfg["data"]["spec"], cfg["data"].get("spec_b"), info)


def _apply_checkpoint_ema(model: Model, ckpt: dict, path: str) -> str:
    """Copies a checkpoint's generator-EMA weights into ``model``'s output networks; returns
    ``"ema"``, or ``"raw"`` when the checkpoint holds no EMA."""
    state = ckpt.get("ema")
    if not state:
        return "raw"
    sd = model.state_dict()
    params = state.get("params", {}) if isinstance(state, dict) else {}
    unknown = sorted(set(params) - set(sd))
    if unknown:
        raise ValueError(f"{path}: the EMA weights name parameters the model does not have: {unknown[:3]}")
    with torch.no_grad():
        for k, v in params.items():
            sd[k].copy_(v)
    return "ema"


# ---- starting a run in a folder -----------------------------------------------------------------

# pygan's own files in a run directory (what a failed start may have left; nothing else is removed)
_OWN_FILES = (
    ("samples", "step_*.png"),
    ("samples", "last.png"),
    ("samples", ".last.png.*.tmp"),  # copy_file's temporary file (_mkstemp's name)
    ("samples", "*.png.tmp"),  # the fixed temporary name older versions of copy_file used
    ("tb", "events.out.tfevents.*"),
    ("checkpoints", ".*.tmp"),
    ("", ".config.json.*.tmp"),  # write_json's temporary file
)


def check_new_run_dir(out: str, paths: dict) -> bool:
    """For a new run in ``out``: raises when it holds a run with a checkpoint; returns True when
    it holds a failed start (``config.json`` but no checkpoint), which the run then replaces."""
    if os.path.isfile(paths["last"]):
        raise FileExistsError(f"{out} already holds a run; use --resume to continue it, or another --out")
    if not os.path.isfile(paths["config"]):
        return False
    kept = sorted(glob.glob(os.path.join(paths["checkpoints"], "*.pt")))
    if kept:  # kept copies (--keep-checkpoints) without last.pt: a run, not a failed start
        raise FileExistsError(
            f"{out} already holds a run's checkpoints ({os.path.basename(kept[-1])}, no last.pt); copy "
            "the one to continue from to checkpoints/last.pt and use --resume, or use another --out"
        )
    return True


def clear_failed_start(paths: dict) -> None:
    """Removes what a failed start wrote (samples, TensorBoard events, temporary files; config.json
    and metrics.jsonl are rewritten by the new start), and nothing else."""
    run = os.path.dirname(paths["config"])
    for sub, pattern in _OWN_FILES:
        for f in glob.glob(os.path.join(run, sub, pattern)):
            os.unlink(f)


def copy_file(src: str, dst: str) -> None:
    """Copies ``src`` to ``dst`` atomically (:func:`_atomic_write`; a reader of ``dst`` never sees a
    partial file)."""
    with open(src, "rb") as f:
        _atomic_write(dst, "wb", lambda g: shutil.copyfileobj(f, g))
