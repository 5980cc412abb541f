"""Image-file loading throughput against the training step that consumes it (issue 13, item 3).

    python bench/data.py                    # CPU: 64 px batches from CelebA-sized JPEG and PNG files
    python bench/data.py --device cuda      # on a GPU machine: batches land on the GPU (pinned memory)
    python bench/data.py --quick            # a smoke run

A temporary folder of ``--n-images`` files per format is written first: random ``--src``-sized
crops (default 178x218, CelebA's aligned size) of the photographs scikit-learn and scikit-image ship
(nothing is downloaded), saved as JPEG (quality 90) and PNG. Then, for each format:

* ``before``  the decode loop of the code before workers (``_decode`` per file, ``np.stack``, scale)
  in the timing process: today's img/s, the baseline of every ratio;
* ``decode``  ``Loader(folder?cache=0, workers=W)``: every batch decoded (a first epoch), for
  W = 0, 1, 2, 4, 8 (up to the cores) and the default (``pygan.data.default_workers()``);
* ``draft``   the same with ``?draft=1`` (JPEG decoded at reduced size; not bit-identical), W = 0 and
  the default;
* ``cached``  ``Loader(folder, workers=default)`` after one epoch has filled the decode cache (the
  default): later epochs, cut in this process (the workers stop once the cache is full).

Each loader row is the steady rate over at least ``--batches`` batches of ``--batch`` images
(default 320: what one WGAN-GP iteration consumes, 5 critic batches of 64) and ``--min-s`` seconds,
timed with the wall clock (the workers are other processes) after a warm-up of ``W + 1`` batches
(worker start, the first wave of batches) or, for ``cached``, of one epoch plus the batches already
in flight. ``CPU us/img`` is the CPU time of this process and its workers (Linux ``/proc``) per image
in the same window (``of it main``: the timing process alone, i.e. what the training process would
spend): the cost, which a loaded machine does not distort the way it does the wall clock.
``--reps`` rounds interleave all variants (a noisy, shared machine drifts over all of them alike);
the median is reported with the min-max range.

``step`` is the img/s of one WGAN-GP iteration at ``--size`` px, ``--width`` 64, batch 64, n_critic
5 on in-memory data (median of ``--step-reps`` after warm-up), the rate the loader has to sustain:
``vs step`` >= 1 means the loader alone keeps up with it (on a CPU machine the two share the cores,
so there it is an upper bound).

Results: ``bench/results/data-<device>.json`` and ``.md`` (the table).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import pygan  # noqa: E402
from pygan.data import Batch, DataInfo, Loader, default_workers, load_data  # noqa: E402
from pygan.data import files as data_files  # noqa: E402
from pygan.data.core import usable_cores  # noqa: E402
from pygan.data.photos import photo_files  # noqa: E402
from pygan.models import build_model  # noqa: E402


def make_folder(root: str, fmt: str, n: int, src: tuple[int, int], seed: int = 0) -> str:
    """``n`` random ``src`` (w, h) crops of the shipped photographs, saved as ``fmt`` in ``root/fmt``."""
    from PIL import Image

    try:
        paths = photo_files("all")
    except ImportError:
        paths = photo_files("sklearn")
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    w, h = src
    rng = np.random.default_rng(seed)
    out = os.path.join(root, fmt)
    os.makedirs(out, exist_ok=True)
    for i in range(n):
        a = photos[i % len(photos)]
        if a.shape[0] < h or a.shape[1] < w:  # a photo smaller than the crop: upscale it first
            s = max(h / a.shape[0], w / a.shape[1])
            im = Image.fromarray(a).resize((math.ceil(a.shape[1] * s), math.ceil(a.shape[0] * s)))
            a = np.asarray(im)
        y, x = rng.integers(0, a.shape[0] - h + 1), rng.integers(0, a.shape[1] - w + 1)
        im = Image.fromarray(a[y : y + h, x : x + w])
        if fmt == "jpg":
            im.save(os.path.join(out, f"{i:05d}.jpg"), quality=90)
        else:
            im.save(os.path.join(out, f"{i:05d}.{fmt}"))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _children_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each live child process (Linux /proc; {} elsewhere)."""
    me, out = os.getpid(), {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for d in names:
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            out[int(d)] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


class Window:
    """Wall time and CPU time (this process and its children: the workers) of a timed stretch."""

    def __enter__(self):
        self.kids0 = _children_cpu()
        self.cpu0, self.t0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.cpu = self.main_cpu = time.process_time() - self.cpu0
        kids1 = _children_cpu()
        self.cpu += sum(kids1[p] - c for p, c in self.kids0.items() if p in kids1)


def time_before(folder: str, size: int, batch: int, k: int, device: torch.device, min_s: float):
    """The pre-workers decode loop (per-file ``_decode``, ``np.stack``, scale) in this process."""
    d = load_data(f"folder:{folder}?size={size}&cache=0")
    rows = d.lazy_rows
    order = np.random.default_rng(0).permutation(len(rows))
    n = 0
    with Window() as w:
        while n < k * batch or time.perf_counter() - w.t0 < min_s:
            part = order[np.arange(n, n + batch) % len(order)]
            arrays = [data_files._decode(rows.paths[i], rows.mode, size, rows.crop) for i in part]
            a = np.stack(arrays)
            a = a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2)
            x = torch.from_numpy(np.ascontiguousarray(a).astype(np.float32)).sub_(127.5).div_(127.5)
            x = x.to(device)
            n += batch
        _sync(device)
    return n, w


def time_loader(spec: str, workers: int, batch: int, k: int, device, cached: bool, min_s: float):
    """``Loader(load_data(spec), batch, workers=workers)`` at its steady rate: at least ``k``
    batches and ``min_s`` seconds after the warm-up."""
    d = load_data(spec)
    with Loader(d, batch, seed=0, workers=workers, device=device) as loader:
        warm = workers + 1
        if cached:  # one epoch fills the cache; the tasks planned before it was full still decode
            warm += math.ceil(len(d) / batch) + loader.prefetch * workers
        for _ in range(warm):
            loader.next()
        if cached:
            assert d.lazy_rows.complete, "the warm-up did not fill the cache"
        _sync(device)
        n = 0
        with Window() as w:
            while n < k * batch or time.perf_counter() - w.t0 < min_s:
                loader.next()
                n += batch
            _sync(device)
    return n, w


def time_step(args, device: torch.device) -> dict:
    """img/s of one WGAN-GP iteration (n_critic critic steps + 1 generator step) on in-memory data."""
    info = DataInfo("images", (3, args.size, args.size))
    torch.manual_seed(0)
    model = build_model("wgan-gp", info, [f"width={args.width}"]).to(device)
    model.optimizers = model.configure_optimizers()
    model.train()
    n = model.batch_size * model.batches_per_step
    x = (torch.rand(n, 3, args.size, args.size, device=device) * 2 - 1).contiguous()
    batch = Batch(x=x)
    warm = 3 if device.type == "cuda" else 1
    times = []
    for i in range(warm + args.step_reps):
        _sync(device)
        t = time.perf_counter()
        model.training_step(batch)
        _sync(device)
        if i >= warm:
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {
        "model": "wgan-gp",
        "config": {"width": args.width, "batch_size": model.batch_size, "n_critic": model.batches_per_step},
        "images_per_step": n,
        "ms_median": med * 1e3,
        "ms_min": min(times) * 1e3,
        "ms_max": max(times) * 1e3,
        "img_per_s": n / med,
        "reps": len(times),
    }


def _table(rows: list[dict], step: dict, meta: dict) -> str:
    out = [
        f"# bench/data.py | {meta['device']} | {meta['cores']} cores | torch {meta['torch']} | "
        f"{meta['n_images']} {meta['src']} files -> {meta['size']} px | batch {meta['batch']} | "
        f"reps {meta['reps']} | load avg {meta['load_avg_1min']:.1f}",
        "",
        f"step: wgan-gp {meta['size']} px width {step['config']['width']}, {step['images_per_step']} "
        f"images/iteration: {step['ms_median']:.1f} ms ({step['ms_min']:.1f}-{step['ms_max']:.1f}) = "
        f"{step['img_per_s']:.0f} img/s",
        "",
        "| format | mode | workers | img/s (median) | min-max | CPU us/img | of it main | vs before "
        "| vs step |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['format']} | {r['mode']} | {r['workers']} | {r['img_per_s']:.0f} | "
            f"{r['min']:.0f}-{r['max']:.0f} | {r['cpu_us_per_img']:.0f} | {r['main_cpu_us_per_img']:.0f} | "
            f"{r['vs_before']:.2f}x | "
            f"{r['vs_step']:.2f}x |"
        )
    out += [
        "",
        "before: the pre-workers decode loop in this process. decode/draft: every batch decoded (a first "
        "epoch). cached: later epochs; the workers stop once every image is cached, so there the "
        "workers column only says how the first epoch was decoded. CPU us/img: this process and its "
        "workers; of it main: this (the training) process alone.",
    ]
    return "\n".join(out)


def _workers_list(text: str | None) -> list[int]:
    cores = usable_cores()
    if text:
        ws = sorted({int(w) for w in text.split(",")})
    else:
        ws = sorted({w for w in (0, 1, 2, 4, 8) if w <= cores} | {default_workers()})
    bad = [w for w in ws if not 0 <= w <= cores]
    if bad:
        raise SystemExit(f"--workers: {bad} not in [0, {cores}] (the cores this process may use)")
    return ws


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--size", type=int, default=64, help="output side in px")
    p.add_argument("--src", default="178x218", help="source file size WxH (default: CelebA aligned)")
    p.add_argument("--n-images", type=int, default=640, help="files per format")
    p.add_argument("--formats", default="jpg,png")
    p.add_argument("--modes", default="decode,draft,cached")
    p.add_argument(
        "--workers", help="worker counts of the decode rows (default: 0,1,2,4,8 to the cores + the default)"
    )
    p.add_argument("--batch", type=int, default=320, help="images per batch (wgan-gp: 5 x 64)")
    p.add_argument("--batches", type=int, default=3, help="timed batches per measurement (at least)")
    p.add_argument("--min-s", type=float, default=0.5, help="seconds per measurement (at least)")
    p.add_argument("--reps", type=int, help="interleaved rounds (default: 3 on CPU, 2 on CUDA)")
    p.add_argument("--width", type=int, default=64, help="wgan-gp width of the step")
    p.add_argument(
        "--step-reps", type=int, help="timed wgan-gp iterations (default: 10 on CUDA, 1 on CPU: ~20 s each)"
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads of this process (0: default)")
    p.add_argument("--quick", action="store_true", help="smoke run: 96 files, 1 round, small batches")
    p.add_argument("--keep", help="write the image folders here and keep them (default: a temp dir)")
    p.add_argument("--out", help="results stem (default bench/results/data-<device>)")
    args = p.parse_args(argv)
    if args.step_reps is None:
        args.step_reps = 10 if args.device == "cuda" else 1
    if args.reps is None:
        args.reps = 2 if args.device == "cuda" else 3
    if args.quick:
        args.n_images, args.reps, args.batch, args.batches, args.step_reps, args.min_s = 96, 1, 64, 2, 1, 0.1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no GPU here")
    src = tuple(int(v) for v in args.src.lower().split("x"))
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(modes) - {"decode", "draft", "cached"} or set(formats) - {"jpg", "png"}:
        p.error("--modes takes decode,draft,cached and --formats jpg,png")
    workers = _workers_list(args.workers)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else pygan._ext.cpu_name()
    cores = usable_cores()
    print(f"# {dev_name} | {cores} cores | workers {workers} | torch {torch.__version__}", flush=True)

    root = args.keep or tempfile.mkdtemp(prefix="pygan-bench-data-")
    try:
        t = time.perf_counter()
        folders = {f: make_folder(root, f, args.n_images, src) for f in formats}
        took = time.perf_counter() - t
        print(f"# wrote {args.n_images} files per format in {took:.1f} s ({root})", flush=True)
        step = time_step(args, device)
        print(f"# step: {step['ms_median']:.1f} ms = {step['img_per_s']:.0f} img/s", flush=True)

        variants = []  # (format, mode, workers)
        for f in formats:
            variants.append((f, "before", 0))
            for m in modes:
                # draft scales with the workers as decode does: its cost per image is what differs;
                # a cached epoch runs in this process whatever the workers (they stop once it is full)
                ws = {"decode": workers, "draft": [0, default_workers()], "cached": [default_workers()]}[m]
                variants += [(f, m, w) for w in dict.fromkeys(ws)]
        rates: dict[tuple, list[float]] = {v: [] for v in variants}
        cpu_us: dict[tuple, list[float]] = {v: [] for v in variants}
        main_us: dict[tuple, list[float]] = {v: [] for v in variants}
        for r in range(args.reps):
            for v in variants:
                f, m, w = v
                folder = folders[f]
                if m == "before":
                    n, win = time_before(folder, args.size, args.batch, args.batches, device, args.min_s)
                else:
                    opts = {"decode": "&cache=0", "draft": "&cache=0&draft=1", "cached": ""}[m]
                    spec = f"folder:{folder}?size={args.size}{opts}"
                    n, win = time_loader(spec, w, args.batch, args.batches, device, m == "cached", args.min_s)
                rates[v].append(n / win.wall)
                cpu_us[v].append(win.cpu / n * 1e6)
                main_us[v].append(win.main_cpu / n * 1e6)
                print(
                    f"round {r + 1}: {f:<4} {m:<7} workers {w}: {n / win.wall:8.0f} img/s, "
                    f"{win.cpu / n * 1e6:6.0f} CPU us/img",
                    flush=True,
                )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    rows = []
    for v in variants:
        f, m, w = v
        med = statistics.median(rates[v])
        before = statistics.median(rates[(f, "before", 0)])
        rows.append(
            {
                "format": f,
                "mode": m,
                "workers": w,
                "img_per_s": med,
                "min": min(rates[v]),
                "max": max(rates[v]),
                "all": rates[v],
                "cpu_us_per_img": statistics.median(cpu_us[v]),
                "cpu_us_all": cpu_us[v],
                "main_cpu_us_per_img": statistics.median(main_us[v]),
                "vs_before": med / before,
                "vs_step": med / step["img_per_s"],
            }
        )
    meta = {
        "bench": "data",
        "pygan": pygan.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": dev_name,
        "cores": usable_cores(),
        "default_workers": default_workers(),
        "threads": torch.get_num_threads(),
        "load_avg_1min": os.getloadavg()[0],
        "n_images": args.n_images,
        "src": args.src,
        "size": args.size,
        "batch": args.batch,
        "batches": args.batches,
        "reps": args.reps,
        "clock": "wall",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": "python bench/data.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    table = _table(rows, step, meta)
    print(table)
    stem = args.out or os.path.join(HERE, "results", f"data-{device.type}")
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    with open(stem + ".json", "w") as fh:
        json.dump({**meta, "step": step, "results": rows}, fh, indent=2)
        fh.write("\n")
    with open(stem + ".md", "w") as fh:
        fh.write(table + "\n")
    print(f"# wrote {stem}.json, {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
