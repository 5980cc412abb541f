"""Training-step throughput and peak memory of every registered model, with the fused ops against
``PYGAN_BACKEND=reference`` and eager against ``torch.compile``, measured side by side in one run.

    python bench/train_step.py                    # every model, its default data and paper config
    python bench/train_step.py --models wgan-gp --set width=32 --reps 15
    python bench/train_step.py --quick            # a smoke run (fewer repetitions)
    python bench/train_step.py --device cuda      # on a GPU
    python bench/train_step.py --models scogan --phases   # also each sub-step the model names

For each model, four variants are built from the same seed (same weights, same batches): ``fused``
(the default backend: the native kernels where pygan has them) or ``reference`` (every op's
pure-PyTorch reference), each ``eager`` or ``compile`` (``model.compile_networks()``: what the model
allows; a critic's double backward stays eager). After warm-up (which includes compilation), one
training step of each variant is timed in turn for ``--reps`` rounds, so that drift on a noisy
machine hits all variants alike; the median is reported.

* ``--clock cpu`` times with the process's CPU time instead of the wall clock: on a shared,
  oversubscribed CPU machine the wall clock mostly measures waiting for a core.
* img/s = real images consumed per step (``batch_size * batches_per_step``, e.g. 5 critic batches
  of 64 for WGAN-GP) / median step time.
* peak memory: on CUDA ``torch.cuda.max_memory_allocated`` during one step, above what was allocated
  before it; on CPU the peak of the running sum of the tensor allocations and frees that torch's
  profiler records during one step (``profile_memory=True``), i.e. the same quantity for the CPU
  allocator (tracemalloc does not see torch's allocations, RSS does not return freed blocks).

``--phases``: a model may name sub-steps of its iteration (``model.bench_phases()`` -> ``{name:
fn(batch)}``, e.g. one critic step and one generator step); each is timed the same way (interleaved
rounds over the variants, median) and reported as ``model:phase`` rows.

Results: ``bench/results/train_step-<device>.json`` and a printed table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import pygan  # noqa: E402
from pygan.data import Loader, load_data  # noqa: E402
from pygan.models import build_model, get_model, list_models  # noqa: E402
from pygan.ops import _backend  # noqa: E402

CLOCK = time.perf_counter  # --clock cpu: time.process_time (this process's CPU time, all threads)
VARIANTS = (("fused", "eager"), ("reference", "eager"), ("fused", "compile"), ("reference", "compile"))


@contextlib.contextmanager
def backend_env(name: str):
    old = os.environ.get(_backend.ENV_VAR)
    if name == "reference":
        os.environ[_backend.ENV_VAR] = "reference"
    else:
        os.environ.pop(_backend.ENV_VAR, None)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_backend.ENV_VAR, None)
        else:
            os.environ[_backend.ENV_VAR] = old


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_peak_bytes(step) -> int:
    """Peak of the running sum of CPU tensor allocations during ``step()`` (torch profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    cur = peak = 0
    for e in events:
        if str(e.device_type()).endswith("CPU"):
            cur += e.nbytes()
            peak = max(peak, cur)
    return peak


def _peak_bytes(step, device: torch.device) -> int:
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    try:
        return _cpu_peak_bytes(step)
    except Exception:  # profiler internals changed: report unknown rather than a wrong number
        step()
        return -1


class Variant:
    def __init__(self, name, mode, backend, model, loader, device):
        self.name, self.mode, self.backend = name, mode, backend
        self.model, self.loader, self.device = model, loader, device
        self.times: list[float] = []

    def step(self):
        with backend_env(self.backend):
            return self.model.training_step(self.loader.next())

    def timed(self, fn=None) -> float:
        batch = self.loader.next()
        fn = fn or self.model.training_step
        with backend_env(self.backend):
            _sync(self.device)
            t = CLOCK()
            fn(batch)
            _sync(self.device)
        return CLOCK() - t


def bench_model(name: str, args, device: torch.device) -> list[dict]:
    cls = get_model(name)
    data_spec = args.data or cls.default_data
    data = load_data(data_spec, "train")
    if device.type == "cuda":
        data.to(device)
    # Dynamo's caches are per code object, shared by every instance of a network class (e.g. all
    # ConvEncoders): without a reset, the models benchmarked before this one use up its recompile
    # limit and its compile rows silently fall back to eager.
    torch._dynamo.reset()
    variants = []
    for backend, mode in VARIANTS:
        if mode == "compile" and args.no_compile:
            continue
        torch.manual_seed(args.seed)
        model = build_model(name, data.info, args.overrides).to(device)
        model.optimizers = model.configure_optimizers()
        model.train()
        compiled = model.compile_networks() if mode == "compile" else []
        if mode == "compile" and not compiled:
            continue  # nothing this model can compile: the eager row says it all
        loader = Loader(data, model.batch_size * model.batches_per_step, seed=args.seed, device=device)
        variants.append(Variant(f"{backend}/{mode}", mode, backend, model, loader, device))
    t_warm = {}
    for v in variants:
        t = time.perf_counter()
        for _ in range(args.warmup):
            v.step()
        t_warm[v.name] = time.perf_counter() - t
    for _ in range(args.reps):
        for v in variants:
            v.times.append(v.timed())
    phases = {}
    if args.phases and hasattr(variants[0].model, "bench_phases"):
        names = list(variants[0].model.bench_phases())
        phases = {p: {v.name: [] for v in variants} for p in names}
        for _ in range(args.reps):
            for p in names:
                for v in variants:
                    phases[p][v.name].append(v.timed(v.model.bench_phases()[p]))
    rows = []
    for v in variants:
        m = v.model
        imgs = m.batch_size * m.batches_per_step
        med = statistics.median(v.times)
        q = statistics.quantiles(v.times, n=5) if len(v.times) >= 2 else [med] * 4
        peak = _peak_bytes(v.step, device)
        for p, by_variant in phases.items():
            ts = by_variant[v.name]
            pm = statistics.median(ts)
            pq = statistics.quantiles(ts, n=5) if len(ts) >= 2 else [pm] * 4
            rows.append(
                {
                    "model": f"{name}:{p}",
                    "data": data_spec,
                    "variant": v.name,
                    "backend": v.backend,
                    "mode": v.mode,
                    "reps": len(ts),
                    "ms_median": pm * 1e3,
                    "ms_p20": pq[0] * 1e3,
                    "ms_p80": pq[-1] * 1e3,
                    "images_per_step": m.batch_size,
                    "img_per_s": m.batch_size / pm,
                    "peak_mem_mb": None,
                    "warmup_s": 0.0,
                }
            )
        rows.append(
            {
                "model": name,
                "data": data_spec,
                "config": {k: (list(x) if isinstance(x, tuple) else x) for k, x in vars(m.config).items()},
                "variant": v.name,
                "backend": v.backend,
                "mode": v.mode,
                "reps": len(v.times),
                "ms_median": med * 1e3,
                "ms_p20": q[0] * 1e3,
                "ms_p80": q[-1] * 1e3,
                "images_per_step": imgs,
                "img_per_s": imgs / med,
                "peak_mem_mb": peak / 2**20 if peak >= 0 else None,
                "warmup_s": t_warm[v.name],
            }
        )
    return rows


def _table(rows: list[dict]) -> str:
    out = []
    hdr = (
        f"{'model':<18} {'variant':<20} {'ms/step':>9} {'p20-p80':>15} {'img/s':>8} {'vs ref/eager':>12} "
        f"{'peak MB':>9}"
    )
    out.append(hdr)
    out.append("-" * len(hdr))
    base = {r["model"]: r["ms_median"] for r in rows if r["variant"] == "reference/eager"}
    for r in rows:
        ratio = base.get(r["model"], float("nan")) / r["ms_median"]
        mem = f"{r['peak_mem_mb']:.1f}" if r["peak_mem_mb"] is not None else "n/a"
        spread = f"{r['ms_p20']:.0f}-{r['ms_p80']:.0f}"
        out.append(
            f"{r['model']:<18} {r['variant']:<20} {r['ms_median']:>9.1f} {spread:>15} {r['img_per_s']:>8.1f} "
            f"{ratio:>11.2f}x {mem:>9}"
        )
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="all", help="comma-separated model names, or all")
    p.add_argument("--data", help="dataset spec (default: each model's default_data)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model Config overrides (applied to every model)",
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--reps", type=int, default=10, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per variant (includes compilation)")
    p.add_argument("--quick", action="store_true", help="smoke run: --reps 3 --warmup 2")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    p.add_argument(
        "--phases", action="store_true", help="also time the sub-steps a model names (bench_phases)"
    )
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall (perf_counter) or cpu (process CPU time: steadier on a loaded CPU machine)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--out", help="result JSON (default bench/results/train_step-<device>.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.warmup = 3, 2
    if args.reps < 1 or args.warmup < 0:
        p.error("--reps must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    global CLOCK
    if args.clock == "cpu":
        if device.type != "cpu":
            p.error("--clock cpu measures CPU time; use it with --device cpu")
        CLOCK = time.process_time
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no GPU here")
    names = (
        list_models() if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
    )
    kernels = {
        op: _backend.has_kernel(op, "CUDA" if device.type == "cuda" else "CPU")
        for op in ("interpolate", "grad_norm_penalty", "residual_add", "feature_regularizer", "gram_diff")
    }
    print(
        f"# pygan {pygan.__version__} | torch {torch.__version__} | {device} | clock {args.clock} | threads "
        f"{torch.get_num_threads()} | native kernels: {[k for k, v in kernels.items() if v] or 'none'} | "
        f"load avg {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rows = []
    for name in names:
        rows += bench_model(name, args, device)
    print(_table(rows))
    result = {
        "bench": "train_step",
        "pygan": pygan.__version__,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else pygan._ext.cpu_name(),
        "threads": torch.get_num_threads(),
        "load_avg_1min": os.getloadavg()[0],
        "native_kernels": kernels,
        "reps": args.reps,
        "warmup": args.warmup,
        "clock": args.clock,
        "overrides": args.overrides,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "results": rows,
    }
    out = args.out or os.path.join(HERE, "results", f"train_step-{device.type}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"# wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
