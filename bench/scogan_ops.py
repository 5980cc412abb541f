"""The fused ops' share of a SCoGAN training step: every ``pygan.ops`` call that one WGAN-GP critic
step and one generator step (all four regularisers) make is captured with its real arguments, then
replayed forward + backward with the fused backend and with ``PYGAN_BACKEND=reference``, interleaved,
timed by process CPU time (steady on a shared machine); medians. The whole phases come from
``bench/train_step.py --phases``; this says how much of a phase the ops are, and what fusing saves.

    python bench/scogan_ops.py --set g_width=64 --set d_width=10 --set batch_size=32

Ops whose inputs need no gradient in the step (``interpolate``) are timed forward only.
``gradient_penalty`` is timed whole (interpolation, the critic's forward, its input gradient with
``create_graph=True`` and the backward of the penalty through the double backward) and its fused
pieces alone (``interpolate``, ``grad_norm_penalty``: the part the backend changes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import pygan.models.cogan as cogan_mod  # noqa: E402
import pygan.models.scogan as scogan_mod  # noqa: E402
from pygan import ops  # noqa: E402
from pygan.data import Loader, load_data  # noqa: E402
from pygan.models import build_model  # noqa: E402
from pygan.ops import _backend  # noqa: E402


def _clone(x):
    if isinstance(x, torch.Tensor):
        return x.detach().clone().requires_grad_(x.requires_grad)
    if isinstance(x, (list, tuple)):
        return type(x)(_clone(t) for t in x)
    return x


def _capture(model, batch) -> list[tuple[str, callable, tuple, dict]]:
    """Run one critic step and one generator step, recording each op call (name, fn, args, kwargs)."""
    calls = []
    patched = [
        (cogan_mod, "gradient_penalty", ops.gradient_penalty),
        (scogan_mod, "feature_regularizer", ops.feature_regularizer),
        (ops, "style_loss", ops.style_loss),
    ]

    def wrap(name, fn):
        def f(*a, **k):
            calls.append((name, fn, tuple(_clone(x) for x in a), dict(k)))
            return fn(*a, **k)

        return f

    for mod, name, fn in patched:
        setattr(mod, name, wrap(name, fn))
    try:
        for fn in model.bench_phases().values():
            fn(batch)
    finally:
        for mod, name, fn in patched:
            setattr(mod, name, fn)
    # the penalty's fused pieces at the penalty's shapes
    for name, _fn, a, k in list(calls):
        if name == "gradient_penalty":
            real = a[1]
            g = torch.randn_like(real, requires_grad=True)
            alpha = torch.rand(len(real))
            calls.append(("  interpolate", ops.interpolate, (real, a[2], alpha), {}))
            calls.append(
                ("  grad_norm_penalty", ops.grad_norm_penalty, (g, 1.0, k.get("weight", 10.0), False), {})
            )
    return calls


def _fwd_bwd(fn, a, k):
    a = _clone(a)
    out = fn(*a, **k)
    out = out[0] if isinstance(out, tuple) else out
    if out.requires_grad:  # interpolate's inputs are detached in the penalty: forward only
        out.sum().backward()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="digits32-edge")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="result JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_data(args.data, "train")
    overrides = ["loss=wgan-gp", "regularizers=fr,sl,cc,pl", *args.overrides]
    model = build_model("scogan", data.info, overrides)
    model.optimizers = model.configure_optimizers()
    model.train()
    batch = next(iter(Loader(data, model.batch_size * model.batches_per_step, seed=0)))
    calls = _capture(model, batch)
    times = {i: {"fused": [], "reference": []} for i in range(len(calls))}
    for _ in range(args.reps):
        for i, (_, fn, a, k) in enumerate(calls):
            for backend in ("fused", "reference"):
                old = os.environ.pop(_backend.ENV_VAR, None)
                if backend == "reference":
                    os.environ[_backend.ENV_VAR] = "reference"
                try:
                    t = time.process_time()
                    _fwd_bwd(fn, a, k)
                    times[i][backend].append(time.process_time() - t)
                finally:
                    os.environ.pop(_backend.ENV_VAR, None)
                    if old is not None:
                        os.environ[_backend.ENV_VAR] = old
    rows = []
    print(f"# scogan {' '.join(overrides)} | {args.data} | threads {torch.get_num_threads()} | CPU time")
    print(f"{'op (fwd+bwd)':<22} {'input shape':<34} {'fused ms':>9} {'ref ms':>9} {'ref/fused':>9}")
    for i, (name, _, a, _) in enumerate(calls):
        first = a[1] if name == "gradient_penalty" else a[0]
        first = first[0] if isinstance(first, (list, tuple)) else first
        shape = "x".join(map(str, first.shape)) + (
            f" (+{len(a[0]) - 1} maps)" if isinstance(a[0], (list, tuple)) else ""
        )
        f, r = (statistics.median(times[i][b]) * 1e3 for b in ("fused", "reference"))
        rows.append({"op": name.strip(), "shape": shape, "fused_ms": f, "reference_ms": r})
        print(f"{name:<22} {shape:<34} {f:>9.3f} {r:>9.3f} {r / f:>8.2f}x")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(
                {"overrides": overrides, "data": args.data, "reps": args.reps, "rows": rows}, fh, indent=2
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
