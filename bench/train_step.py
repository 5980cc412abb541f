"""Training-step throughput and memory of every registered model, with the fused ops against
``PYGAN_BACKEND=reference``, and eager against CUDA graphs and ``torch.compile``, measured side by
side in one run.

    python bench/train_step.py                    # every model, its default data and config
    python bench/train_step.py --models wgan-gp --set width=32 --reps 15
    python bench/train_step.py --quick            # ~1 min: one model per system, small presets, eager
    python bench/train_step.py --preset small     # every model at its CPU-sized preset
    python bench/train_step.py --device cuda      # on a GPU: eager, graph and compile
    python bench/train_step.py --device cuda --sizes paper --modes eager,graph
    python bench/train_step.py --models scogan --phases   # also each sub-step the model names

For each model, up to six variants are built from the same seed (same weights, same batches):
``fused`` (the default backend: the native kernels where pygan has them) or ``reference`` (every
op's pure-PyTorch reference), each ``eager`` (:class:`pygan.graphs.EagerStep`, what ``pygan train``
runs), ``graph`` (:class:`pygan.graphs.GraphedStep`: the iteration captured once as a CUDA graph and
replayed, what ``--cuda-graphs`` runs; CUDA only) or ``compile`` (``model.compile_networks()``: what
the model allows; a critic's double backward stays eager). A step is what the training loop does per
iteration: copy the batch in (graph), the model's whole update, the losses into the device-side
monitor; the loader's batch is drawn outside the timed region. After warm-up (which includes
compilation and the graph capture), one step of each variant is timed in turn for ``--reps`` rounds,
so that drift on a noisy machine hits all variants alike; the median is reported.

``--quick`` is a representative subset that finishes in about a minute on a 2-core CPU: one model
per system (:data:`QUICK_MODELS`) at its ``small`` preset, eager only (no ``torch.compile``, whose
compilation alone takes minutes on a CPU), 1 warm-up and 3 timed steps per variant; it writes
``bench/results/train_step-<device>-quick.json`` (git-ignored), not the full run's file. A full run
first prints its plan with a rough time estimate (:data:`CPU_STEP_S`), then, after each model, the
time it took and a new estimate of the rest. Rows print as each model finishes.

``--preset NAME`` runs each model at its preset (``small``: CPU-sized; ``--set`` applies after it).
``--sizes default`` runs each model at its default config and data. ``--sizes paper`` runs it at its
paper's scale on synthetic batches of the right shape (:data:`PAPER`: e.g. 64 px width 64 DCGANs for
WGAN-GP/ACL, IDVAE's 64 px CelebA nets, 256 px pix2pix/UU-Net, ED//GAN's 128 px, the thesis'
CoGAN/SCoGAN at width 1024), since the real data is not on the machine.

* ``--clock cpu`` times with the process's CPU time instead of the wall clock: on a shared,
  oversubscribed CPU machine the wall clock mostly measures waiting for a core.
* img/s = real images consumed per step (``batch_size * batches_per_step``, e.g. 5 critic batches
  of 64 for WGAN-GP) / median step time.
* The profiler's C++ log lines (kineto's ``profiler_start``/``stop``, the CPU allocator's "memory
  block of unknown size" warning, once per tensor) are dropped from stderr; other lines pass.
* peak memory: on CUDA ``torch.cuda.max_memory_allocated`` during one step, above what was allocated
  before it; on CPU the peak of the running sum of the tensor allocations and frees that torch's
  profiler records during one step (``profile_memory=True``), i.e. the same quantity for the CPU
  allocator (tracemalloc does not see torch's allocations, RSS does not return freed blocks).
  A graph's intermediates live in its private memory pool, allocated once at capture, so a replay
  allocates nothing: on CUDA ``held MB`` (``torch.cuda.memory_reserved`` gained over the variant's
  warm-up and capture, the cache emptied first) is the number that compares graphed with eager.

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
from pygan.data import Dataset, Loader, load_data  # noqa: E402
from pygan.graphs import EagerStep, GraphedStep, LossMonitor  # noqa: E402
from pygan.models import build_model, get_model, list_models, parse_overrides, preset_overrides  # noqa: E402
from pygan.ops import _backend  # noqa: E402

CLOCK = time.perf_counter  # --clock cpu: time.process_time (this process's CPU time, all threads)
MODES = ("eager", "graph", "compile")

# --quick: one model per system (ED//GAN, ACL-GAN, IDVAE, SCoGAN, UU-Net) and the WGAN-GP baseline,
# which between them call every fused op (gradient_penalty, feature_regularizer, residual_add), each
# on the data its experiment doc trained on (the small presets are those docs' settings).
QUICK_MODELS = {
    "wgan-gp": "digits16",
    "acl-gan": "digits16",
    "idvae": "digits16",
    "edgan": "photo-blur32",
    "scogan": "digits16-edge",
    "uunet": "photo-edges32",
}
# A compile variant's warm-up (compiling the model's networks) on a CPU, for the full run's estimate
# (wgan-gp's two, fused then reference, took 38 s and 6 s: bench/results/train_step-cpu.json).
COMPILE_S = 20.0

# --sizes paper: (kind, per-sample shape, target shape, classes, --set overrides) per model, from
# each paper's stated scale (the model's docstrings and docs/experiments say where they come from).
_RGB64, _RGB128, _RGB256 = (3, 64, 64), (3, 128, 128), (3, 256, 256)
PAPER: dict[str, tuple[str, tuple, tuple | None, int | None, list[str]]] = {
    # WGAN-GP (Gulrajani et al.: 64 px DCGAN, width 64); ACL-GAN(-GP) and DCGAN "on the baselines"
    "wgan-gp": ("images", _RGB64, None, None, []),
    "dcgan": ("images", _RGB64, None, None, []),
    "acl-gan": ("images", _RGB64, None, None, []),
    "acl-gan-gp": ("images", _RGB64, None, None, []),
    "acl-sgan": ("images", (1, 32, 32), None, 10, []),  # MNIST-style, 10 classes
    "acl-ae": ("images", (1, 28, 28), None, None, []),  # MNIST, the MLP autoencoder
    # IDVAE: the 64 px CelebA networks (C-IDVAE: 13 attributes -> 13 one-hot classes here)
    "idvae": ("images", _RGB64, None, None, []),
    "idvae-r": ("images", _RGB64, None, None, []),
    "vae": ("images", _RGB64, None, None, []),
    "vae-gan": ("images", _RGB64, None, None, []),
    "cidvae": ("images", _RGB64, None, 13, []),
    # ED//GAN: 128 px (Table 1), batch 25; its pix2pix variant and UU-Nets: 256 px, batch 8 (UU-Net)
    "edgan": ("paired", _RGB128, _RGB128, None, []),
    "edgan-coupled": ("paired", _RGB128, _RGB128, None, []),
    "edgan-caae": ("images", _RGB128, None, 10, []),
    "edgan-caae-coupled": ("images", _RGB128, None, 10, []),
    "edgan-pix2pix": ("paired", _RGB256, _RGB256, None, []),
    "edgan-pix2pix-coupled": ("paired", _RGB256, _RGB256, None, []),
    "pix2pix": ("paired", _RGB256, _RGB256, None, []),
    "unet-vae-gan": ("paired", _RGB256, _RGB256, None, []),
    "uunet": ("paired", _RGB256, _RGB256, None, []),
    "uuvae-gan": ("paired", _RGB256, _RGB256, None, []),
    # CoGAN/SCoGAN: the thesis' digit networks (32 px, generator width 1024: the configs' defaults)
    "cogan": ("two-domain", (1, 32, 32), None, None, []),
    "scogan": ("two-domain", (1, 32, 32), None, None, []),
}


def synthetic(name: str, rows: int, seed: int = 0) -> Dataset:
    """An in-memory dataset of ``rows`` random samples in the shape ``PAPER[name]`` gives."""
    kind, shape, target, classes, _ = PAPER[name]
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((rows, *shape), generator=g) * 2 - 1
    kw = {}
    if target is not None:
        kw["target"] = torch.rand((rows, *target), generator=g) * 2 - 1
    if classes:
        kw["y"] = torch.randint(classes, (rows,), generator=g)
    if kind == "two-domain":
        kw["domain"] = torch.arange(rows) % 2
    return Dataset(f"synthetic-{name}", kind, x, num_classes=classes, **kw)


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


# stderr lines the profiler's C++ side writes on every use (dropped by _quiet_stderr)
_PROFILER_NOISE = ("SyncActivityProfilerHandler", "Memory block of unknown size", "CPUAllocator.cpp")


@contextlib.contextmanager
def _quiet_stderr(noise=_PROFILER_NOISE):
    """Runs the block with file descriptor 2 redirected to a temporary file, then writes back the
    lines that contain none of ``noise`` (the profiler logs from C++, which Python's warning filters
    cannot reach)."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            keep = [
                line
                for line in tmp.read().decode(errors="replace").splitlines(keepends=True)
                if not any(n in line for n in noise)
            ]
            if keep:
                sys.stderr.write("".join(keep))
                sys.stderr.flush()


def _cpu_peak_bytes(step) -> int:
    """Peak of the running sum of CPU tensor allocations during ``step()`` (torch profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
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
    """One (backend, mode) of a model: its own model, loader and step runner (the loop's)."""

    def __init__(self, name, mode, backend, model, loader, device, window):
        self.name, self.mode, self.backend = name, mode, backend
        self.model, self.loader, self.device = model, loader, device
        self.times: list[float] = []
        self.iteration = 0
        self.monitor = LossMonitor(window)
        if mode == "graph":
            self.runner = GraphedStep(model, self.monitor, device, say=lambda m: print(f"# {name}: {m}"))
        else:
            self.runner = EagerStep(model, self.monitor, device)

    def _run(self, batch) -> None:
        self.runner(batch, self.iteration)
        self.iteration += 1
        if self.monitor.count - self.monitor.read_count >= self.monitor.window // 2:
            self.monitor.read()  # outside the timed region (timed() calls it before its clock starts)

    def step(self):
        with backend_env(self.backend):
            self._run(self.loader.next())

    def timed(self, fn=None) -> float:
        batch = self.loader.next()
        if self.monitor.count - self.monitor.read_count >= self.monitor.window // 2:
            self.monitor.read()
        with backend_env(self.backend):
            _sync(self.device)
            t = CLOCK()
            if fn is None:
                self.runner(batch, self.iteration)
                self.iteration += 1
            else:
                fn(batch)
            _sync(self.device)
        return CLOCK() - t


def _data_for(name: str, args, device: torch.device):
    cls = get_model(name)
    if args.sizes == "paper":
        if name not in PAPER:
            return None, None
        rows = 256 if PAPER[name][1][-1] <= 64 else 64
        data, spec = synthetic(name, rows, args.seed), "synthetic"
    else:
        spec = args.data or (QUICK_MODELS.get(name) if args.quick else None) or cls.default_data
        data = load_data(spec, "train")
    if device.type == "cuda":
        data.to(device)
    return data, spec


def bench_model(name: str, args, device: torch.device) -> list[dict]:
    data, data_spec = _data_for(name, args, device)
    if data is None:
        print(f"# {name}: no paper size in PAPER; skipped")
        return []
    overrides = list(args.overrides) + (PAPER[name][4] if args.sizes == "paper" else [])
    if args.preset:
        overrides = {
            **preset_overrides(name, args.preset),
            **parse_overrides(get_model(name).Config, overrides),
        }
    # Dynamo's caches are per code object, shared by every instance of a network class (e.g. all
    # ConvEncoders): without a reset, the models benchmarked before this one use up its recompile
    # limit and its compile rows silently fall back to eager.
    torch._dynamo.reset()
    variants = []
    window = 4 * (args.warmup + args.reps + 2)
    for mode in args.modes:
        for backend in ("fused", "reference"):
            torch.manual_seed(args.seed)
            model = build_model(name, data.info, overrides).to(device)
            model.optimizers = model.configure_optimizers()
            model.train()
            compiled = model.compile_networks() if mode == "compile" else []
            if mode == "compile" and not compiled:
                continue  # nothing this model can compile: the eager row says it all
            loader = Loader(data, model.batch_size * model.batches_per_step, seed=args.seed, device=device)
            variants.append(Variant(f"{backend}/{mode}", mode, backend, model, loader, device, window))
    t_warm, held = {}, {}
    for v in variants:
        if device.type == "cuda":
            _sync(device)
            torch.cuda.empty_cache()
            r0 = torch.cuda.memory_reserved(device)
        t = time.perf_counter()
        for _ in range(args.warmup):
            v.step()
        t_warm[v.name] = time.perf_counter() - t
        if device.type == "cuda":
            _sync(device)
            held[v.name] = (torch.cuda.memory_reserved(device) - r0) / 2**20
    for _ in range(args.reps):
        for v in variants:
            v.times.append(v.timed())
    phases = {}
    if args.phases and hasattr(variants[0].model, "bench_phases"):
        names = list(variants[0].model.bench_phases())
        eager = [v for v in variants if v.mode != "graph"]  # sub-steps are not captured separately
        phases = {p: {v.name: [] for v in eager} for p in names}
        for _ in range(args.reps):
            for p in names:
                for v in eager:
                    phases[p][v.name].append(v.timed(v.model.bench_phases()[p]))
    rows = []
    for v in variants:
        v.monitor.read()  # raises if a timed step's loss was not finite
        m = v.model
        imgs = m.batch_size * m.batches_per_step
        med = statistics.median(v.times)
        q = statistics.quantiles(v.times, n=5, method="inclusive") if len(v.times) >= 2 else [med] * 4
        peak = _peak_bytes(v.step, device)
        for p, by_variant in phases.items():
            if v.name not in by_variant:
                continue
            ts = by_variant[v.name]
            pm = statistics.median(ts)
            pq = statistics.quantiles(ts, n=5, method="inclusive") if len(ts) >= 2 else [pm] * 4
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
                "held_mb": held.get(v.name),
                "warmup_s": t_warm[v.name],
                "step_mode": "eager" if v.runner.reason is not None else v.mode,
                "eager_reason": v.runner.reason,
                "graph_replays": getattr(v.runner, "replays", 0),
            }
        )
    return rows


def _table(rows: list[dict]) -> str:
    out = []
    hdr = (
        f"{'model':<18} {'variant':<20} {'ms/step':>9} {'p20-p80':>15} {'img/s':>8} {'vs ref/eager':>12} "
        f"{'peak MB':>9} {'held MB':>9}"
    )
    out.append(hdr)
    out.append("-" * len(hdr))
    base = {r["model"]: r["ms_median"] for r in rows if r["variant"] == "reference/eager"}
    for r in rows:
        ratio = base.get(r["model"], float("nan")) / r["ms_median"]
        mem = f"{r['peak_mem_mb']:.1f}" if r["peak_mem_mb"] is not None else "n/a"
        hmem = f"{r['held_mb']:.1f}" if r.get("held_mb") is not None else "n/a"
        spread = (
            f"{r['ms_p20']:.2f}-{r['ms_p80']:.2f}"
            if r["ms_median"] < 10
            else f"{r['ms_p20']:.0f}-{r['ms_p80']:.0f}"
        )
        note = "" if r.get("step_mode", r["mode"]) == r["mode"] else "  (ran eager: see eager_reason)"
        out.append(
            f"{r['model']:<18} {r['variant']:<20} {r['ms_median']:>9.2f} {spread:>15} {r['img_per_s']:>8.1f} "
            f"{ratio:>11.2f}x {mem:>9} {hmem:>9}{note}"
        )
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", help="comma-separated model names, or all (default; --quick: a subset)")
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
    p.add_argument("--reps", type=int, help="timed steps per variant (default 10; --quick: 3)")
    p.add_argument(
        "--warmup", type=int, help="untimed steps per variant, includes compilation (default 3; --quick: 1)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"about a minute on a CPU: {','.join(QUICK_MODELS)} (unless --models) at --preset small (unless "
        "--preset) on their experiments' data (unless --data), eager only, --reps 3 --warmup 1, --threads 1",
    )
    p.add_argument(
        "--preset",
        metavar="NAME",
        help="each model's named settings (small: CPU-sized; paper: the defaults); --set applies after it",
    )
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    p.add_argument(
        "--modes",
        help="comma-separated modes among eager,graph,compile (default: eager,compile on CPU; "
        "eager,graph,compile on CUDA; graph needs CUDA)",
    )
    p.add_argument(
        "--sizes",
        choices=("default", "paper"),
        default="default",
        help="default: each model's config and data; paper: its paper's scale on synthetic batches",
    )
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
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default; --quick: 1, since on a loaded machine a multi-threaded "
        "step mostly waits for its threads)",
    )
    p.add_argument("--out", help="result JSON (default bench/results/train_step-<device>.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.models = args.models or ",".join(QUICK_MODELS)
        args.threads = args.threads or 1
        args.preset = args.preset or ("small" if args.sizes == "default" else None)
        args.no_compile = True
    args.models = args.models or "all"
    args.reps = args.reps if args.reps is not None else (3 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
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
    modes = (
        args.modes.split(",")
        if args.modes
        else (["eager", "graph", "compile"] if device.type == "cuda" else ["eager", "compile"])
    )
    modes = [m.strip() for m in modes if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        p.error(f"--modes: unknown mode(s) {bad}; choose from {list(MODES)}")
    if "graph" in modes and device.type != "cuda":
        p.error("--modes graph needs --device cuda (CUDA graphs)")
    if args.no_compile:
        modes = [m for m in modes if m != "compile"]
    args.modes = modes
    if args.sizes == "paper" and args.data:
        p.error("--sizes paper uses synthetic data of each paper's shape; drop --data")
    if args.sizes == "paper" and args.preset:
        p.error("--sizes paper runs each paper's scale; drop --preset")
    names = (
        list_models() if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
    )
    unknown = [n for n in names if n not in list_models()]
    if unknown:
        p.error(f"--models: unknown model(s) {unknown}; registered: {', '.join(list_models())}")
    if args.preset:
        try:
            for n in names:
                preset_overrides(n, args.preset)
        except ValueError as exc:
            p.error(str(exc))
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
    out = args.out or os.path.join(
        HERE, "results", f"train_step-{device.type}{'-quick' if args.quick else ''}.json"
    )
    n_variants = len(args.modes) * 2
    steps = args.warmup + args.reps + 1  # + the memory step
    print(f"# plan: {_plan(names, args, n_variants, steps)}", flush=True)
    if not args.quick and len(names) > 1:
        print(f"# estimate: {_estimate(names, args, device, n_variants, steps)}", flush=True)
    rows = []
    t0 = time.perf_counter()
    for i, name in enumerate(names):  # rows stream as each model finishes; the JSON is rewritten too
        t = time.perf_counter()
        new = bench_model(name, args, device)
        rows += new
        table = _table(new).splitlines()
        print("\n".join(table if i == 0 else table[2:]), flush=True)
        _write(out, args, device, kernels, rows)
        done, left = time.perf_counter() - t0, len(names) - i - 1
        if left and (not args.quick or i == 0):
            print(
                f"# {name}: {time.perf_counter() - t:.0f} s; {i + 1}/{len(names)} models in {_dur(done)}, "
                f"about {_dur(done / (i + 1) * left)} to go (models differ: a rough figure)",
                flush=True,
            )
    print(f"# {len(names)} models in {_dur(time.perf_counter() - t0)}; wrote {out}", flush=True)
    return 0


def _dur(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _plan(names: list[str], args, n_variants: int, steps: int) -> str:
    """One line: models x variants x steps."""
    return (
        f"{len(names)} model(s) x {n_variants} variants ({'/'.join(args.modes)} x fused/reference) x "
        f"{steps} steps ({args.warmup} warm-up + {args.reps} timed + 1 for memory)"
    )


def _estimate(names: list[str], args, device: torch.device, n_variants: int, steps: int) -> str:
    """How long the run will take, from one eager step of each model timed now (its data, its
    config), times the run's variants and steps, plus :data:`COMPILE_S` per compile variant."""
    print(f"# timing one step of each of the {len(names)} models for an estimate ...", flush=True)
    t0 = time.perf_counter()
    per_model = 0.0
    for name in names:
        data, _ = _data_for(name, args, device)
        if data is None:
            continue
        overrides = list(args.overrides)
        if args.preset:
            overrides = {
                **preset_overrides(name, args.preset),
                **parse_overrides(get_model(name).Config, overrides),
            }
        torch.manual_seed(args.seed)
        model = build_model(name, data.info, overrides).to(device)
        model.optimizers = model.configure_optimizers()
        model.train()
        loader = Loader(data, model.batch_size * model.batches_per_step, seed=args.seed, device=device)
        step = EagerStep(model, LossMonitor(4), device)
        batch = loader.next()
        _sync(device)
        t = time.perf_counter()
        step(batch, 0)
        _sync(device)
        per_model += time.perf_counter() - t
        del model, loader, step, data
    est = per_model * n_variants * steps
    n_compile = sum(m == "compile" for m in args.modes) * 2
    est += COMPILE_S * n_compile * len(names)
    return (
        f"about {_dur(est)} (one step of each model took {per_model:.1f} s in all; x {n_variants} variants x "
        f"{steps} steps{f' + {COMPILE_S:.0f} s per compile variant' if n_compile else ''}; probed in "
        f"{_dur(time.perf_counter() - t0)}); pygan bench --quick takes about a minute"
    )


def _write(out: str, args, device: torch.device, kernels: dict, rows: list[dict]) -> None:
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
        "preset": args.preset,
        "overrides": args.overrides,
        "modes": args.modes,
        "sizes": args.sizes,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "results": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
