"""Forward+backward time of each fused op against eager PyTorch and ``torch.compile`` of the same
reference, measured side by side in one run.

    python bench/ops.py                      # every op, CPU, the issue's sizes
    python bench/ops.py --op residual_add    # one op
    python bench/ops.py --sizes model        # the models' own (small) sizes
    python bench/ops.py --device cuda        # on a GPU: adds the cuda/triton backends, bandwidth
    python bench/ops.py --quick              # seconds: model sizes, no compile, 3 reps

Candidates per case: ``eager`` (the op's pure-PyTorch reference), ``compile`` (torch.compile of
that reference, default mode), and one row per native backend that can run here (``cpp`` on CPU;
``cuda``/``triton`` on GPU). Every candidate is first checked against the eager result (values and
gradients); a mismatch aborts the run (with ``--keep-going`` it is recorded as the row's ``error``
and the candidate is not timed). On CPU candidates are timed interleaved (one call of each in
turn, ``--reps`` rounds) so that drift on a noisy machine hits all of them alike; medians are
reported. On CUDA ``triton.testing.do_bench`` gives the median of fwd+bwd (CUDA events, L2 flushed
between calls; 20th/80th percentiles and the peak memory of one call are recorded too), and the
copy bandwidth is a 1 GiB device-to-device copy (bytes read + written). Results go to
``bench/results/ops-<device>.json`` and a printed table; ratios are eager/candidate and
compile/candidate (higher is better for the candidate). The rows, their sizes and their bytes/flops
model are the op cases' (``pygan/ops/<op>/cases.py``, the declarations the op tests run too).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

import pygan
from pygan import ops
from pygan.ops import op_cases
from pygan.ops._cases import Bench

HERE = os.path.dirname(os.path.abspath(__file__))


# Sizes and the bytes/flops model come from the op cases (pygan/ops/<op>/cases.py), per size set:
# "paper" (the issue's CPU sizes), "model" (the models' own 32x32 digits/DCGAN layers), "large"
# (GPU-filling, hundreds of MB per tensor in float32).
CASES = op_cases()
SIZES = ("paper", "model", "large")


def build_cases(sizes: str) -> list[tuple[Bench, str]]:
    """The benchmark rows of every op case at size set ``sizes``, each with its printed shape note
    (the row's own, else the case's size)."""
    return [
        (bench, bench.shape(sizes) if bench.shape is not None else str(case.bench_sizes[sizes]))
        for case in CASES
        for bench in case.bench
    ]


def _grad_out(out: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(out) if out.dim() == 0 else torch.ones_like(out).mul_(0.5)


def _fwd_bwd(call, fn, inputs, grad_out=None):
    """One forward and backward. ``grad_out`` is made once per case and passed in for timing, so
    that filling it (a full write of the output's size) is not counted against the candidates."""
    out = call(fn)
    return out, torch.autograd.grad(out, inputs, _grad_out(out) if grad_out is None else grad_out)


def _candidates(op: str, device: torch.device, compile: bool = True) -> dict[str, Callable]:
    ref = getattr(ops, f"{op}_ref")
    public = getattr(ops, op)
    cands = {"eager": ref, "compile": torch.compile(ref)} if compile else {"eager": ref}
    backends = ["cpp"] if device.type == "cpu" else ["cuda", "triton"]
    for b in backends:
        if ops.available(b, device):
            cands[b] = lambda *a, _b=b, **k: public(*a, **k, backend=_b)
    return cands


def _check(name, got, want, dtype):
    tol = {torch.float64: 1e-9, torch.float32: 2e-3, torch.bfloat16: 5e-2, torch.float16: 5e-2}[dtype]
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = g.double(), w.double()
        scale = w.abs().max().item() or 1.0
        err = (g - w).abs().max().item() / scale
        if not err <= tol:
            raise SystemExit(f"bench: {name} result {i} differs from eager by {err:.3g} (relative) > {tol}")


# CPU clock: "wall" (time.perf_counter) or "cpu" (time.thread_time with one intra-op thread, else
# time.process_time): on a shared, oversubscribed CPU the wall clock of a multi-threaded op jumps in
# scheduler quanta (the 2-core machine's medians sat on multiples of 8 ms), CPU time does not.
def _cpu_clock(name: str) -> Callable[[], float]:
    if name == "wall":
        return time.perf_counter
    return time.thread_time if torch.get_num_threads() == 1 else time.process_time


def _time_cpu(fns: dict[str, Callable], reps: int, warmup: int, clock: str = "wall") -> dict[str, float]:
    now = _cpu_clock(clock)
    for _ in range(warmup):
        for f in fns.values():
            f()
    samples = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = now()
            f()
            samples[k].append(now() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in samples.items()}


_QUANTILES: dict[str, tuple[float, float]] = {}


def _time_cuda(fns: dict[str, Callable]) -> dict[str, float]:
    """Median ms of each fn with triton.testing.do_bench (CUDA events, L2 flushed between calls);
    the 20th/80th percentiles go to _QUANTILES."""
    from triton.testing import do_bench

    out = {}
    for k, f in fns.items():
        med, p20, p80 = do_bench(f, quantiles=[0.5, 0.2, 0.8])
        out[k] = med
        _QUANTILES[k] = (p20, p80)
    return out


def copy_bandwidth(device: torch.device, nbytes: int | None = None) -> float:
    """Measured device copy bandwidth in GB/s (read + write), the roofline for memory-bound ops.
    On CUDA 1 GiB per side (many times the L2), on CPU 256 MiB."""
    nbytes = nbytes or ((1 << 30) if device.type == "cuda" else (256 << 20))
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).normal_()
    dst = torch.empty_like(src)
    fn = lambda: dst.copy_(src)  # noqa: E731
    t = _time_cuda({"c": fn})["c"] if device.type == "cuda" else _time_cpu({"c": fn}, 20, 3)["c"]
    del fn
    return 2 * nbytes / (t * 1e-3) / 1e9


def peak_memory_mb(fn: Callable, device: torch.device) -> float | None:
    """Peak CUDA memory (MB) allocated during one call of fn, above what was allocated before."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return round((torch.cuda.max_memory_allocated(device) - base) / 2**20, 1)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = pygan._ext.cpu_name()
    return f"{model} x{torch.get_num_threads()} threads"


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def run(args, on_case: Callable[[dict], None] | None = None) -> dict:
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    cases = [(c, note) for c, note in build_cases(args.sizes) if not args.op or c.op in args.op]
    bw = copy_bandwidth(device)
    print(f"# device: {device_name(device)} | torch {torch.__version__} | pygan {pygan.info()}")
    print(f"# copy bandwidth: {bw:.1f} GB/s | dtype {args.dtype} | sizes {args.sizes} | reps {args.reps}")
    rows = []
    for case, note in cases:
        if not hasattr(ops, case.op):
            print(f"{case.name}: not benchmarked: pygan.ops has no {case.op} in this build")
            continue
        inputs, call, nbytes, flops = case.make(args.sizes, dtype, device)
        cands = _candidates(case.op, device, compile=not getattr(args, "no_compile", False))
        results, failed = {}, {}
        for name, fn in cands.items():
            try:
                results[name] = _fwd_bwd(call, fn, inputs)
            except Exception as exc:
                if not args.keep_going or name in ("eager",):
                    raise
                failed[name] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        want_out, want_grads = results["eager"]
        for name, (out, grads) in list(results.items()):
            try:
                _check(f"{case.name}/{name}", [out, *grads], [want_out, *want_grads], dtype)
            except SystemExit as exc:
                if not args.keep_going:
                    raise
                failed[name] = f"mismatch: {exc}"
                del results[name]
        for name, why in failed.items():
            rows.append({"case": case.name, "op": case.op, "shape": note, "candidate": name, "error": why})
            print(f"{case.name:28s} {note:22s} {name:8s} NOT TIMED ({why})", flush=True)
        g_out = _grad_out(want_out)
        del want_out, want_grads
        out = grads = None  # drop the last checked result before timing
        results.clear()
        fns = {
            name: (lambda fn=fn, c=call, i=inputs, g=g_out: _fwd_bwd(c, fn, i, g))
            for name, fn in cands.items()
            if name not in failed
        }
        times = (
            _time_cuda(fns) if device.type == "cuda" else _time_cpu(fns, args.reps, args.warmup, args.clock)
        )
        for name, ms in times.items():
            row = {
                "case": case.name,
                "op": case.op,
                "shape": note,
                "candidate": name,
                "ms": round(ms, 4),
                "vs_eager": round(times["eager"] / ms, 3),
                "vs_compile": round(times["compile"] / ms, 3) if "compile" in times else None,
                "bytes": nbytes,
                "GB/s": round(nbytes / (ms * 1e-3) / 1e9, 1),
                "frac_copy_bw": round(nbytes / (ms * 1e-3) / 1e9 / bw, 3),
            }
            if flops:
                row["flops"] = flops
                row["TFLOP/s"] = round(flops / (ms * 1e-3) / 1e12, 4)
            if device.type == "cuda":
                row["ms_p20_p80"] = [round(q, 4) for q in _QUANTILES[name]]
                row["peak_MB"] = peak_memory_mb(fns[name], device)
            rows.append(row)
            extra = f" {row['TFLOP/s']:.3f} TFLOP/s" if flops else ""
            vs_compile = f"x{row['vs_compile']:5.2f}" if row["vs_compile"] is not None else "   n/a"
            print(
                f"{case.name:28s} {note:22s} {name:8s} {ms:9.3f} ms  x{row['vs_eager']:5.2f} eager"
                f"  {vs_compile} compile  {row['GB/s']:7.1f} GB/s "
                f"({row['frac_copy_bw']:.0%} of copy){extra}",
                flush=True,
            )
        del inputs, call, fns, cands
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if on_case is not None:  # partial results survive a run that is cut short
            on_case(_result(args, device, bw, rows, partial=True))
    return _result(args, device, bw, rows)


def _result(args, device, bw, rows, partial=False) -> dict:
    return {
        "command": "python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
        "device": device_name(device),
        "clock": getattr(args, "clock", "wall") if device.type == "cpu" else "cuda events",
        "load_avg_1min": os.getloadavg()[0],
        "triton": _triton_version(),
        "torch": torch.__version__,
        "pygan": pygan.info(),
        "dtype": args.dtype,
        "sizes": args.sizes,
        "copy_bandwidth_GBps": round(bw, 1),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "partial": partial,
        "rows": list(rows),
    }


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--op", action="append", help="op name (repeatable); default: all")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "float64"])
    p.add_argument("--sizes", default=None, choices=sorted(SIZES), help="default paper (--quick: model)")
    p.add_argument("--reps", type=int, default=None, help="timed calls per candidate (default 25; --quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 3; --quick 1)")
    p.add_argument("--no-compile", action="store_true", help="no torch.compile candidate (compiling is slow)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run in seconds: --sizes model (unless given), --reps 3 --warmup 1 --no-compile; "
        "writes ops-<device>-<dtype>-quick.json",
    )
    p.add_argument("--threads", type=int, help="intra-op threads on CPU (default: torch's)")
    p.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="CPU timing clock: wall, or CPU time of the process (of the thread with --threads 1), "
        "steadier on a shared machine",
    )
    p.add_argument("--out", help="JSON path (default bench/results/ops-<device>-<dtype>-<sizes>.json)")
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="record a candidate that fails or differs from eager (row 'error') and go on, instead of "
        "aborting (bench/gpu.sh uses this so that one broken backend does not lose the other numbers)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.no_compile = True
        args.threads = args.threads or 1  # on a loaded machine a multi-threaded call mostly waits
    args.sizes = args.sizes or ("model" if args.quick else "paper")
    args.reps = args.reps if args.reps is not None else (3 if args.quick else 25)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    if args.reps < 1 or args.warmup < 0:
        p.error("--reps must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    suffix = (
        f"-{args.threads}t-{args.clock}"
        if args.device == "cpu" and (args.threads or args.clock != "wall")
        else ""
    )
    out = args.out or os.path.join(
        HERE,
        "results",
        f"ops-{args.device}-{args.dtype}-{'quick' if args.quick else args.sizes}{suffix}.json",
    )
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)

    def save(result):
        with open(out, "w") as f:
            json.dump(result, f, indent=1)

    result = run(args, on_case=save)
    save(result)
    print(f"# wrote {os.path.relpath(out)}")
    return result


if __name__ == "__main__":
    main()
