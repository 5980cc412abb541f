"""Models: one file per system, a registry by name, and the contract the training loop relies on.

The model contract
==================

A model is an ``nn.Module`` subclass of :class:`Model`, registered with ``@register("name")``. It
owns all of its networks, optimizers and update rules; the loop (:mod:`pygan.train`) owns device,
seed, bf16 autocast, DDP, logging, checkpoints, sample grids and evaluation hooks.

``Config`` (class attribute)
    A ``@dataclass`` whose defaults are the paper's numbers where the paper states them (say so in
    its docstring, with the section). It must have ``batch_size: int``. Every field can be set from
    the CLI with ``--set key=value``, parsed by the field's type (int, float, bool, str, tuple,
    ``X | None``; see :func:`parse_overrides`). It is saved in the run's ``config.json``.

``PRESETS`` (class attribute, next to ``Config``)
    Named sets of Config overrides, ``{"paper": {}, "small": {"width": 32, ...}}``, chosen with
    ``pygan train MODEL --preset NAME`` (``--set`` applies after the preset) or
    :func:`preset_overrides`. ``paper`` is required and empty (the Config defaults); ``small`` is a
    CPU-sized configuration that trains to something recognisable in minutes (every built-in model
    has one; their values come from the measured runs of ``docs/experiments``). Checked at
    registration: every key a Config field, every value of the field's type (:func:`check_presets`).

``__init__(self, config, info: DataInfo)``
    Builds the networks for the data described by ``info`` (:class:`pygan.data.DataInfo`: ``kind``,
    per-sample ``shape``, ``target_shape``, ``num_classes``, ``meta``). Raise ``ValueError`` for data
    the model cannot handle. ``data_kinds`` (class attribute) lists the kinds it accepts:
    ``"images"``, ``"points"``, ``"paired"`` (image-to-image: ``batch.x`` -> ``batch.target``),
    ``"two-domain"`` (unpaired ``batch.x`` from domain A, ``batch.x_b`` from domain B).
    ``default_data`` (class attribute) names the dataset ``pygan bench`` and the docs use.

``configure_optimizers(self) -> dict[str, torch.optim.Optimizer]``
    Called once by the loop after the model is on its device; the result is stored in
    ``self.optimizers`` and checkpointed. Several networks, several optimizers: name them
    (``{"critic": ..., "generator": ...}``).

``training_step(self, batch: Batch) -> dict[str, Tensor]``
    Performs the model's *whole* update for one iteration — every network, every inner step (e.g.
    5 critic updates then 1 generator update) — with ``self.update(name, loss)`` or its own
    ``zero_grad/backward/step``, and returns the losses to log as detached 0-dim tensors (Python
    numbers are accepted for constants), the same names every step. The loop keeps them on the device
    and reads them back every ``--log-every`` steps (and before every checkpoint); it stops with a
    message naming the loss and the step when one was not finite. Models that consume several
    real batches per iteration set ``batches_per_step``: the loop then passes ``batches_per_step``
    batches stacked into one and ``batch.split(self.batches_per_step)`` gives them back.
    For DDP, forward the networks being *updated* through ``self.wrapped(name)`` (the DDP wrapper when
    distributed, the plain module otherwise) and networks only *read* (frozen, ``no_grad``) through
    the plain attribute; never ``static_graph=True`` with a gradient penalty. The loop wraps every
    direct child module that has trainable parameters (``ddp_networks()``): give pretrained, never
    updated networks (a VGG for a perceptual loss, a fixed classifier) ``requires_grad_(False)``, or
    override ``ddp_networks``. A network whose forward leaves some parameters unused in a step needs
    ``find_unused_parameters`` — override ``distribute`` for it.

``sample(self, n, generator=None, batch=None) -> Tensor | tuple[Tensor, ...]``
    ``n`` outputs in [-1, 1] (``[n, C, H, W]``; ``[n, D]`` for points), drawing noise from
    ``generator`` (a seeded ``torch.Generator``, so grids are comparable over training). Conditional
    and image-to-image models translate ``batch`` (a fixed held-out :class:`Batch` of ``n`` rows the
    loop passes). Two-domain models return a tuple ``(images_A, images_B)`` (same ``z``); the loop
    tiles the parts side by side. Run networks in eval mode and restore the mode afterwards.

``evaluate(self, data: Dataset, generator) -> dict[str, float]`` (optional)
    Cheap in-training metrics on the test split (the loop logs them as ``eval/<name>`` every
    ``--eval-every`` steps, rank 0 only; use ``generator`` for any randomness so that evaluating does
    not change the training run). Heavy metrics live in :mod:`pygan.metrics` (``pygan eval RUN``).

``compile_networks(self) -> list[str]`` (optional)
    ``torch.compile`` what can be compiled (e.g. the generator; never a critic whose double backward
    a gradient penalty needs) and return the names compiled. Used by ``--compile`` and the bench.

Capturable steps (``--cuda-graphs``)
    The loop can capture ``training_step`` once as a CUDA graph and replay it for every later batch
    (:mod:`pygan.graphs`). A step is capturable when it
    (1) never reads a device value on the host: no ``.item()``, ``float(t)``, ``bool(t)`` /
    ``if t > 0``, ``.tolist()``, ``.cpu()``, printing, ``nonzero``/boolean-mask indexing (losses go to
    the loop as tensors; a quantity derived from the step count lives in a device buffer, e.g. a KL
    ramp);
    (2) runs the same host code every iteration, with static shapes; a model whose host code depends on
    the iteration (lazy regularisation) reads ``self.iteration`` (the 0-based iteration the loop is
    running, set before every call) and names each variant with :meth:`Model.graph_phase`, so that one
    graph per phase is captured;
    (3) draws randomness from torch's default generator on the model's device (``torch.randn(...,
    device=...)``, ``rand_like``, dropout), never from a CPU generator or a copy from the host;
    (4) updates parameters only through the optimizers ``configure_optimizers`` returns (Adam and
    friends are switched to ``capturable=True`` by the loop).
    The loop checks (1) during the warm-up iterations; a model that cannot meet the contract in some
    configuration says why in :meth:`Model.cuda_graph_blocker`. Either way the run continues eagerly
    with one line saying why.

``generator_networks`` (class attribute)
    Names (dotted for nested modules, e.g. ``"acl.code_generator"``) of the networks that make the
    model's outputs — what ``sample``, ``reconstruct`` and ``translate`` run; never a critic or
    discriminator. Names a configuration does not build are skipped. Their parameters are what the
    generator EMA averages (``ema_decay``, below) and what ``pygan export`` writes.

Generator EMA (``ema_decay``, ``ema_rampup`` Config fields)
    A model whose ``Config`` has ``ema_decay > 0`` gets an exponential moving average of the
    parameters of its ``generator_networks`` (:class:`EMA`), updated by the loop after every
    iteration, checkpointed and restored with ``--resume``; sample grids, ``pygan sample``,
    ``pygan eval`` and ``pygan export`` use the averaged weights unless told ``--no-ema``.
    ``ema_decay = 0`` (the papers' setting, the default) keeps no average.

Mixed precision
    Under ``--amp fp16`` the loop installs a gradient scaler (:mod:`pygan.amp`);
    :meth:`Model.update` goes through it. A model that runs its own ``backward``/``step`` uses
    :func:`pygan.amp.scaled_backward`, :func:`pygan.amp.unscale_grads` (before reading gradients) and
    :func:`pygan.amp.optimizer_step` instead (no-ops without a scaler).

Randomness comes from torch's global RNG (or from generators the model checkpoints itself through
``get_extra_state``), which the loop seeds per rank and checkpoints, so ``--resume`` continues the
exact loss curve on CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from pygan.amp import optimizer_step, scaled_backward
from pygan.data.core import Batch, DataInfo, Dataset
from pygan.errors import ConfigError

__all__ = [
    "BETAS",
    "COUNT",
    "DROPOUT_LEVELS",
    "EMA",
    "EMA_DECAY",
    "EMA_RAMPUP",
    "FIELD_RULES",
    "GP_EVERY",
    "LAYERS",
    "LR",
    "MODELS",
    "WEIGHT",
    "LazyPenalty",
    "Model",
    "ModelConfig",
    "Range",
    "as_floats",
    "batch_size_field",
    "betas_field",
    "build_model",
    "check_config",
    "check_presets",
    "config_field_docs",
    "config_from_dict",
    "config_to_dict",
    "ema_decay_field",
    "ema_rampup_field",
    "eval_mode",
    "field_choices",
    "field_rule",
    "frozen",
    "get_model",
    "knob",
    "lazy_schedule",
    "list_models",
    "list_presets",
    "lr_field",
    "parse_overrides",
    "preset_overrides",
    "register",
]

MODELS: dict[str, type[Model]] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: registers a :class:`Model` subclass under ``name`` (checks its contract)."""

    def deco(cls):
        if not (isinstance(cls, type) and issubclass(cls, Model)):
            raise TypeError(f"@register({name!r}) needs a pygan.models.Model subclass, got {cls!r}")
        cfg = getattr(cls, "Config", None)
        if cfg is None or not dataclasses.is_dataclass(cfg):
            raise TypeError(f"{cls.__name__}.Config must be a dataclass")
        if "batch_size" not in {f.name for f in dataclasses.fields(cfg)}:
            raise TypeError(f"{cls.__name__}.Config needs a batch_size field")
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"a model named {name!r} is already registered ({MODELS[name].__name__})")
        check_presets(cls, name)
        cls.name = name
        MODELS[name] = cls
        return cls

    return deco


def get_model(name: str) -> type[Model]:
    """The registered model class ``name``."""
    _load_builtin()
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; registered models: {sorted(MODELS)}")
    return MODELS[name]


def list_models() -> list[str]:
    _load_builtin()
    return sorted(MODELS)


def _load_builtin() -> None:
    """Imports every module of this package (each registers its models), once."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


# ---- configs ---------------------------------------------------------------------------------------


def _is_optional(tp) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _parse_value(key: str, text: str, tp) -> Any:
    optional, tp = _is_optional(tp)
    s = text.strip()
    if optional and s.lower() in ("none", "null", ""):
        return None
    origin = typing.get_origin(tp)
    try:
        if tp is bool:
            if s.lower() in ("1", "true", "yes", "on"):
                return True
            if s.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            return int(s)
        if tp is float:
            return float(s)
        if tp is str:
            return s
        if origin is tuple:
            args = typing.get_args(tp)
            parts = [p for p in s.strip("()[] ").split(",") if p.strip()]
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_parse_value(key, p, args[0]) for p in parts)
            if len(parts) != len(args):
                raise ValueError
            return tuple(_parse_value(key, p, a) for p, a in zip(parts, args))
        if origin is typing.Literal:
            # the choice itself is checked when the Config is built (the error lists the choices)
            return next((c for c in typing.get_args(tp) if str(c) == s), s)
    except ValueError:
        pass
    else:
        raise ConfigError(f"--set {key}: fields of type {tp} cannot be set from the command line")
    name = getattr(tp, "__name__", str(tp))
    raise ConfigError(f"--set {key}={text!r}: expected {'None or ' if optional else ''}{name}")


def parse_overrides(config_cls: type, items: list[str] | dict[str, Any]) -> dict[str, Any]:
    """``["key=value", ...]`` (or a dict of strings/values) -> ``{key: typed value}`` for the fields of
    ``config_cls``. Unknown keys and values of the wrong type raise :class:`~pygan.errors.ConfigError`
    (a ``ValueError``) naming them; ranges are checked when the Config is built (:func:`check_config`)."""
    hints = typing.get_type_hints(config_cls)
    names = [f.name for f in dataclasses.fields(config_cls)]
    pairs: list[tuple[str, Any]] = []
    if isinstance(items, dict):
        pairs = list(items.items())
    else:
        for it in items:
            key, eq, val = it.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"--set expects key=value, got {it!r}")
            pairs.append((key.strip(), val))
    out = {}
    for key, val in pairs:
        if key not in names:
            raise ConfigError(f"--set {key}: {config_cls.__name__} has no field {key!r}; fields: {names}")
        out[key] = _parse_value(key, val, hints[key]) if isinstance(val, str) else val
    return out


def _fits_type(value, tp) -> bool:
    """Whether ``value`` is a value of the Config field type ``tp`` (strictly: ``float`` fields need a
    float, tuples a tuple of the declared items): the check presets pass at registration."""
    return _type_ok(value, tp, strict=True)


def check_presets(cls: type, name: str | None = None) -> None:
    """Checks a model class's ``PRESETS`` (``@register`` calls it): a dict ``{preset name: {Config
    field: value}}`` with an empty ``"paper"`` entry (the defaults), every key a field of
    ``cls.Config`` and every value of that field's type, within the field's range and choices. Raises
    ``TypeError`` naming the model, the preset and the field."""
    who = name or cls.__name__
    presets = getattr(cls, "PRESETS", None)
    if not isinstance(presets, dict) or not all(isinstance(k, str) and k for k in presets):
        raise TypeError(f"{who}: PRESETS must be a dict {{name: {{field: value}}}}, got {presets!r}")
    if presets.get("paper") != {}:
        raise TypeError(f"{who}: PRESETS needs an empty 'paper' entry (the Config defaults)")
    hints = typing.get_type_hints(cls.Config)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    for preset, values in presets.items():
        if not isinstance(values, dict):
            raise TypeError(f"{who}: PRESETS[{preset!r}] must be a dict of Config fields, got {values!r}")
        for key, value in values.items():
            if key not in fields:
                raise TypeError(
                    f"{who}: PRESETS[{preset!r}] sets {key!r}, not a field of {cls.Config.__name__}"
                )
            if not _fits_type(value, hints[key]):
                raise TypeError(
                    f"{who}: PRESETS[{preset!r}][{key!r}] = {value!r} is not a {hints[key]} "
                    f"({cls.Config.__name__}.{key})"
                )
        try:  # the ranges and choices the fields declare, as --set would meet them
            config = cls.Config(**values)  # a ModelConfig checks itself when built
            if not isinstance(config, ModelConfig):
                check_config(config)
        except ConfigError as exc:
            raise TypeError(f"{who}: PRESETS[{preset!r}]: {exc}") from None


def list_presets(model: str | type) -> dict[str, dict[str, Any]]:
    """``{preset name: Config overrides}`` of ``model`` (a registered name or a model class)."""
    cls = get_model(model) if isinstance(model, str) else model
    return {k: dict(v) for k, v in cls.PRESETS.items()}


def preset_overrides(model: str | type, name: str) -> dict[str, Any]:
    """The Config overrides of ``model``'s preset ``name`` (a copy; typed values, as
    :func:`parse_overrides` returns them): pass them (updated with your own) as ``overrides`` to
    :func:`pygan.train.train` or :func:`build_model`. An unknown ``name`` raises
    :class:`pygan.errors.ConfigError` (a ``ValueError``) naming the model's presets."""
    from pygan.errors import ConfigError

    presets = list_presets(model)
    if name not in presets:
        who = model if isinstance(model, str) else (model.name or model.__name__)
        raise ConfigError(f"--preset {name}: model {who} has no preset {name!r}; choose from {list(presets)}")
    return presets[name]


def config_to_dict(config) -> dict:
    """A JSON-friendly dict of a config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(config_cls: type, d: dict):
    """Rebuilds a config dataclass from :func:`config_to_dict`'s output (lists back to tuples)."""
    hints = typing.get_type_hints(config_cls)
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"{config_cls.__name__} has no field(s) {sorted(unknown)}")
    kw = {}
    for k, v in d.items():
        _, tp = _is_optional(hints[k])
        kw[k] = tuple(v) if typing.get_origin(tp) is tuple and isinstance(v, list) else v
    return config_cls(**kw)


# Docs of fields many Configs share, for configs whose docstring does not describe them.
COMMON_FIELD_DOCS = {
    "batch_size": "rows per training batch (per process under DDP).",
    "lr": "Adam learning rate.",
    "betas": "Adam betas.",
    "n_critic": "critic (discriminator) steps per generator step.",
    "gp_weight": "gradient-penalty weight (lambda).",
    "z_dim": "latent (noise) size.",
    "width": "base channel width of the networks (channels of the first conv layer).",
    "ema_decay": "generator EMA decay per iteration, in [0, 1); 0 keeps no EMA (e.g. 0.999).",
    "ema_rampup": "EMA warm-up: the average's half-life is at most ema_rampup * iterations "
    "(StyleGAN2-ADA; 0: none).",
}


def _attribute_docs(doc: str) -> dict[str, str]:
    """``{field: text}`` from the ``Attributes:`` section of a Google-style docstring (entries
    ``name: text`` or ``a, b, c: text`` at the section's indent, continuation lines deeper)."""
    lines = (doc or "").expandtabs().splitlines()
    out: dict[str, str] = {}
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:")
    except StopIteration:
        return out
    indent = None
    names: list[str] = []
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        ind = len(line) - len(line.lstrip())
        if indent is None:
            indent = ind
        if ind < indent:
            break
        head, sep, text = line.strip().partition(":")
        parts = [p.strip() for p in head.split(",")]
        if ind == indent and sep and all(p.isidentifier() for p in parts):
            names = parts
            for n in names:
                out[n] = text.strip()
        else:
            for n in names:
                out[n] = f"{out[n]} {line.strip()}".strip()
    return out


_SENTENCE_END = re.compile(r"(?<!\bal)(?<!e\.g)(?<!i\.e)(?<!\bcf)(?<!\bvs)\.\s+(?=[A-Z(])")


def _one_line(text: str, limit: int = 110) -> str:
    """The first sentence of ``text`` (not cut at "et al.", "e.g.", ...), at most ``limit`` chars."""
    text = " ".join(re.sub(r":\w+:`~?([^`]*)`", r"\1", text).replace("``", "").split())
    m = _SENTENCE_END.search(text)
    if m is not None and m.start() < limit:
        return text[: m.start() + 1]
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def config_field_docs(config_cls: type) -> list[dict[str, Any]]:
    """One row per field of a model ``Config``: ``name``, ``type`` (as ``--set`` parses it: ``str``
    for a ``Literal`` of strings), ``default``, a one-line ``doc`` (from the class's ``Attributes:``
    docstring section, its bases', the field's metadata (:func:`knob`) or :data:`COMMON_FIELD_DOCS`;
    empty when none says anything), ``choices`` (a ``Literal`` field's values, else None), ``range``
    (its :class:`Range`, else None) and ``allowed`` (what the field accepts, in words, as the
    errors say it; empty for fields with neither)."""
    hints = typing.get_type_hints(config_cls)
    docs: dict[str, str] = {}
    for klass in reversed(config_cls.__mro__):
        docs.update(_attribute_docs(klass.__doc__ or ""))
    rows = []
    for f in dataclasses.fields(config_cls):
        tp = hints[f.name]
        choices = field_choices(tp)
        optional, inner = _is_optional(tp)
        args = typing.get_args(inner)
        if choices is not None:
            kinds = {type(c).__name__ for c in choices}
            name = (kinds.pop() if len(kinds) == 1 else "str") + (" | None" if optional else "")
        elif typing.get_origin(inner) is tuple and args[-1:] == (Ellipsis,) and field_choices(args[0]):
            name = "tuple[str, ...]" + (" | None" if optional else "")  # names from a Literal
        else:
            name = str(tp).replace("typing.", "")
            if "[" not in name and "|" not in name:
                name = getattr(tp, "__name__", name)
        doc = (
            docs.get(f.name)
            or _field_metadata(config_cls, f.name, _DOC_KEY)
            or COMMON_FIELD_DOCS.get(f.name, "")
        )
        rule = None if choices is not None else field_rule(config_cls, f.name)
        if choices is not None:
            allowed = _choices_text(choices, optional)
        elif rule is not None:
            allowed = rule.describe() + (" or None" if optional else "")
        elif name.startswith("tuple[str, ...]"):
            allowed = _type_text(tp)
        else:
            allowed = ""
        rows.append(
            {
                "name": f.name,
                "type": name,
                "default": f.default,
                "doc": _one_line(doc),
                "choices": choices,
                "range": rule,
                "allowed": allowed,
            }
        )
    return rows


def build_model(name: str, info: DataInfo, overrides: list[str] | dict | None = None, config=None) -> Model:
    """Builds model ``name`` for data ``info``, from ``config`` or the defaults plus ``overrides``."""
    cls = get_model(name)
    if config is None:
        config = cls.Config(**parse_overrides(cls.Config, overrides or []))
    elif overrides:
        config = dataclasses.replace(config, **parse_overrides(cls.Config, overrides))
    return cls(config, info)


# ---- config validation ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Range:
    """The allowed values of a numeric Config field: ``integer`` or real, between ``lo`` and ``hi``
    (either end open or closed, or absent). Real values must also be finite."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    note: str = ""

    def ok(self, v) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def describe(self) -> str:
        kind = "an int" if self.integer else "a finite number"
        if self.lo is not None and self.hi is not None:
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            ends = f"{left}{self.lo:g}, {self.hi:g}{right}"
            text = f"{kind} in {ends}"
        elif self.lo is not None:
            text = f"{kind} {'>' if self.lo_open else '>='} {self.lo:g}"
        elif self.hi is not None:
            text = f"{kind} {'<' if self.hi_open else '<='} {self.hi:g}"
        else:
            text = kind
        return f"{text} ({self.note})" if self.note else text


#: Ranges many Config fields share (pass one to :func:`knob`).
COUNT = Range(1, integer=True)  # sizes, widths, batch sizes, steps per iteration: >= 1
LAYERS = Range(0, integer=True, note="0: no hidden layer")
LR = Range(0, lo_open=True, note="a learning rate")
WEIGHT = Range(0, note="a loss weight; 0 turns the term off")
BETAS = Range(0, 1, hi_open=True, note="Adam betas, each")
EMA_DECAY = Range(0, 1, hi_open=True, note="0: no EMA")
EMA_RAMPUP = Range(0, note="0: no ramp")
GP_EVERY = Range(1, integer=True, note="1: the penalty on every critic step")
DROPOUT_LEVELS = Range(0, integer=True, note="the number of innermost decoder levels with dropout")

_RANGE_KEY = "pygan.range"
_DOC_KEY = "pygan.doc"


def knob(
    default: Any = dataclasses.MISSING,
    rule: Range | None = None,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    integer: bool = False,
    note: str = "",
    doc: str = "",
) -> Any:
    """A Config field (``dataclasses.field``) with its allowed range in the field's metadata: ``rule``
    (a :class:`Range`) or the range the keywords describe. ``doc`` is the field's one-line help for
    Configs whose docstring does not describe it. :func:`check_config` (run when the Config is built)
    and ``pygan train MODEL --help`` read it."""
    if rule is None and (lo is not None or hi is not None or integer or note):
        rule = Range(lo, hi, lo_open, hi_open, integer, note)
    metadata: dict[str, Any] = {}
    if rule is not None:
        metadata[_RANGE_KEY] = rule
    if doc:
        metadata[_DOC_KEY] = doc
    return dataclasses.field(default=default, metadata=metadata)


# The settings most models share: one definition each (range and doc); every model states its own
# default (the paper's).


def batch_size_field(default: int) -> Any:
    """``batch_size: int``: rows per training batch, >= 1."""
    return knob(default, COUNT, doc=COMMON_FIELD_DOCS["batch_size"])


def lr_field(default: float | None) -> Any:
    """``lr: float``: the Adam learning rate, > 0 (None where the model resolves it)."""
    return knob(default, LR, doc=COMMON_FIELD_DOCS["lr"])


def betas_field(default: tuple[float, float] | None) -> Any:
    """``betas: tuple[float, float]``: Adam's betas, each in [0, 1)."""
    return knob(default, BETAS, doc=COMMON_FIELD_DOCS["betas"])


def ema_decay_field(default: float = 0.0) -> Any:
    """``ema_decay: float``: the generator EMA's decay, in [0, 1); 0 (the papers') keeps no EMA."""
    return knob(default, EMA_DECAY, doc=COMMON_FIELD_DOCS["ema_decay"])


def ema_rampup_field(default: float = 0.05) -> Any:
    """``ema_rampup: float``: the EMA's warm-up (StyleGAN2-ADA's), >= 0; 0: none."""
    return knob(default, EMA_RAMPUP, doc=COMMON_FIELD_DOCS["ema_rampup"])


#: Fallback ranges, by field name, for Configs that do not declare theirs with :func:`knob` (e.g. a
#: model defined outside pygan): the shared optimiser and EMA settings. The built-in Configs declare
#: the range of every numeric field in the field's metadata. Fields that are None (``X | None`` =
#: "the model's default") are not range-checked. Data-dependent limits (a width too small for the
#: image size, a U-Net deeper than the image allows) are checked when the model is built.
FIELD_RULES: dict[str, Range] = {
    "batch_size": COUNT,
    "lr": LR,
    "betas": BETAS,
    "ema_decay": EMA_DECAY,
    "ema_rampup": EMA_RAMPUP,
}


def _field_metadata(config_cls: type, name: str, key: str) -> Any:
    """``key`` in the metadata of field ``name``, from the nearest class of ``config_cls``'s MRO that
    declares it (a subclass that only changes a field's default keeps its base's range and doc)."""
    for klass in config_cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and key in f.metadata:
            return f.metadata[key]
    return None


def field_rule(config_cls: type, name: str) -> Range | None:
    """The :class:`Range` of field ``name`` of ``config_cls``: its metadata (:func:`knob`), else
    :data:`FIELD_RULES`'s entry for the name."""
    rule = _field_metadata(config_cls, name, _RANGE_KEY)
    return rule if rule is not None else FIELD_RULES.get(name)


def field_choices(tp) -> tuple | None:
    """The allowed values of a ``Literal[...]`` field type (``X | None`` unwrapped), else None."""
    _, inner = _is_optional(tp)
    return typing.get_args(inner) if typing.get_origin(inner) is typing.Literal else None


def _choices_text(choices: Sequence, optional: bool = False) -> str:
    """``'a' or 'b'``; ``one of 'a', 'b' or 'c'`` (``None`` last when the field is optional)."""
    items = [repr(c) for c in choices] + (["None"] if optional else [])
    if len(items) <= 2:
        return " or ".join(items)
    return f"one of {', '.join(items[:-1])} or {items[-1]}"


def _type_ok(value, tp, strict: bool = False) -> bool:
    """Whether ``value`` fits the Config field type ``tp``. Lenient (the default, for values a user
    gives): an int is a float, a list a tuple. ``strict``: neither (the declared presets)."""
    optional, tp = _is_optional(tp)
    if value is None:
        return optional
    origin = typing.get_origin(tp)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, float) or (
            not strict and isinstance(value, int) and not isinstance(value, bool)
        )
    if tp is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, tuple if strict else (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(v, args[0], strict) for v in value)
        return len(value) == len(args) and all(_type_ok(v, a, strict) for v, a in zip(value, args))
    if origin is typing.Literal:
        return any(value == c and type(value) is type(c) for c in typing.get_args(tp))
    return True  # a type --set cannot produce: the model checks it


def check_config(config) -> None:
    """Checks every field of a model Config dataclass: its type (for a ``Literal[...]`` field, that the
    value is one of its choices), and for numeric fields the range its metadata declares
    (:func:`knob`; :func:`field_rule`; the EMA settings' too, by the fallback table). Raises
    :class:`~pygan.errors.ConfigError` naming the field, the value and what is allowed. Configs derived
    from :class:`ModelConfig` run it when they are built, and :class:`Model` runs it again when a model
    is built (for Configs that do not derive from it)."""
    cls = type(config)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(config):
        value, tp = getattr(config, f.name), hints[f.name]
        if not _type_ok(value, tp):
            choices = field_choices(tp)
            if choices is not None and (isinstance(value, str) or value is None):
                what = _choices_text(choices, _is_optional(tp)[0])
                raise ConfigError(f"{f.name} must be {what}, got {value!r} ({cls.__name__}.{f.name})")
            raise ConfigError(
                f"{f.name} must be {_type_text(tp)}, got {value!r} ({type(value).__name__}; "
                f"{cls.__name__}.{f.name})"
            )
        if value is None:
            continue
        rule = field_rule(cls, f.name)
        values = value if isinstance(value, (tuple, list)) else (value,)
        for v in values:
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if (isinstance(v, float) and not math.isfinite(v)) or (rule is not None and not rule.ok(v)):
                what = rule.describe() if rule is not None else "a finite number"
                raise ConfigError(f"{f.name} must be {what}, got {value!r} ({cls.__name__}.{f.name})")


def _type_text(tp) -> str:
    optional, inner = _is_optional(tp)
    args = typing.get_args(inner)
    if typing.get_origin(inner) is tuple and args[-1:] == (Ellipsis,) and field_choices(args[0]):
        names = ", ".join(map(repr, field_choices(args[0])))
        return f"{'None or ' if optional else ''}a tuple of names from {names}"
    name = str(inner).replace("typing.", "")
    if "[" not in name:
        name = getattr(inner, "__name__", name)
    return f"{'None or ' if optional else ''}{name}"


class ModelConfig:
    """Base of the built-in model Configs (``@dataclass(frozen=True) class XConfig(ModelConfig)``):
    every field is validated once, when the Config is built (:func:`check_config`: ``Literal`` choices,
    the ranges in the fields' metadata), with one-line errors naming the field, the value and what is
    allowed. A Config is frozen: change it with ``dataclasses.replace`` (which validates again).

    ``resolve(info)`` returns the Config the model runs, its data-dependent ``"auto"``/None fields
    filled in for the data ``info`` describes (:class:`pygan.data.DataInfo`); this base returns the
    Config itself. The run's ``config.json`` keeps the Config as given (what the user asked for)."""

    def __post_init__(self) -> None:
        check_config(self)

    def resolve(self, info: DataInfo):
        return self


# ---- generator EMA ---------------------------------------------------------------------------------


def _check_arg(name: str, value, rule: Range, what: str | None = None) -> None:
    """:class:`~pygan.errors.ConfigError` unless ``value`` is a finite number (not a bool) in
    ``rule``; the message says ``name must be <what>`` (default: ``rule.describe()``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not rule.ok(value)
    ):
        raise ConfigError(f"{name} must be {what or rule.describe()}, got {value!r}")


class EMA:
    """An exponential moving average of some networks' parameters (the generator EMA of StyleGAN and
    PyTorch-StudioGAN), updated with device ops only, so that a CUDA graph can capture the update.

    After update ``t`` (0-based: the ``t``-th call of :meth:`update`) the average is
    ``ema <- beta_t * ema + (1 - beta_t) * param`` with

    * ``beta_t = decay`` without a ramp (``rampup = 0``);
    * ``beta_t = min(decay, 0.5 ** (1 / (rampup * t)))`` with one (StyleGAN2-ADA's warm-up: the
      average's half-life, ``rampup * t`` updates, grows with training until it reaches the one of
      ``decay``; ``beta_0 = 0``, so the first update copies the weights). ``rampup = 0.05``:
      StyleGAN2-ADA's default.

    ``t`` lives in a device buffer and ``beta_t`` is computed on the device (no Python value that
    changes per step, no host read). Only parameters are averaged; buffers (BatchNorm statistics) are
    the live network's, as in StyleGAN2-ADA, which copies them. The averages are float32 copies
    of float32 parameters (the parameters' dtype in general).

    Args:
        model: the module that holds the networks.
        names: the networks to average (dotted names of submodules of ``model``).
        decay: ``beta`` in [0, 1).
        rampup: the warm-up's slope (>= 0; 0: no warm-up).
    """

    def __init__(self, model: nn.Module, names: Sequence[str], decay: float, rampup: float = 0.05):
        # the Config fields' ranges (a Config's own are checked when it is built)
        _check_arg("ema_decay", decay, EMA_DECAY, "a number in [0, 1) (0: no EMA)")
        _check_arg("ema_rampup", rampup, EMA_RAMPUP)
        if isinstance(names, str) or not names:
            raise ValueError(f"names must be a non-empty sequence of network names, got {names!r}")
        self.names = tuple(names)
        self.decay, self.rampup = float(decay), float(rampup)
        self.keys: list[str] = []
        self.params: list[torch.Tensor] = []
        seen: set[int] = set()
        for name in self.names:
            net = model.get_submodule(name)
            for pname, p in net.named_parameters():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                self.keys.append(f"{name}.{pname}" if name else pname)
                self.params.append(p)
        if not self.params:
            raise ValueError(f"the networks {list(self.names)} have no parameters to average")
        with torch.no_grad():
            self.shadow = [p.detach().clone() for p in self.params]
        dev = self.params[0].device
        self.updates = torch.zeros((), dtype=torch.float64, device=dev)
        self._decay = torch.tensor(self.decay, dtype=torch.float64, device=dev)

    def beta(self) -> torch.Tensor:
        """This update's ``beta_t`` (a 0-dim float64 device tensor)."""
        if self.rampup == 0:
            return self._decay
        ramp = torch.pow(0.5, 1.0 / (self.updates * self.rampup).clamp_min(1e-8))
        return torch.minimum(ramp, self._decay)

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average (device ops only; graph-safe)."""
        beta = self.beta()
        keep = beta.to(self.shadow[0].dtype)
        take = (1.0 - beta).to(self.shadow[0].dtype)
        torch._foreach_mul_(self.shadow, keep)
        torch._foreach_add_(self.shadow, torch._foreach_mul(self.params, take))
        self.updates.add_(1.0)

    @torch.no_grad()
    def copy_to_params(self) -> None:
        """Overwrites the live parameters with the averages (for a model that is only sampled)."""
        for p, e in zip(self.params, self.shadow):
            p.copy_(e)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block the networks hold the averaged weights (copied in place, so the tensors
        keep their addresses); the live weights are put back afterwards."""
        with torch.no_grad():
            saved = [p.detach().clone() for p in self.params]
            self.copy_to_params()
        try:
            yield
        finally:
            with torch.no_grad():
                for p, s in zip(self.params, saved):
                    p.copy_(s)

    def averaged_state(self) -> dict[str, torch.Tensor]:
        """``{state-dict key: averaged tensor}`` (keys as in the model's ``state_dict``)."""
        return dict(zip(self.keys, self.shadow))

    def state_dict(self) -> dict:
        return {
            "names": list(self.names),
            "decay": self.decay,
            "rampup": self.rampup,
            "updates": self.updates.detach().cpu().clone(),
            "params": {k: e.detach().cpu().clone() for k, e in zip(self.keys, self.shadow)},
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        params = state.get("params") if isinstance(state, dict) else None
        if not isinstance(params, dict):
            raise ValueError("not an EMA state (expected a dict with 'params')")
        missing, unexpected = sorted(set(self.keys) - set(params)), sorted(set(params) - set(self.keys))
        if missing or unexpected:
            raise ValueError(
                f"EMA state does not match the networks {list(self.names)}: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
        for k, e in zip(self.keys, self.shadow):
            if tuple(params[k].shape) != tuple(e.shape):
                raise ValueError(
                    f"EMA state: {k} has shape {tuple(params[k].shape)}, expected {tuple(e.shape)}"
                )
            e.copy_(params[k])
        self.updates.copy_(torch.as_tensor(state["updates"], dtype=torch.float64))


# ---- the base class --------------------------------------------------------------------------------


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Temporarily sets ``requires_grad=False`` on the parameters of ``modules`` (no gradient is
    accumulated into a network that this step does not update); restores the previous flags."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


@contextlib.contextmanager
def eval_mode(*nets: nn.Module) -> Iterator[None]:
    """Runs ``nets`` in eval mode (no dropout, BatchNorm running statistics); restores every
    submodule's previous ``training`` flag afterwards (mixed modes included)."""
    modes = [(m, m.training) for net in nets for m in net.modules()]
    for net in nets:
        net.eval()
    try:
        yield
    finally:
        for m, was in modes:
            m.training = was


def as_floats(logs: dict) -> dict[str, float]:
    """``training_step``'s losses as Python floats (reads them back from the device: a sync; the
    training loop does it every ``--log-every`` steps, not every step)."""
    return {k: float(v) for k, v in logs.items()}


def lazy_schedule(iteration: int, steps: int, every: int) -> tuple[bool, ...]:
    """Lazy regularisation (Karras et al. 2020, "Analyzing and Improving the Image Quality of
    StyleGAN", §B): which of iteration ``iteration``'s ``steps`` critic steps compute the penalty when
    it is computed on every ``every``-th critic step counted from the start of training (critic steps
    ``0, every, 2 every, ...``); the penalty's weight is then multiplied by ``every``. The tuple
    doubles as the step's :meth:`Model.graph_phase` (a CUDA graph per distinct schedule)."""
    first = iteration * steps
    return tuple((first + j) % every == 0 for j in range(steps))


class LazyPenalty(nn.Module):
    """Lazy regularisation's bookkeeping for a model with ``steps`` critic steps per iteration and a
    penalty on every ``every``-th one (:func:`lazy_schedule`): :meth:`due` says which critic steps of
    an iteration compute it, :meth:`phase` is the model's ``graph_phase``, :meth:`log` the value to
    report for each logged penalty in ``names``. With ``every > 1`` the last penalty computed is kept
    (a buffer, so it is checkpointed) and reported on iterations that compute none, so that the logged
    losses keep the same names every step."""

    def __init__(self, every: int, steps: int, names: tuple[str, ...] = ("gp",)):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"gp_every must be an int >= 1, got {every!r}")
        self.every, self.steps = every, steps
        if every > 1:
            for name in names:
                self.register_buffer(f"last_{name}", torch.zeros(()))

    def due(self, iteration: int) -> tuple[bool, ...]:
        return lazy_schedule(iteration, self.steps, self.every)

    def phase(self, iteration: int):
        return self.due(iteration) if self.every > 1 else 0

    def log(self, total, due: tuple[bool, ...], name: str = "gp") -> torch.Tensor:
        """The penalty ``name`` to report: ``total`` (the sum of its values computed this iteration)
        over the critic steps that computed it; the last value computed when none did."""
        if self.every == 1:
            return total / len(due)
        last = getattr(self, f"last_{name}")
        if any(due):
            last.copy_(total / sum(due))
        return last


class Model(nn.Module):
    """Base class of pygan's models; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    Config: ClassVar[type]
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}}
    default_data: ClassVar[str] = "digits32"
    data_kinds: ClassVar[tuple[str, ...]] = ("images",)
    generator_networks: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config, info: DataInfo):
        super().__init__()
        if not isinstance(config, self.Config):
            raise TypeError(f"config must be a {self.Config.__name__}, got {type(config).__name__}")
        if not isinstance(info, DataInfo):
            raise TypeError(f"info must be a pygan.data.DataInfo, got {type(info).__name__}")
        if info.kind not in self.data_kinds:
            raise ConfigError(
                f"{type(self).__name__} trains on {' or '.join(self.data_kinds)} data, got {info.kind} "
                f"data (try --data {self.default_data})"
            )
        if not isinstance(config, ModelConfig):  # a ModelConfig was checked when it was built
            check_config(config)
        #: the Config as given (what the run's config.json records) and the one the model runs: its
        #: data-dependent "auto"/None fields resolved for ``info`` (``config.resolve(info)``)
        self.config = config
        self.resolved_config = config.resolve(info) if isinstance(config, ModelConfig) else config
        self.info = info
        self.ema: EMA | None = None  # set by make_ema() (the loop calls it)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self._wrapped: dict[str, nn.Module] = {}  # DDP wrappers (distribute)
        self._compiled_nets: dict[str, nn.Module] = {}  # first-order compiled networks
        self.iteration = 0  # the 0-based iteration training_step runs (set by the loop)

    # -- what the loop reads
    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    @property
    def batches_per_step(self) -> int:
        """Real batches consumed per ``training_step`` (stacked into one; see ``Batch.split``)."""
        return 1

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def adam(self, *nets: nn.Module, lr: float | None = None, betas=None) -> torch.optim.Adam:
        """Adam over the parameters of ``nets`` (in order) with the Config's ``lr`` and ``betas``
        unless given: the optimiser the built-in models use (the loop makes it capturable for CUDA
        graphs)."""
        c = self.resolved_config
        params = [p for net in nets for p in net.parameters()]
        return torch.optim.Adam(
            params, lr=c.lr if lr is None else lr, betas=c.betas if betas is None else betas
        )

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError(f"{type(self).__name__} must implement configure_optimizers()")

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement training_step(batch)")

    # -- CUDA graphs (see "Capturable steps" in the module docstring)
    def graph_phase(self, iteration: int) -> int:
        """Which variant of the step's host code iteration ``iteration`` runs (one CUDA graph is
        captured per value). The default, 0, says: the same every iteration."""
        return 0

    def cuda_graph_blocker(self) -> str | None:
        """Why this model, as configured, cannot be captured as a CUDA graph (one line), or None."""
        return None

    def sample(self, n: int, generator: torch.Generator | None = None, batch: Batch | None = None):
        raise NotImplementedError(f"{type(self).__name__} must implement sample(n, generator, batch)")

    def evaluate(self, data: Dataset, generator: torch.Generator) -> dict[str, float]:
        """Optional in-training metrics (see the module docstring); none by default."""
        return {}

    def compile_networks(self) -> list[str]:
        """Optional: compile what can be compiled; returns the names compiled (none by default)."""
        return []

    # -- DDP
    def ddp_networks(self) -> list[str]:
        """Names of the child networks the loop wraps in DDP: by default every direct child module
        with trainable parameters."""
        return [n for n, m in self.named_children() if any(p.requires_grad for p in m.parameters())]

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Called by the loop under DDP: wraps each of :meth:`ddp_networks` (the modules stay
        registered under their names, so checkpoints are the same with or without DDP)."""
        for name in self.ddp_networks():
            self._wrapped[name] = wrap(self.get_submodule(name))

    def wrapped(self, name: str, *, plain: bool = False, compiled: bool = False) -> nn.Module:
        """The network ``name`` (dotted for a nested one) to run: with ``compiled``, its module
        compiled by :meth:`compile_first_order` if there is one; else, for a network being updated,
        its DDP wrapper when distributed; with ``plain`` (a network only read: frozen, ``no_grad``,
        inference) or without DDP, the module itself."""
        if compiled and name in self._compiled_nets:
            return self._compiled_nets[name]
        wrapper = None if plain else self._wrapped.get(name)
        return wrapper if wrapper is not None else self.get_submodule(name)

    def compile_first_order(self, name: str) -> None:
        """``torch.compile`` the network ``name`` for the passes that ask ``wrapped(name,
        compiled=True)`` (first-order ones: a gradient penalty's double backward stays eager)."""
        self._compiled_nets[name] = torch.compile(self.get_submodule(name))

    # -- generator EMA
    def output_networks(self) -> list[str]:
        """The :attr:`generator_networks` this configuration builds."""
        out = []
        for name in self.generator_networks:
            try:
                net = self.get_submodule(name)
            except AttributeError:
                continue
            if net is not None:
                out.append(name)
        return out

    def make_ema(self) -> EMA | None:
        """Starts the generator EMA from the current weights when ``config.ema_decay > 0`` (sets and
        returns ``self.ema``); None otherwise. Call it after the model is on its device."""
        decay = getattr(self.config, "ema_decay", 0.0)
        if not decay:
            self.ema = None
            return None
        names = self.output_networks()
        if not names:
            raise ConfigError(
                f"ema_decay={decay}: model {self.name or type(self).__name__} names no generator "
                "networks to average (generator_networks)"
            )
        self.ema = EMA(self, names, decay, getattr(self.config, "ema_rampup", 0.0))
        return self.ema

    def ema_applied(self, use: bool = True):
        """A context in which the output networks hold the EMA weights (no-op without an EMA or with
        ``use=False``)."""
        return self.ema.applied() if (use and self.ema is not None) else contextlib.nullcontext()

    # -- helpers for training_step
    def update(self, optimizer: str, loss: torch.Tensor) -> None:
        """``zero_grad``, ``loss.backward()``, ``step`` on the optimizer named ``optimizer`` (through
        the float16 gradient scaler when the loop runs ``--amp fp16``: :mod:`pygan.amp`)."""
        opt = self.optimizers[optimizer]
        opt.zero_grad(set_to_none=True)
        scaled_backward(loss)
        optimizer_step(opt)

    def state_summary(self) -> dict[str, int]:
        """Parameter counts per child network (for logs and ``pygan list``)."""
        return {n: sum(p.numel() for p in m.parameters()) for n, m in self.named_children()}
