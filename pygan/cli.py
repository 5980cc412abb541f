"""The ``pygan`` command (console script, and ``python -m pygan``).

::

    pygan list                                   models (with their Config defaults) and datasets
    pygan train MODEL --data NAME|PATH --steps N --out DIR [--preset small] [--set key=value ...]
    pygan train --config RUN/config.json --out NEW   replay a run (or any JSON/YAML config file)
    pygan sample RUN [--n 64] [--out FILE.png]   a grid from a trained run
    pygan sample RUN --png-dir DIR --n N         N individual PNGs (for pytorch-fid, torch-fidelity, ...)
    pygan eval RUN [--metrics fid,kid,is,pr,dc] [--option key=value ...]   metrics JSON
    pygan export RUN --out G.safetensors         the generator (EMA weights by default), no pickle
    pygan bench [--quick]                        bench/train_step.py and bench/ops.py (rows as they come)

Multi-process: ``torchrun --nproc_per_node 2 -m pygan train ...`` (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import typing

from pygan.errors import ConfigError

__all__ = ["build_parser", "main"]

EPILOG_TRAIN = """examples:
  pygan train wgan-gp --data digits32 --steps 2000 --out runs/digits
  pygan train cogan --data digits16-edge --steps 1200 --out runs/cogan --preset small
  pygan train wgan-gp --data ring8 --steps 3000 --out runs/ring --set batch_size=256
  pygan train wgan-gp --data mnist:/data/mnist?size=32 --steps 20000 --out runs/mnist
  pygan train wgan-gp --data digits32 --steps 4000 --out runs/digits --resume
  pygan train wgan-gp --data digits64 --steps 20000 --out runs/gpu --device cuda --cuda-graphs
  torchrun --nproc_per_node 2 -m pygan train wgan-gp --data digits32 --steps 1000 --out runs/ddp

Model settings are the model's Config fields (pygan train MODEL --help lists them with their types,
defaults and docs; the defaults are the paper's numbers where the paper states them, and its
presets); --preset NAME starts from a named set of them (paper: the defaults; small: a CPU-sized
configuration), --set key=value overrides one, typed from the field, after the preset. --config
FILE reads a JSON (or, with PyYAML, YAML) file with the keys of a run's config.json (model, preset,
model_config, data, train): flags given on the command line override its train settings, --preset
its preset, --set its model settings (the preset is the bottom layer, under model_config)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``pygan CMD: error: ... (pygan CMD --help)``, exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(lo: int):
    """An argparse ``type``: an int >= ``lo`` (the message names the flag through argparse)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or v < lo:
            raise argparse.ArgumentTypeError(f"must be an int >= {lo}, got {text!r}")
        return v

    parse.__name__ = f"int >= {lo}"
    return parse


def _device():
    """An argparse ``type``: auto, cpu, cuda, cuda:N."""

    def parse(text: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
            raise argparse.ArgumentTypeError(
                f"must be one of auto, cpu, cuda, cuda:N (N: a GPU index), got {text!r}"
            )
        return text

    parse.__name__ = "device"
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="pygan",
        description="Hybrid autoencoder/GAN systems on fused kernels: train, sample, evaluate, benchmark.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    ls = sub.add_parser(
        "list",
        help="list models (with their settings) and datasets",
        description="List the registered models with their Config fields and defaults, "
        "and the datasets --data accepts.",
    )
    ls.add_argument("what", nargs="?", choices=("models", "data", "all"), default="all")

    t = sub.add_parser(
        "train",
        help="train a model",
        description="Train MODEL on a dataset, writing samples, metrics and checkpoints to --out.",
        epilog=EPILOG_TRAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    t.add_argument(
        "-h", "--help", action=_TrainHelp, help="show this help (with MODEL: its settings) and exit"
    )
    t.add_argument("model", nargs="?", help="registered model name (pygan list); optional with --config")
    t.add_argument(
        "--config",
        metavar="FILE",
        help="a run configuration (JSON, or YAML with PyYAML) with config.json's keys; "
        "RUN/config.json replays RUN",
    )
    t.add_argument("--data", help="dataset name or path (pygan list data); default: the model's own")
    t.add_argument("--data-b", help="a second dataset: domain B of a two-domain set (e.g. MNIST -> SVHN)")
    t.add_argument(
        "--steps",
        type=_int_at_least(1),
        help="training iterations in total (resume counts on); required without --config",
    )
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model Config field (repeatable; applied after --preset)",
    )
    t.add_argument(
        "--preset",
        metavar="NAME",
        help="start from MODEL's named settings: paper (the defaults) or small (CPU-sized); "
        "pygan train MODEL --help and pygan list show them",
    )
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--seed", type=_int_at_least(0), default=0)
    t.add_argument(
        "--device", type=_device(), default="auto", help="auto (cuda if available), cpu, cuda, cuda:N"
    )
    t.add_argument(
        "--amp",
        nargs="?",
        const="bf16",
        default=False,
        choices=("bf16", "fp16"),
        help="autocast: bf16 (--amp alone), or fp16 with a gradient scaler (GPUs without bf16: V100, T4); "
        "off by default",
    )
    t.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic algorithms (torch.use_deterministic_algorithms, cuDNN deterministic, "
        "CUBLAS_WORKSPACE_CONFIG): bitwise-repeatable GPU runs, at some speed (docs/training.md)",
    )
    t.add_argument("--log-every", type=_int_at_least(0), default=10, help="metrics.jsonl line every N steps")
    t.add_argument(
        "--sample-every",
        type=_int_at_least(0),
        default=500,
        help="sample grid every N steps (0: only at the end)",
    )
    t.add_argument(
        "--ckpt-every", type=_int_at_least(0), default=500, help="checkpoint every N steps (and at the end)"
    )
    t.add_argument(
        "--eval-every",
        type=_int_at_least(0),
        default=0,
        help="model.evaluate on the test split every N steps",
    )
    t.add_argument("--n-samples", type=_int_at_least(1), default=64, help="images per sample grid")
    t.add_argument("--keep-checkpoints", action="store_true", help="keep every checkpoint, not only last.pt")
    t.add_argument("--compile", action="store_true", help="torch.compile what the model allows (one process)")
    t.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="capture each training iteration once as a CUDA graph and replay it (CUDA, one process)",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard scalars and sample grids")
    t.add_argument(
        "--divergence-threshold",
        type=float,
        default=None,
        metavar="X",
        help="warn once when a loss's magnitude exceeds X (default 1e10; inf: off; docs/training.md)",
    )
    t.add_argument(
        "--stop-on-divergence",
        action="store_true",
        help="stop (like a non-finite loss: error, last good checkpoint kept) instead of warning",
    )
    t.add_argument(
        "--threads", type=_int_at_least(0), default=0, help="torch CPU threads (0: torch's default)"
    )
    t.add_argument(
        "--workers",
        type=_int_at_least(0),
        default=None,
        help="processes decoding image files (folder/celeba/pix2pix; default: cores - 1, at most 16; "
        "0: in the training process)",
    )

    s = sub.add_parser(
        "sample",
        help="sample a grid from a trained run",
        description="Write a PNG of samples from RUN's last checkpoint.",
    )
    s.add_argument("run", help="run directory (pygan train --out)")
    s.add_argument("--n", type=_int_at_least(1), default=64, help="number of samples")
    s.add_argument("--out", help="output PNG (default RUN/samples/sample_<seed>.png)")
    s.add_argument("--seed", type=_int_at_least(0), default=0)
    s.add_argument("--checkpoint", help="a checkpoint file (default RUN/checkpoints/last.pt)")
    s.add_argument("--device", type=_device(), default="cpu", help="cpu (default), cuda, cuda:N, auto")
    s.add_argument("--save-tensor", action="store_true", help="also save the samples as a .pt tensor")
    s.add_argument(
        "--png-dir",
        metavar="DIR",
        help="write --n individual PNG files to DIR (8-bit, what FID tools read) instead of a grid",
    )
    s.add_argument("--overwrite", action="store_true", help="--png-dir: replace the PNG files already in DIR")
    s.add_argument(
        "--batch-size", type=_int_at_least(1), default=256, help="--png-dir: samples drawn per batch"
    )
    s.add_argument("--no-ema", action="store_true", help="the trained weights, not the generator EMA's")

    e = sub.add_parser(
        "eval",
        help="evaluate a trained run (metrics JSON)",
        description="Compute RUN's metrics with pygan.evaluate.evaluate_run and write RUN/metrics.json.",
    )
    e.add_argument("run", help="run directory")
    e.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to evaluate_run (value parsed as JSON when it can be)",
    )
    e.add_argument("--out", help="output JSON (default RUN/metrics.json)")
    e.add_argument(
        "--metrics",
        help="comma-separated metrics to compute (default: all that apply): fid, kid, is "
        "(inception_score), pr (precision_recall), dc (density_coverage), reconstruction, translation, "
        "mode_coverage, semantic_agreement, fid_per_domain",
    )
    e.add_argument(
        "--extractor", help="feature network: digits or inception (default: digits for digit data)"
    )
    e.add_argument(
        "--inception-weights",
        metavar="PATH",
        help="pt_inception-2015-12-05-6726825d.pth (default: $PYGAN_INCEPTION_WEIGHTS, then the torch "
        "hub cache)",
    )
    e.add_argument(
        "--quantize",
        choices=("uint8", "float"),
        help="round images to 8 bits before the extractor, as pytorch-fid/torch-fidelity see PNG files "
        "(default for inception), or feed floats (default for other extractors)",
    )
    e.add_argument("--no-ema", action="store_true", help="score the trained weights, not the generator EMA's")

    x = sub.add_parser(
        "export",
        help="export a run's generator as safetensors",
        description="Write RUN's output networks (generator/decoder; the EMA weights when the run kept an "
        "EMA) to a .safetensors file with the run's config in its metadata; pygan.load_generator(FILE) "
        "rebuilds them. No pickle.",
    )
    x.add_argument("run", help="run directory")
    x.add_argument("--out", required=True, help="output file (.safetensors)")
    x.add_argument("--checkpoint", help="a checkpoint file (default RUN/checkpoints/last.pt)")
    x.add_argument("--no-ema", action="store_true", help="the trained weights, not the generator EMA's")

    b = sub.add_parser(
        "bench",
        help="run the benchmarks (bench/train_step.py, bench/ops.py)",
        description="Run bench/train_step.py (every model: img/s, peak memory; fused vs "
        "reference, eager vs compile) and bench/ops.py (per-op), printing each result row as it "
        "comes. The full run says first how long it will take (hours on a CPU); --quick is a "
        "representative subset in about a minute. Needs a source checkout.",
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="about a minute on a CPU: one model per system at its small preset, eager only, 3 reps; "
        "the ops at the models' sizes without torch.compile",
    )
    b.add_argument("--only", choices=("train", "ops"), help="run only one of the two")
    b.add_argument("--models", metavar="LIST", help="comma-separated models for bench/train_step.py")
    b.add_argument(
        "--preset", metavar="NAME", help="bench/train_step.py at each model's preset (--quick: small)"
    )
    b.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu (default) or cuda")
    return p


# ---- commands ------------------------------------------------------------------------------------


def _type_name(tp) -> str:
    s = str(tp).replace("typing.", "")
    return getattr(tp, "__name__", s) if "[" not in s and "|" not in s else s


def _cmd_list(args) -> int:
    if args.what in ("models", "all"):
        from pygan.models import get_model, list_models

        print("models:")
        for name in list_models():
            cls = get_model(name)
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            print(
                f"  {name:<14} {doc}  (data: {', '.join(cls.data_kinds)}; default --data {cls.default_data})"
            )
            print(f"      presets (--preset): {_presets_line(cls)}")
            hints = typing.get_type_hints(cls.Config)
            for f in dataclasses.fields(cls.Config):
                print(f"      {f.name} = {f.default!r}  ({_type_name(hints[f.name])})")
    if args.what in ("data", "all"):
        from pygan.data import list_datasets

        print("datasets (--data):")
        for d in list_datasets():
            note = "" if d["available"] and not d["note"] else f"  [{d['note']}]"
            print(f"  {d['name']:<20} {d['description']}{note}")
        print("  options: NAME?size=32&channels=3&limit=1000&domain=edge ... (see pygan.data.registry)")
    return 0


def _presets_line(cls) -> str:
    """``paper (the defaults); small: width=32 batch_size=64`` for a model class."""
    from pygan.models import list_presets

    parts = []
    for name, values in list_presets(cls).items():
        if not values:
            parts.append(f"{name} (the defaults)")
        else:
            parts.append(f"{name}: " + " ".join(f"{k}={_fmt_value(v)}" for k, v in values.items()))
    return "; ".join(parts)


def _fmt_value(v) -> str:
    """A Config value as ``--set`` would take it."""
    if isinstance(v, tuple):
        return ",".join(_fmt_value(x) for x in v)
    return str(v)


class _TrainHelp(argparse.Action):
    """``pygan train [MODEL] --help``: the usual help, then MODEL's settings (Config fields: type,
    default, one-line doc) when a model is named before ``--help``."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        model = getattr(namespace, "model", None)
        if model:
            try:
                print("\n" + _model_settings_help(model))
            except ValueError as exc:
                print(f"\n{exc}")
        else:
            print("\npygan train MODEL --help lists MODEL's settings (--set key=value).")
        parser.exit()


def _model_settings_help(name: str) -> str:
    from pygan.models import config_field_docs, get_model

    cls = get_model(name)
    rows = config_field_docs(cls.Config)
    lines = [f"{name} presets (--preset NAME; --set applies after it): {_presets_line(cls)}", ""]
    lines.append(f"{name} settings (--set key=value; {cls.Config.__name__}):")
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        head = f"  {r['name']:<{width}}  {r['type']} = {r['default']!r}"
        if r.get("allowed"):  # the choices or the range, as the errors state them
            head += f"  [{r['allowed']}]"
        lines.append(head + (f"\n      {r['doc']}" if r["doc"] else ""))
    return "\n".join(lines)


# --config: which train flags override the file (dest -> TrainOptions field; "no_*" flags negate)
_TRAIN_FLAGS = {
    "steps": "steps",
    "seed": "seed",
    "device": "device",
    "amp": "amp",
    "deterministic": "deterministic",
    "log_every": "log_every",
    "sample_every": "sample_every",
    "ckpt_every": "ckpt_every",
    "eval_every": "eval_every",
    "n_samples": "n_samples",
    "keep_checkpoints": "keep_checkpoints",
    "compile": "compile",
    "cuda_graphs": "cuda_graphs",
    "workers": "workers",
    "no_progress": "progress",
    "no_tensorboard": "tensorboard",
    "divergence_threshold": "divergence_threshold",
    "stop_on_divergence": "stop_on_divergence",
}


def _given_flags(argv: list[str] | None) -> set[str]:
    """The ``pygan train`` options the command line actually gave (their dests): the arguments are
    parsed again with every default suppressed."""
    if argv is None:
        return set(_TRAIN_FLAGS)
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for action in sub.choices["train"]._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command"}


def _train_settings(args) -> dict:
    """The model, data, preset, model overrides and TrainOptions of ``pygan train``: the defaults,
    then the ``--config`` file, then the flags given on the command line (``--set`` over the file's
    ``model_config``, ``--preset`` over its ``preset``; the preset is applied under both)."""
    from pygan.models import get_model, parse_overrides, preset_overrides

    options = {
        field: (not getattr(args, dest)) if dest.startswith("no_") else getattr(args, dest)
        for dest, field in _TRAIN_FLAGS.items()
    }
    if options["divergence_threshold"] is None:  # not given: TrainOptions' default
        del options["divergence_threshold"]
    model, data, data_b, overrides = args.model, args.data, args.data_b, args.overrides
    preset = args.preset
    if args.config:
        from pygan.train import load_config_file

        cfg = load_config_file(args.config, args.model)
        model = cfg["model"]
        given = _given_flags(getattr(args, "argv", None))
        flag_of = {field: dest for dest, field in _TRAIN_FLAGS.items()}
        for field, value in cfg["train"].items():
            if flag_of.get(field) not in given:
                options[field] = value
        data = data or cfg["data"]
        data_b = data_b if data_b is not None else cfg["data_b"]
        overrides = {**cfg["model_config"], **parse_overrides(get_model(model).Config, args.overrides)}
        preset = preset if preset is not None else cfg.get("preset")
    if model is None:
        raise ConfigError("name a MODEL (pygan list) or give --config FILE")
    if options.get("steps") is None:
        raise ConfigError("--steps is required (or a --config file with train.steps)")
    if preset is not None:
        preset_overrides(model, preset)  # an unknown name fails here, naming the model's presets
    data = data or get_model(model).default_data
    return {
        "model": model,
        "data": data,
        "data_b": data_b,
        "preset": preset,
        "overrides": overrides,
        "options": options,
    }


def _cmd_train(args) -> int:
    import shlex

    import torch

    from pygan.runs import NoCheckpointError
    from pygan.train import TrainingInterrupted, train

    if args.threads:
        torch.set_num_threads(args.threads)
    st = _train_settings(args)
    options = dict(st["options"])
    steps = options.pop("steps")
    main = int(os.environ.get("RANK", "0")) == 0
    try:
        model = train(
            st["model"],
            st["data"],
            args.out,
            steps,
            data_b=st["data_b"],
            overrides=st["overrides"],
            preset=st["preset"],
            resume=args.resume,
            **options,
        )
    except TrainingInterrupted as exc:  # SIGINT/SIGTERM: 130/143, with where the checkpoint is
        if main:
            print(f"pygan train: {exc}", file=sys.stderr)
        return exc.exit_code
    except NoCheckpointError as exc:
        argv = [a for a in getattr(args, "argv", []) if a != "--resume"]
        cmd = shlex.join(["pygan", *argv]) if argv else "the same command without --resume"
        raise NoCheckpointError(f"{exc}: {cmd}") from None
    if main and model.train_stats.get("already_at") is None:
        print(f"done: {args.out} (samples/last.png, metrics.jsonl, checkpoints/last.pt)")
    return 0


def _cmd_sample(args) -> int:
    import torch

    from pygan.runs import load_run
    from pygan.train import _pick_device, render_samples

    if args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    if args.overwrite and not args.png_dir:
        raise ConfigError("--overwrite applies to --png-dir only")
    args.device = str(_pick_device(args.device, 0))  # auto -> cuda:0 or cpu; cuda without CUDA: error
    model, _, data = load_run(args.run, device=args.device, checkpoint=args.checkpoint, ema=not args.no_ema)
    if args.png_dir:
        from pygan.export import write_png_samples

        files = write_png_samples(
            model,
            data,
            args.png_dir,
            args.n,
            seed=args.seed,
            overwrite=args.overwrite,
            batch_size=args.batch_size,
        )
        print(f"{args.png_dir}: {len(files)} PNG files ({model.weights} weights)")
        return 0
    fixed = None  # held-out rows for conditional / image-to-image models (as the loop's grids use)
    try:
        fixed = data.load("test").fixed(args.n)
    except (OSError, ValueError) as exc:
        if model.info.kind == "paired":
            raise ValueError(f"sampling an image-to-image model needs its test data: {exc}") from exc
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    out = args.out or os.path.join(args.run, "samples", f"sample_{args.seed}.png")
    render_samples(model, out, args.n, g, fixed)
    if args.save_tensor:
        g = torch.Generator(device=args.device).manual_seed(args.seed)
        torch.save(model.sample(args.n, generator=g, batch=fixed), os.path.splitext(out)[0] + ".pt")
    print(out)
    return 0


def _parse_option(text: str):
    key, eq, val = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise ConfigError(f"--option expects key=value, got {text!r}")
    try:
        return key, json.loads(val)
    except json.JSONDecodeError:
        return key, val


def _cmd_eval(args) -> int:
    from pygan.evaluate import evaluate_run
    from pygan.runs import read_config, run_paths, write_json

    read_config(args.run)  # fails clearly when RUN is not a run directory
    options = dict(_parse_option(o) for o in args.option)
    for key, value in (
        ("metrics", args.metrics),
        ("extractor", args.extractor),
        ("inception_weights", args.inception_weights),
        ("quantize", args.quantize),
    ):
        if value is not None:
            options[key] = value
    if args.no_ema:
        options["ema"] = False
    # evaluate_run checks the options first (unknown --option keys, values out of range: ConfigError
    # before any work); it does not write: the result is written once, below, to --out or RUN/metrics.json
    result = evaluate_run(args.run, write=False, **options)
    out = args.out or run_paths(args.run)["eval"]
    write_json(out, result)
    print(json.dumps(result, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    computed, skipped = result.get("metrics"), result.get("skipped") or {}
    for name, reason in skipped.items():
        print(f"pygan eval: skipped {name}: {reason}", file=sys.stderr)
    if isinstance(computed, dict) and not computed:
        print(
            f"pygan eval: error: no metric could be computed for {args.run}"
            + (f" ({len(skipped)} skipped, reasons above)" if skipped else ""),
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_export(args) -> int:
    from pygan.export import export_run

    out, weights = export_run(args.run, args.out, ema=not args.no_ema, checkpoint=args.checkpoint)
    print(f"{out} ({weights} weights); load it with pygan.load_generator({out!r})")
    return 0


def _bench_dir() -> str | None:
    import pygan

    d = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(pygan.__file__))), "bench")
    return d if os.path.isfile(os.path.join(d, "train_step.py")) else None


def _cmd_bench(args) -> int:
    d = _bench_dir()
    if d is None:
        print(
            "pygan bench: bench/ not found next to the pygan package; it needs a source checkout "
            "(git clone, pip install -e .)",
            file=sys.stderr,
        )
        return 2
    import time

    runs = []
    if args.only in (None, "train"):
        cmd = [sys.executable, os.path.join(d, "train_step.py"), "--device", args.device]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--models", args.models] if args.models else []
        cmd += ["--preset", args.preset] if args.preset else []
        runs.append(cmd)
    if args.only in (None, "ops"):
        cmd = [sys.executable, os.path.join(d, "ops.py"), "--device", args.device]
        runs.append(cmd + (["--quick"] if args.quick else []))
    if args.quick:
        print("pygan bench --quick: a representative subset, about a minute on a 2-core CPU", flush=True)
    else:
        print(
            "pygan bench: the full run (every model x fused/reference x eager/compile at its defaults, then "
            "every op at the paper sizes) takes hours on a CPU; bench/train_step.py prints its estimate "
            "first. pygan bench --quick takes about a minute.",
            flush=True,
        )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # rows reach the terminal as they are printed
    rc = 0
    t0 = time.perf_counter()
    for cmd in runs:
        print("$ " + " ".join(cmd), flush=True)
        rc = subprocess.call(cmd, cwd=os.path.dirname(d), env=env) or rc
    print(f"pygan bench: {'done' if rc == 0 else f'exit code {rc}'} in {time.perf_counter() - t0:.0f} s")
    return rc


COMMANDS = {
    "list": _cmd_list,
    "train": _cmd_train,
    "sample": _cmd_sample,
    "eval": _cmd_eval,
    "export": _cmd_export,
    "bench": _cmd_bench,
}


def _error_status(exc: BaseException) -> int | None:
    """The exit status of an error ``main`` reports in one line: 2 for bad input
    (:class:`~pygan.errors.ConfigError`), 1 for the failures a run can meet (missing or unreadable
    files, bad data, a diverged run, a missing optional package, out of memory); None for anything
    else (a bug: still one line, status 1, and PYGAN_TRACEBACK=1 shows where)."""
    from pygan.data.core import DataError
    from pygan.train import NonFiniteLossError

    if isinstance(exc, ConfigError):
        return 2
    anticipated = (ValueError, TypeError, OSError, DataError, NonFiniteLossError, ImportError)
    oom = getattr(sys.modules.get("torch"), "OutOfMemoryError", None)
    if isinstance(exc, anticipated) or (oom is not None and isinstance(exc, oom)):
        return 1
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status: 0 done, 1 a failure (one line on stderr), 2 bad input
    (argparse usage errors and :class:`~pygan.errors.ConfigError`: one line naming the flag or
    setting), 130 interrupted. No traceback unless ``PYGAN_TRACEBACK=1``."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command's parser, so that the line names the command
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt as exc:
        code = getattr(exc, "exit_code", 130)  # pygan.train.TrainingInterrupted: 130 or 143
        print(f"pygan {args.command}: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return code
    except Exception as exc:
        status = _error_status(exc)
        text = " ".join(str(exc).split()) or type(exc).__name__
        if status is None:
            text = f"unexpected {type(exc).__name__}: {text} (PYGAN_TRACEBACK=1 shows the traceback)"
        print(f"pygan {args.command}: error: {text}", file=sys.stderr)
        if os.environ.get("PYGAN_TRACEBACK"):
            raise
        return 1 if status is None else status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
