"""Per-call cost of every public fused op against the plain PyTorch expression users write in its
place, forward + backward, side by side in one run (pygan issue 13).

    python bench/overhead.py                         # CPU: one thread, CPU time, tiny + model sizes
    python bench/overhead.py --sizes tiny --reps 4000
    python bench/overhead.py --device cuda           # lent GPU: host and device time per call (~1 min)
    python bench/overhead.py --device cuda --quick   # fewer calls
    python bench/overhead.py --backends default,triton --device cuda   # + explicit backends

Each case is one fwd+bwd (``torch.autograd.grad`` with a prepared output gradient) of

* ``plain``: the expression a user writes without pygan (no argument checks), e.g.
  ``torch.tanh(base.detach() + residual)`` for ``residual_add(base, residual, "tanh")``;
* ``pygan``: the public op with its default backend (``backend=None``: argument checks, backend
  choice, the op); with ``--backends`` also explicit ones (``cpp``, ``cuda``, ``triton``,
  ``reference``).

Both are first checked to agree (values and gradients); a mismatch aborts the run.

CPU: intra-op threads from ``--threads`` (default 1), calls interleaved (one call of each candidate
in turn) so drift hits all alike, each call timed alone with ``--clock`` (``cpu``: the thread's CPU
time, default; ``wall``); median and 20th/80th percentiles per candidate.

CUDA: calls are issued in batches (at most ``--batch`` calls, and few enough that a batch's launches
cannot fill the GPU's launch queue) behind a ``torch.cuda._sleep`` long enough to cover the batch's
host time, so the GPU never waits for the host and the host never waits for the GPU:

* ``host``: the host (wall-clock) time per call spent issuing the batch (the queue is kept full, so
  this is the CPU cost alone: Python, dispatcher, autograd, allocator, launches);
* ``device``: CUDA-event time per call from the batch's first kernel to its last (kernels back to
  back, launch gaps included, no host stalls);

a step of a host-bound model costs about max(host, device) per op. Medians over batches, interleaved
candidates. ``torch.cuda.synchronize()`` brackets every batch.

Writes ``bench/results/overhead-<device>.json`` and ``.txt`` (the printed table), or ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

import pygan
from pygan import ops

HERE = os.path.dirname(os.path.abspath(__file__))

SIZES = {
    # The tiny shapes: one call costs microseconds of work, so per-call overhead decides.
    "tiny": {
        "img": (4, 3, 8, 8),
        "feat": [(4, 8, 4, 4)] * 3,
        "style": (4, 8, 4, 4),
        "critic": (3, 8, 8),
    },
    # The models' own sizes (32x32 digits/DCGAN layers, bench/ops.py --sizes model).
    "model": {
        "img": (64, 3, 32, 32),
        "feat": [(64, 512, 4, 4), (64, 256, 8, 8), (64, 128, 16, 16)],
        "style": (64, 64, 16, 16),
        "critic": (3, 32, 32),
    },
}


@dataclass
class Case:
    """``make(device, dtype)`` returns a :class:`Made`."""

    name: str
    op: str
    shape: str
    make: Callable


@dataclass
class Made:
    """The tensors to differentiate, the plain expression (returns the output), ``call(backend)`` ->
    the public op's closure for that backend (None: the default), the output gradient (None for a
    scalar output) and, for the penalty, a dict whose ``alpha`` (when set) fixes the draw."""

    inputs: list
    plain: Callable
    call: Callable
    grad_out: torch.Tensor | None = None
    state: dict | None = None


def _randn(shape, device, dtype, grad=False):
    return torch.randn(shape, device=device, dtype=dtype).requires_grad_(grad)


def _gram_plain(f):
    F = f.flatten(2)
    return torch.bmm(F, F.transpose(1, 2)) / (f.shape[1] * F.shape[2])


def _critic(channels: int, hw: int, device, dtype) -> torch.nn.Module:
    """A WGAN-GP critic without normalisation: one conv at 8 px, DCGAN-like (3 strided convs) at 32 px."""
    g = torch.Generator().manual_seed(0)
    if hw <= 8:
        layers = [torch.nn.Conv2d(channels, 8, 3, padding=1), torch.nn.LeakyReLU(0.2)]
        width = 8 * hw * hw
    else:
        layers, c, h = [], channels, hw
        for out in (32, 64, 128):
            layers += [torch.nn.Conv2d(c, out, 4, 2, 1), torch.nn.LeakyReLU(0.2)]
            c, h = out, h // 2
        width = c * h * h
    net = torch.nn.Sequential(*layers, torch.nn.Flatten(), torch.nn.Linear(width, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return net.to(device=device, dtype=dtype)


def build_cases(sizes: dict) -> list[Case]:
    img, feat, style, critic_shape = sizes["img"], sizes["feat"], sizes["style"], sizes["critic"]
    cases = []

    def residual(act):
        def make(device, dtype):
            base = _randn(img, device, dtype)
            res = _randn(img, device, dtype, grad=True)
            if act == "tanh":

                def plain():
                    return torch.tanh(base.detach() + res)

            else:

                def plain():
                    return base.detach() + res

            def call(backend):
                return lambda: ops.residual_add(base, res, act, backend=backend)

            return Made([res], plain, call, torch.randn(img, device=device, dtype=dtype))

        return make

    cases.append(Case("residual_add tanh", "residual_add", str(img), residual("tanh")))
    cases.append(Case("residual_add none", "residual_add", str(img), residual(None)))

    def featreg(device, dtype):
        a = [_randn(s, device, dtype, grad=True) for s in feat]
        b = [_randn(s, device, dtype, grad=True) for s in feat]

        def plain():
            total = None
            for x, y in zip(a, b):
                t = (x - y).square().mean()
                total = t if total is None else total + t
            return total

        def call(backend):
            return lambda: ops.feature_regularizer(a, b, 2, backend=backend)

        return Made(a + b, plain, call)

    cases.append(Case("feature_regularizer p=2 x3", "feature_regularizer", f"{feat[0]}..x3", featreg))

    def gram(device, dtype):
        f = _randn(style, device, dtype, grad=True)
        go = torch.randn(style[0], style[1], style[1], device=device, dtype=dtype)

        def call(backend):
            return lambda: ops.gram_matrix(f, backend=backend)

        return Made([f], lambda: _gram_plain(f), call, go)

    cases.append(Case("gram_matrix", "gram_matrix", str(style), gram))

    def style_loss(both):
        def make(device, dtype):
            fx = _randn(style, device, dtype, grad=True)
            fy = _randn(style, device, dtype, grad=both)

            def plain():
                return (_gram_plain(fx) - _gram_plain(fy)).square().mean()

            def call(backend):
                return lambda: ops.style_loss(fx, fy, backend=backend)

            return Made([fx, fy] if both else [fx], plain, call)

        return make

    cases.append(Case("style_loss (both grads)", "style_loss", str(style), style_loss(True)))
    cases.append(Case("style_loss (target fixed)", "style_loss", str(style), style_loss(False)))

    def interp(device, dtype):
        real = _randn(img, device, dtype, grad=True)
        fake = _randn(img, device, dtype, grad=True)
        alpha = torch.rand(img[0], device=device, dtype=dtype)

        def plain():
            return real + alpha.view(-1, 1, 1, 1) * (fake - real)

        def call(backend):
            return lambda: ops.interpolate(real, fake, alpha, backend=backend)

        return Made([real, fake], plain, call, torch.randn(img, device=device, dtype=dtype))

    cases.append(Case("interpolate", "interpolate", str(img), interp))

    def penalty_tail(device, dtype):
        g = _randn(img, device, dtype, grad=True)

        def plain():
            return 10.0 * (g.flatten(1).norm(2, dim=1) - 1.0).square().mean()

        def call(backend):
            return lambda: ops.grad_norm_penalty(g, 1.0, 10.0, backend=backend)

        return Made([g], plain, call)

    cases.append(Case("grad_norm_penalty", "grad_norm_penalty", str(img), penalty_tail))

    def penalty(device, dtype):
        b = img[0]
        critic = _critic(critic_shape[0], critic_shape[1], device, dtype)
        real = _randn((b, *critic_shape), device, dtype)
        fake = _randn((b, *critic_shape), device, dtype)
        state = {"alpha": None, "batch": b}

        def draw():
            a = state["alpha"]
            return a if a is not None else torch.rand(b, device=device, dtype=dtype)

        def plain():
            alpha = draw().view(-1, 1, 1, 1)
            x = (real + alpha * (fake - real)).requires_grad_(True)
            (gx,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
            return 10.0 * (gx.flatten(1).norm(2, dim=1) - 1.0).square().mean()

        def call(backend):
            return lambda: ops.gradient_penalty(critic, real, fake, alpha=draw(), backend=backend)

        return Made(list(critic.parameters()), plain, call, None, state)

    shape = f"{(img[0], *critic_shape)}"
    cases.append(Case("gradient_penalty (critic)", "gradient_penalty", shape, penalty))
    return cases


def _grad_fn(fn, inputs, grad_out):
    def run():
        out = fn()
        # allow_unused: the penalty does not depend on the critic's last bias.
        return out, torch.autograd.grad(out, inputs, grad_out, allow_unused=True)

    return run


def _ran(out: torch.Tensor) -> str:
    """What a call ran, from its graph: the pygan nodes in it (e.g. ``pygan::residual_addBackward``,
    ``pygan_triton...``), else the root node's name (e.g. ``AddBackward0``: plain PyTorch)."""
    seen, stack, names = set(), [out.grad_fn], []
    while stack and len(seen) < 64:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if "pygan" in fn.name() and fn.name() not in names:
            names.append(fn.name())
        stack.extend(f for f, _ in fn.next_functions)
    return ",".join(names) if names else (out.grad_fn.name() if out.grad_fn is not None else "-")


def _check(name: str, got, want, dtype) -> float:
    tol = {torch.float64: 1e-9, torch.float32: 2e-4, torch.bfloat16: 5e-2, torch.float16: 5e-3}[dtype]
    worst = 0.0
    for i, (g, w) in enumerate(zip(got, want)):
        if g is None or w is None:
            if (g is None) != (w is None):
                raise SystemExit(f"overhead: {name}: result {i} is None for only one candidate")
            continue
        g, w = g.double(), w.double()
        scale = max(w.abs().max().item(), 1e-30)
        err = (g - w).abs().max().item() / scale
        worst = max(worst, err)
        if not err <= tol:
            raise SystemExit(f"overhead: {name}: pygan differs from plain by {err:.3g} (relative) > {tol}")
    return worst


def _clock(name: str) -> Callable[[], int]:
    if name == "wall":
        return time.perf_counter_ns
    return time.thread_time_ns if torch.get_num_threads() == 1 else time.process_time_ns


def _quantiles(xs: list[float]) -> tuple[float, float, float]:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2], xs[int(0.2 * (n - 1))], xs[int(0.8 * (n - 1))]


def time_cpu(fns: dict[str, Callable], reps: int, warmup: int, clock: str) -> dict[str, dict]:
    now = _clock(clock)
    for _ in range(warmup):
        for f in fns.values():
            f()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = now()
            f()
            samples[k].append((now() - t0) / 1e3)
    out = {}
    for k, v in samples.items():
        med, p20, p80 = _quantiles(v)
        out[k] = {"us": med, "p20": p20, "p80": p80}
    return out


def _sleep_rate(device) -> float:
    """GPU cycles of torch.cuda._sleep per microsecond (measured)."""
    torch.cuda.synchronize(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    cycles = 20_000_000
    start.record()
    torch.cuda._sleep(cycles)
    end.record()
    end.synchronize()
    return cycles / (start.elapsed_time(end) * 1e3)


# A batch's host time stays under this many microseconds, so that its kernel launches (each costs the
# host at least ~2 us) cannot fill the GPU's launch queue (~1k entries) while torch.cuda._sleep holds
# the GPU: a full queue would block the host and count the wait as host time.
LAUNCH_BUDGET_US = 1500.0


def time_cuda(fns: dict[str, Callable], batches: int, batch: int, warmup: int, device) -> dict[str, dict]:
    """Host and device time per call of each fn (see the module docstring), interleaved."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    torch.cuda.synchronize(device)
    rate = _sleep_rate(device)
    # Host time of one call with the GPU idle (launches are asynchronous, nothing here syncs): the
    # fastest of a few. It sizes each candidate's batch and the sleep that covers it, once, so a slow
    # batch cannot feed back into longer sleeps.
    est, calls = {}, {}
    for k, f in fns.items():
        ts = []
        for _ in range(5):
            torch.cuda.synchronize(device)
            t0 = time.perf_counter_ns()
            f()
            ts.append((time.perf_counter_ns() - t0) / 1e3)
        est[k] = min(ts)
        calls[k] = max(1, min(batch, int(LAUNCH_BUDGET_US / est[k])))
    torch.cuda.synchronize(device)
    host: dict[str, list[float]] = {k: [] for k in fns}
    dev: dict[str, list[float]] = {k: [] for k in fns}
    stalls = {k: 0 for k in fns}
    for _ in range(batches):
        for k, f in fns.items():
            n = calls[k]
            cover_us = 3.0 * est[k] * n + 500.0
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            torch.cuda._sleep(int(cover_us * rate))
            start.record()
            t0 = time.perf_counter_ns()
            for _ in range(n):
                f()
            t_host = (time.perf_counter_ns() - t0) / 1e3
            end.record()
            end.synchronize()
            if t_host > cover_us:  # the GPU may have waited for the host: device time not clean
                stalls[k] += 1
            host[k].append(t_host / n)
            dev[k].append(start.elapsed_time(end) * 1e3 / n)
    out = {}
    for k in fns:
        hm, h20, h80 = _quantiles(host[k])
        dm, d20, d80 = _quantiles(dev[k])
        out[k] = {
            "us": hm,
            "p20": h20,
            "p80": h80,
            "device_us": dm,
            "device_p20": d20,
            "device_p80": d80,
            "calls_per_batch": calls[k],
        }
        if stalls[k]:
            out[k]["host_outran_sleep"] = stalls[k]
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{pygan._ext.cpu_name()} x{torch.get_num_threads()} threads"


def run(args) -> dict:
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    extra = [b for b in args.backends.split(",") if b and b != "default"]
    rows = []
    header = f"{'case':28s} {'size':26s} {'candidate':10s}"
    if device.type == "cuda":
        header += f" {'host us':>9s} {'x plain':>7s} {'device us':>9s} {'x plain':>7s}"
    else:
        header += f" {'us':>9s} {'p20-p80':>15s} {'x plain':>7s}"
    if device.type == "cuda":
        how = f"host wall (queue kept full) + CUDA events | batches {args.batches} x {args.batch} calls"
    else:
        how = f"{args.clock} clock, {torch.get_num_threads()} thread(s) | reps {args.reps} (model sizes: /10)"
    lines = [
        f"# {device_name(device)} | torch {torch.__version__} | pygan {pygan.info()}",
        f"# dtype {args.dtype} | {how} | x plain = time / plain's (<= 1.10: the issue's target)",
        header,
    ]
    for line in lines:
        print(line, flush=True)
    for size in args.sizes.split(","):
        for case in build_cases(SIZES[size]):
            if args.op and case.op not in args.op:
                continue
            torch.manual_seed(0)
            made = case.make(device, dtype)
            fns = {"plain": made.plain, "pygan": made.call(None)}
            for b in extra:
                if ops.available(b, device):
                    fns[b] = made.call(b)
            inputs, grad_out = made.inputs, made.grad_out
            # Correctness first (the penalty on one shared alpha; the timed calls draw their own).
            if made.state is not None:
                made.state["alpha"] = torch.rand(made.state["batch"], device=device, dtype=dtype)
            results = {k: _grad_fn(f, inputs, grad_out)() for k, f in fns.items()}
            ran = {k: _ran(r[0]) for k, r in results.items()}
            want = [results["plain"][0], *results["plain"][1]]
            errs = {k: _check(f"{case.name}/{k}", [r[0], *r[1]], want, dtype) for k, r in results.items()}
            del results, want
            if made.state is not None:
                made.state["alpha"] = None
            timed = {k: _grad_fn(f, inputs, grad_out) for k, f in fns.items()}
            if device.type == "cuda":
                t = time_cuda(timed, args.batches, args.batch, args.warmup, device)
            else:
                reps = args.reps if size == "tiny" else max(args.reps // 10, 30)
                t = time_cpu(timed, reps, args.warmup, args.clock)
            for k, r in t.items():
                row = {
                    "case": case.name,
                    "op": case.op,
                    "size": size,
                    "shape": case.shape,
                    "candidate": k,
                    **{m: round(v, 3) if isinstance(v, float) else v for m, v in r.items()},
                    "vs_plain": round(r["us"] / t["plain"]["us"], 3),
                    "max_rel_err_vs_plain": errs[k],
                    "ran": ran[k],
                }
                line = f"{case.name:28s} {size + ' ' + case.shape:26s} {k:10s}"
                if device.type == "cuda":
                    row["device_vs_plain"] = round(r["device_us"] / t["plain"]["device_us"], 3)
                    line += f" {r['us']:9.1f} {row['vs_plain']:7.2f}"
                    line += f" {r['device_us']:9.1f} {row['device_vs_plain']:7.2f}"
                else:
                    line += f" {r['us']:9.1f} {r['p20']:7.1f}-{r['p80']:<7.1f} {row['vs_plain']:7.2f}"
                rows.append(row)
                lines.append(line)
                print(line, flush=True)
            del timed, fns, made, inputs
    return {
        "command": "python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
        "device": device_name(device),
        "torch": torch.__version__,
        "pygan": pygan.info(),
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "clock": "host wall (queue kept full) + CUDA events" if device.type == "cuda" else args.clock,
        "load_avg_1min": os.getloadavg()[0],
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "rows": rows,
        "table": lines,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "float64"])
    p.add_argument("--sizes", default="tiny,model", help="comma list of: " + ", ".join(SIZES))
    p.add_argument("--op", action="append", help="public op name (repeatable); default: all")
    p.add_argument(
        "--backends",
        default="default",
        help="comma list: 'default' (backend=None) plus explicit backends to time too, e.g. default,triton",
    )
    p.add_argument(
        "--reps", type=int, default=2000, help="CPU: calls per candidate at tiny sizes (model: /10)"
    )
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1)")
    p.add_argument("--clock", default="cpu", choices=["cpu", "wall"], help="CPU clock (default: CPU time)")
    p.add_argument("--batches", type=int, default=25, help="CUDA: timed batches per candidate")
    p.add_argument("--batch", type=int, default=40, help="CUDA: calls per batch")
    p.add_argument("--quick", action="store_true", help="fewer calls: CPU reps 300, CUDA 8 batches x 20")
    p.add_argument("--out", help="output stem (default bench/results/overhead-<device>); .json and .txt")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.batches, args.batch, args.warmup = 300, 8, 20, 5
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("overhead: --device cuda needs a GPU")
    stem = args.out or os.path.join(HERE, "results", f"overhead-{args.device}")
    stem = stem[:-5] if stem.endswith(".json") else stem
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    t0 = time.perf_counter()
    result = run(args)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    with open(stem + ".txt", "w") as f:
        f.write("\n".join(result["table"]) + "\n")
    print(f"# {result['seconds']} s; wrote {os.path.relpath(stem)}.json/.txt")
    return result


if __name__ == "__main__":
    main()
