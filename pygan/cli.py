"""The ``pygan`` command (console script, and ``python -m pygan``).

::

    pygan list                                   models (with their Config defaults) and datasets
    pygan train MODEL --data NAME|PATH --steps N --out DIR [--set key=value ...]
    pygan sample RUN [--n 64] [--out FILE.png]   a grid from a trained run
    pygan eval RUN [--option key=value ...]      metrics JSON (pygan.metrics.evaluate_run)
    pygan bench [--quick]                        bench/train_step.py and bench/ops.py

Multi-process: ``torchrun --nproc_per_node 2 -m pygan train ...`` (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import typing

__all__ = ["build_parser", "main"]

EPILOG_TRAIN = """examples:
  pygan train wgan-gp --data digits32 --steps 2000 --out runs/digits
  pygan train wgan-gp --data ring8 --steps 3000 --out runs/ring --set batch_size=256
  pygan train wgan-gp --data mnist:/data/mnist?size=32 --steps 20000 --out runs/mnist
  pygan train wgan-gp --data digits32 --steps 4000 --out runs/digits --resume
  pygan train wgan-gp --data digits64 --steps 20000 --out runs/gpu --device cuda --cuda-graphs
  torchrun --nproc_per_node 2 -m pygan train wgan-gp --data digits32 --steps 1000 --out runs/ddp

Model settings are the model's Config fields (pygan list shows them and their defaults, the paper's
numbers where the paper states them); --set key=value overrides one, typed from the field."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
    )
    t.add_argument("model", help="registered model name (pygan list)")
    t.add_argument("--data", help="dataset name or path (pygan list data); default: the model's own")
    t.add_argument("--data-b", help="a second dataset: domain B of a two-domain set (e.g. MNIST -> SVHN)")
    t.add_argument("--steps", type=int, required=True, help="training iterations in total (resume counts on)")
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model Config field (repeatable)",
    )
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    t.add_argument("--amp", action="store_true", help="bf16 autocast (off by default)")
    t.add_argument("--log-every", type=int, default=10, help="metrics.jsonl line every N steps")
    t.add_argument(
        "--sample-every", type=int, default=500, help="sample grid every N steps (0: only at the end)"
    )
    t.add_argument("--ckpt-every", type=int, default=500, help="checkpoint every N steps (and at the end)")
    t.add_argument("--eval-every", type=int, default=0, help="model.evaluate on the test split every N steps")
    t.add_argument("--n-samples", type=int, default=64, help="images per sample grid")
    t.add_argument("--keep-checkpoints", action="store_true", help="keep every checkpoint, not only last.pt")
    t.add_argument("--compile", action="store_true", help="torch.compile what the model allows (one process)")
    t.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="capture each training iteration once as a CUDA graph and replay it (CUDA, one process)",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard scalars")
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    t.add_argument(
        "--workers",
        type=int,
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
    s.add_argument("--n", type=int, default=64, help="number of samples")
    s.add_argument("--out", help="output PNG (default RUN/samples/sample_<seed>.png)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--checkpoint", help="a checkpoint file (default RUN/checkpoints/last.pt)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--save-tensor", action="store_true", help="also save the samples as a .pt tensor")

    e = sub.add_parser(
        "eval",
        help="evaluate a trained run (metrics JSON)",
        description="Compute RUN's metrics with pygan.metrics.evaluate_run and write RUN/metrics.json.",
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

    b = sub.add_parser(
        "bench",
        help="run the benchmarks (bench/train_step.py, bench/ops.py)",
        description="Run bench/train_step.py (every model: img/s, peak memory; fused vs "
        "reference, eager vs compile) and bench/ops.py (per-op). Needs a source checkout.",
    )
    b.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    b.add_argument("--only", choices=("train", "ops"), help="run only one of the two")
    b.add_argument("--device", default="cpu")
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


def _cmd_train(args) -> int:
    import torch

    from pygan.models import get_model
    from pygan.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    cls = get_model(args.model)
    data = args.data or cls.default_data
    train(
        args.model,
        data,
        args.out,
        args.steps,
        data_b=args.data_b,
        overrides=args.overrides,
        resume=args.resume,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        log_every=args.log_every,
        sample_every=args.sample_every,
        ckpt_every=args.ckpt_every,
        eval_every=args.eval_every,
        n_samples=args.n_samples,
        keep_checkpoints=args.keep_checkpoints,
        compile=args.compile,
        cuda_graphs=args.cuda_graphs,
        progress=not args.no_progress,
        tensorboard=not args.no_tensorboard,
        workers=args.workers,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: {args.out} (samples/last.png, metrics.jsonl, checkpoints/last.pt)")
    return 0


def _cmd_sample(args) -> int:
    import torch

    from pygan.train import load_run, render_samples

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    model, _, data = load_run(args.run, device=args.device, checkpoint=args.checkpoint)
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
    if not eq or not key:
        raise ValueError(f"--option expects key=value, got {text!r}")
    try:
        return key, json.loads(val)
    except json.JSONDecodeError:
        return key, val


def _cmd_eval(args) -> int:
    from pygan.train import _write_json, read_config, run_paths

    read_config(args.run)  # fails clearly when RUN is not a run directory
    try:
        import pygan.metrics as metrics
    except ImportError as exc:
        print(
            f"pygan eval: the metrics package (pygan.metrics) is not available in this install ({exc}). "
            "It provides evaluate_run(run_dir, **options); install or update pygan to get it.",
            file=sys.stderr,
        )
        return 2
    if not hasattr(metrics, "evaluate_run"):
        print("pygan eval: pygan.metrics has no evaluate_run(run_dir, **options)", file=sys.stderr)
        return 2
    options = dict(_parse_option(o) for o in args.option)
    result = metrics.evaluate_run(args.run, **options)
    out = args.out or run_paths(args.run)["eval"]
    _write_json(out, result)
    print(json.dumps(result, indent=2))
    print(f"wrote {out}", file=sys.stderr)
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
    runs = []
    if args.only in (None, "train"):
        cmd = [sys.executable, os.path.join(d, "train_step.py"), "--device", args.device]
        runs.append(cmd + (["--quick"] if args.quick else []))
    if args.only in (None, "ops"):
        cmd = [sys.executable, os.path.join(d, "ops.py"), "--device", args.device]
        runs.append(cmd + (["--reps", "3", "--sizes", "model"] if args.quick else []))
    rc = 0
    for cmd in runs:
        print("$ " + " ".join(cmd), flush=True)
        rc = subprocess.call(cmd, cwd=os.path.dirname(d)) or rc
    return rc


COMMANDS = {
    "list": _cmd_list,
    "train": _cmd_train,
    "sample": _cmd_sample,
    "eval": _cmd_eval,
    "bench": _cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (errors print one line, status 1; usage errors 2)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from pygan.data.files import DataError
        from pygan.train import NonFiniteLossError

        if isinstance(
            exc,
            (
                ValueError,
                TypeError,
                FileNotFoundError,
                FileExistsError,
                DataError,
                NonFiniteLossError,
                ImportError,
            ),
        ):
            print(f"pygan {args.command}: error: {exc}", file=sys.stderr)
            if os.environ.get("PYGAN_TRACEBACK"):
                raise
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
