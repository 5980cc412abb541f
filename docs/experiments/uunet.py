"""Regenerates ``docs/experiments/uunet.md`` (the UU-Nets paper): trains the UU-Net variants and the
baselines on an embedded image-to-image task through :func:`pygan.train.train`, scores the test
pairs with :func:`pygan.evaluate.evaluate_run` (MSE / PSNR / SSIM / LPIPS-style of ``translate``), and
writes the numbers (``uunet.json``), the pictures (``docs/images/uunet_*.png``) and the page.

    python docs/experiments/uunet.py                      # the page as committed (~45 min, loaded 2-core CPU)
    python docs/experiments/uunet.py --facades DIR        # + pix2pix-format Facades (A|B pairs) in DIR
    python docs/experiments/uunet.py --quick              # a smoke run (few steps, no page)

Runs already complete in ``--runs`` (a checkpoint at the requested step) are reused; ``--fresh``
retrains them. One intra-op thread per run (``torch.set_num_threads(1)``; faster than two on a
shared 2-core machine).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

import pygan  # noqa: E402
from pygan.data import load_data  # noqa: E402
from pygan.data.grid import save_grid  # noqa: E402
from pygan.evaluate import evaluate_run  # noqa: E402
from pygan.metrics.image_quality import mse, psnr, ssim  # noqa: E402
from pygan.runs import load_run, read_config, run_paths  # noqa: E402
from pygan.train import train  # noqa: E402

TAIL_KEYS = ("adv_d", "d_real", "d_fake", "adv_g", "rec", "g_grad_norm_from_d")
HEADER = (
    "| model | what | seed | MSE ↓ | PSNR dB ↑ | SSIM ↑ | LPIPS-style ↓ | train PSNR | ms / step "
    "| D adv. loss | D(real) / D(fake) |"
)
# label, model, overrides, what it is
RUNS = [
    ("pix2pix", "pix2pix", [], "U-Net G + PatchGAN D, L1 x 100 (the paper's baseline)"),
    ("pix2pix-L2", "pix2pix", ["rec_loss=l2", "rec_weight=1"], "pix2pix with the UU-Nets' L2 (Eq. 4)"),
    ("U-Net VAE-GAN", "unet-vae-gan", [], "U-Net VAE G + PatchGAN D, L2 + G-KL"),
    ("UU-Net unconnected", "uunet", ["connect=none"], "U-Net G + U-Net D (tail), no G->D link"),
    ("UU-Net v1 (enc)", "uunet", ["connect=v1"], "G encoder -> D encoder"),
    ("UU-Net v2 (latent)", "uunet", ["connect=v2"], "G code -> D code"),
    ("UU-Net v3 (dec)", "uunet", ["connect=v3"], "G decoder -> D decoder"),
    ("UU-Net v4 (enc+dec)", "uunet", ["connect=v4"], "v1 + v3 (the paper's FUUnet)"),
    ("v4, no tail", "uunet", ["connect=v4", "tail=false"], "v4, per-pixel D output (no tail)"),
    ("v4, G fixed in D step", "uunet", ["connect=v4", "g_in_d_step=none"], "v4, only D steps on D's loss"),
    ("UUVAE-GAN", "uuvae-gan", [], "v4 + VAE bottlenecks, G-KL, D-KL 0.65, cross-KL, tail"),
    ("UUVAE-GAN, no ckl", "uuvae-gan", ["ckl=0"], "as above without the cross-KL"),
]
SECOND_SEED = ("pix2pix-L2", "UU-Net unconnected", "UU-Net v4 (enc+dec)", "UUVAE-GAN")
FACADES_RUNS = ("pix2pix", "pix2pix-L2", "UU-Net unconnected", "UU-Net v4 (enc+dec)", "UUVAE-GAN")
PICTURE_ROWS = (
    "pix2pix",
    "pix2pix-L2",
    "U-Net VAE-GAN",
    "UU-Net unconnected",
    "UU-Net v1 (enc)",
    "UU-Net v2 (latent)",
    "UU-Net v3 (dec)",
    "UU-Net v4 (enc+dec)",
    "UUVAE-GAN",
)


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-").replace("--", "-")


def complete(run: str, steps: int) -> bool:
    p = run_paths(run)["last"]
    if not os.path.isfile(p):
        return False
    return int(torch.load(p, weights_only=True, map_location="cpu")["step"]) == steps


def rows_of(run: str) -> list[dict]:
    with open(run_paths(run)["metrics"]) as f:
        return [json.loads(line) for line in f]


def train_one(label, model, overrides, data, run, steps, seed, common, fresh) -> dict:
    if fresh and os.path.isdir(run):
        shutil.rmtree(run)
    if os.path.isdir(run) and not complete(run, steps):
        shutil.rmtree(run)  # an interrupted or differently sized run: start over
    t0 = time.perf_counter()
    trained = not complete(run, steps)
    if trained:
        print(f"[train] {label} seed {seed} -> {run}", flush=True)
        train(
            model,
            data,
            run,
            steps,
            overrides=[*common, *overrides],
            seed=seed,
            log_every=50,
            sample_every=0,
            ckpt_every=0,
            n_samples=16,
            progress=False,
            tensorboard=False,
        )
    wall = time.perf_counter() - t0
    rows = rows_of(run)
    loss_rows = [r for r in rows if "loss_d" in r]
    # time per step: median over the logging intervals (robust to load spikes on a shared machine)
    per = [(b["time"] - a["time"]) / (b["step"] - a["step"]) for a, b in itertools.pairwise(loss_rows)]
    tail = loss_rows[-max(1, len(loss_rows) // 5) :]

    def tail_mean(key):
        vals = [r[key] for r in tail if key in r]
        return statistics.fmean(vals) if vals else None

    ev = evaluate_run(run, metrics=["translation"])["metrics"]["translation"]
    ev["train_psnr"] = train_psnr(run, data)
    return {
        "label": label,
        "model": model,
        "overrides": overrides,
        "seed": seed,
        "data": data,
        "steps": steps,
        "ms_per_step": 1e3
        * (statistics.median(per) if per else loss_rows[-1]["time"] / loss_rows[-1]["step"]),
        # the loop's clock at its last log line: the training time, also for a reused run
        "train_s": loss_rows[-1]["time"],
        "wall_s_this_invocation": wall if trained else None,
        "last20": {k: tail_mean(k) for k in TAIL_KEYS},
        "metrics": ev,
        "run": run,
    }


@torch.no_grad()
def train_psnr(run: str, data: str, n: int = 256) -> float:
    """PSNR of ``translate`` on ``n`` training pairs (same eval mode as the test metrics): with the
    test PSNR, the generalisation gap (the paper says plain UU-Net GANs overfit, §5.2)."""
    rows = load_data(data, "train").fixed(n)
    model, _, _ = load_run(run)
    return float(psnr(model.translate(rows.x), rows.target))


@torch.no_grad()
def constant_baseline(data: str) -> dict:
    """The mean training target, predicted for every test input: context for the PSNR/SSIM values."""
    tr, te = load_data(data, "train"), load_data(data, "test")
    mean = tr.target.mean(0, keepdim=True).expand_as(te.target)
    return {
        "mse": float(mse(mean, te.target)),
        "psnr": float(psnr(mean, te.target)),
        "ssim": float(ssim(mean, te.target)) if te.target.shape[-1] >= 11 else None,
    }


@torch.no_grad()
def picture(results: list[dict], data: str, path: str, n: int = 8) -> list[str]:
    """Rows: test inputs, targets, then each model's outputs (seed 0) for the same 8 test pairs."""
    te = load_data(data, "test").fixed(n)
    rows, names = [te.x, te.target], ["input", "target"]
    by_label = {r["label"]: r for r in results if r["seed"] == 0}
    for label in PICTURE_ROWS:
        if label in by_label:
            model, _, _ = load_run(by_label[label]["run"])
            rows.append(model.translate(te.x))
            names.append(label)
    c = max(r.shape[1] for r in rows)
    tiles = torch.cat([r.float().expand(-1, c, -1, -1) for r in rows])
    save_grid(tiles, path, nrow=n, scale=2)
    return names


def fmt(v, spec=".4f"):
    return "–" if v is None else format(v, spec)


def table(results: list[dict], baseline: dict) -> list[str]:
    out = [
        HEADER,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    what = {label: w for label, _, _, w in RUNS}
    for r in results:
        m, t = r["metrics"], r["last20"]
        dd = f"{fmt(t['d_real'], '.2f')} / {fmt(t['d_fake'], '.2f')}"
        out.append(
            f"| {r['label']} | {what[r['label']]} | {r['seed']} | {fmt(m['mse'])} | "
            f"{fmt(m['psnr'], '.2f')} | {fmt(m.get('ssim'), '.3f')} | {fmt(m.get('lpips_style'), '.4f')} | "
            f"{fmt(m.get('train_psnr'), '.2f')} | {fmt(r['ms_per_step'], '.0f')} | "
            f"{fmt(t['adv_d'], '.3f')} | {dd} |"
        )
    out.append(
        f"| mean training target | constant prediction | – | {fmt(baseline['mse'])} | "
        f"{fmt(baseline['psnr'], '.2f')} | {fmt(baseline['ssim'], '.3f')} | – | – | – | – | – |"
    )
    return out


def seed_summary(results: list[dict]) -> list[str]:
    out = ["| model | seeds | MSE | PSNR dB | SSIM |", "|---|---:|---:|---:|---:|"]
    for label in SECOND_SEED:
        rs = [r for r in results if r["label"] == label]
        if len(rs) < 2:
            continue

        cells = []
        for key, spec in (("mse", ".4f"), ("psnr", ".2f"), ("ssim", ".3f")):
            vals = [r["metrics"][key] for r in rs]
            cells.append(f"{statistics.fmean(vals):{spec}} ± {statistics.stdev(vals):{spec}}")
        out.append(f"| {label} | {len(rs)} | {' | '.join(cells)} |")
    return out


def verdict(results: list[dict], spread: list[float]) -> list[str]:
    """The paper's headline (Table 1: UU-Net GANs and UUVAE-GAN beat pix2pix), checked on the
    seed means of the models run with two seeds against the seed-to-seed spread."""
    means = {}
    for label in SECOND_SEED:
        vals = [r["metrics"]["psnr"] for r in results if r["label"] == label]
        if len(vals) >= 2:
            means[label] = statistics.fmean(vals)
    if "pix2pix-L2" not in means or not spread:
        return []
    ref = means["pix2pix-L2"]
    out = []
    for label in ("UU-Net v4 (enc+dec)", "UUVAE-GAN"):
        if label in means:
            diff = means[label] - ref
            if abs(diff) <= max(spread):
                word = (
                    "within the seed-to-seed spread: the paper's claim is neither shown nor refuted "
                    "at this scale"
                )
            elif diff > 0:
                word = "better than pix2pix-L2 by more than the seed-to-seed spread, as the paper claims"
            else:
                word = "worse than pix2pix-L2 by more than the seed-to-seed spread: contrary to the paper"
            out.append(
                f"- Headline check, {label} vs pix2pix-L2 (mean of 2 seeds): PSNR {diff:+.2f} dB, {word}."
            )
    return out


def observations(results: list[dict], base: dict) -> list[str]:
    s0 = {r["label"]: r for r in results if r["seed"] == 0}
    out = []
    spread = [
        abs(a["metrics"]["psnr"] - b["metrics"]["psnr"])
        for a in results
        for b in results
        if a["label"] == b["label"] and a["seed"] < b["seed"]
    ]
    if spread:
        out.append(
            f"- Seed-to-seed PSNR differences of the same model: up to {max(spread):.2f} dB "
            f"(median {statistics.median(spread):.2f} dB over the {len(spread)} models run twice). "
            "Differences between models smaller than that are not evidence either way; the single-seed "
            "comparisons below are listed for completeness, not as findings. Their time-per-step ratios come "
            "from runs made at different machine loads; the Performance table above compares speeds "
            "side by side."
        )
    low = [f"{r['label']} (seed {r['seed']})" for r in results if r["metrics"]["psnr"] < base["psnr"]]
    if low:
        out.append(
            f"- Runs whose test PSNR is below the constant mean-target prediction ({base['psnr']:.2f} dB): "
            + ", ".join(low)
            + "."
        )
    ctrl = s0.get("UU-Net unconnected")
    if ctrl:
        for label in ("UU-Net v1 (enc)", "UU-Net v2 (latent)", "UU-Net v3 (dec)", "UU-Net v4 (enc+dec)"):
            if label in s0:
                r = s0[label]
                out.append(
                    f"- {label} vs the unconnected UU-Net (seed 0): PSNR "
                    f"{r['metrics']['psnr'] - ctrl['metrics']['psnr']:+.2f} dB, SSIM "
                    f"{r['metrics']['ssim'] - ctrl['metrics']['ssim']:+.3f}, time per step "
                    f"x{r['ms_per_step'] / ctrl['ms_per_step']:.2f}."
                )
    for a, b in (
        ("pix2pix", "pix2pix-L2"),
        ("pix2pix-L2", "UU-Net unconnected"),
        ("UU-Net v4 (enc+dec)", "v4, no tail"),
        ("UU-Net v4 (enc+dec)", "v4, G fixed in D step"),
        ("UU-Net v4 (enc+dec)", "UUVAE-GAN"),
        ("UUVAE-GAN, no ckl", "UUVAE-GAN"),
        ("pix2pix-L2", "UUVAE-GAN"),
    ):
        if a in s0 and b in s0:
            out.append(
                f"- {b} vs {a}: PSNR {s0[b]['metrics']['psnr'] - s0[a]['metrics']['psnr']:+.2f} dB, "
                f"SSIM {s0[b]['metrics']['ssim'] - s0[a]['metrics']['ssim']:+.3f}, time per step "
                f"x{s0[b]['ms_per_step'] / s0[a]['ms_per_step']:.2f}."
            )
    if "pix2pix" in s0 and ctrl and "UU-Net v4 (enc+dec)" in s0:
        d = {
            k: " / ".join(f"{r['last20']['adv_d']:.3f}" for r in results if r["label"] == k)
            for k in ("pix2pix-L2", "UU-Net unconnected", "UU-Net v4 (enc+dec)")
            if k in s0
        }
        out.append(
            "- D's adversarial loss over the last 20% of steps, per seed (higher = a weaker D; the "
            "paper's Fig. 5 claim is that connected UU-Nets' D loss is higher than pix2pix's): "
            + ", ".join(f"{k} {v}" for k, v in d.items())
            + "."
        )
    out += verdict(results, spread)
    gaps = {k: r["metrics"]["train_psnr"] - r["metrics"]["psnr"] for k, r in s0.items()}
    if gaps:
        out.append(
            "- Generalisation gap, train PSNR minus test PSNR (seed 0): "
            + ", ".join(f"{k} {v:.2f} dB" for k, v in gaps.items())
            + "."
        )
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="photo-edges32", help="the embedded paired task (default photo-edges32)")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--width", type=int, default=16, help="G and D base width (the paper's is not stated)")
    p.add_argument("--facades", help="a pix2pix-format Facades folder (A|B pairs); adds a second table")
    p.add_argument("--facades-size", type=int, default=64)
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "uunet"))
    p.add_argument("--fresh", action="store_true", help="retrain runs that are already complete")
    p.add_argument("--quick", action="store_true", help="smoke run: 20 steps, no page written")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    steps = 20 if args.quick else args.steps
    common = [f"width={args.width}", f"d_width={args.width}"]

    results = []
    plan = [(label, model, over, 0) for label, model, over, _ in RUNS]
    plan += [(label, model, over, 1) for label, model, over, _ in RUNS if label in SECOND_SEED]
    for label, model, over, seed in plan:
        run = os.path.join(args.runs, slug(args.data), f"{slug(label)}-s{seed}")
        results.append(train_one(label, model, over, args.data, run, steps, seed, common, args.fresh))
        print(f"[done] {label} s{seed}: {results[-1]['metrics']}", flush=True)

    facades = []
    if args.facades:
        fdata = f"pix2pix:{args.facades}?size={args.facades_size}"
        for label, model, over, _ in RUNS:
            if label in FACADES_RUNS:
                run = os.path.join(args.runs, "facades", f"{slug(label)}-s0")
                facades.append(train_one(label, model, over, fdata, run, steps, 0, common, args.fresh))

    if args.quick:
        print(
            json.dumps(
                [{k: r[k] for k in ("label", "seed", "metrics", "ms_per_step")} for r in results], indent=1
            )
        )
        return 0
    base = constant_baseline(args.data)
    img = os.path.join(ROOT, "docs", "images", f"uunet_{slug(args.data)}.png")
    names = picture(results, args.data, img)
    v4 = next(r for r in results if r["label"] == "UU-Net v4 (enc+dec)" and r["seed"] == 0)
    triples = os.path.join(ROOT, "docs", "images", "uunet_v4_triples.png")
    shutil.copyfile(os.path.join(v4["run"], "samples", "last.png"), triples)
    cfg = read_config(v4["run"])
    info = {
        "data": args.data,
        "steps": steps,
        "width": args.width,
        "torch": torch.__version__,
        "cpu": pygan._ext.cpu_name(),
        "load_avg_1min_at_end": os.getloadavg()[0],
        "train_minutes_total": sum(r["train_s"] for r in results + facades) / 60,
        "v4_config": cfg["model_config"],
    }
    with open(os.path.join(HERE, "uunet.json"), "w") as f:
        rel = [{**r, "run": os.path.relpath(r["run"], ROOT)} for r in results + facades]
        runs, fac = rel[: len(results)], rel[len(results) :]
        json.dump({"info": info, "baseline": base, "runs": runs, "facades": fac}, f, indent=1)
        f.write("\n")
    write_page(
        info, base, results, facades, names, os.path.relpath(img, HERE), os.path.relpath(triples, HERE)
    )
    return 0


BENCH = os.path.join(ROOT, "bench", "results", "train_step-cpu-uunet.json")
BENCH_CMD = (
    "python bench/train_step.py --models pix2pix,unet-vae-gan,uunet,uuvae-gan --set width=16 "
    "--set d_width=16 --threads 1 --reps 10 --out bench/results/train_step-cpu-uunet.json"
)


def performance() -> list[str]:
    """The training-step benchmark of the family (``bench/train_step.py``), when its JSON exists."""
    if not os.path.isfile(BENCH):
        return []
    with open(BENCH) as f:
        b = json.load(f)
    out = [
        "## Performance: training steps, fused vs reference, eager vs compile",
        "",
        f"`{BENCH_CMD}` (default data `photo-edges32`, batch 8; {b['device']}, torch {b['torch']}, "
        f"{b['threads']} thread, load average {b['load_avg_1min']:.1f}; median of {b['reps']} steps, "
        "variants interleaved):",
        "",
        "| model | variant | ms / step | p20-p80 | img/s | vs reference/eager | peak MB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    base = {r["model"]: r["ms_median"] for r in b["results"] if r["variant"] == "reference/eager"}
    for r in b["results"]:
        mem = "–" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.1f}"
        out.append(
            f"| {r['model']} | {r['variant']} | {r['ms_median']:.1f} | {r['ms_p20']:.0f}-{r['ms_p80']:.0f} | "
            f"{r['img_per_s']:.1f} | {base[r['model']] / r['ms_median']:.2f}x | {mem} |"
        )
    out += [
        "",
        "None of these models calls a fused op: the paper has no gradient penalty, Gram/style loss, "
        "feature regulariser or residual addition (every skip is a concatenation), so "
        "`fused` and `reference` run the same code and their difference is timing noise on a shared "
        "machine. `compile` is `model.compile_networks()` (both networks, `torch.compile`).",
    ]
    ratio = {
        r["model"]: base[r["model"]] / r["ms_median"]
        for r in b["results"]
        if r["variant"] == "reference/compile"
    }
    if ratio:
        word = (
            "slower"
            if max(ratio.values()) < 1
            else "not uniformly faster"
            if min(ratio.values()) < 1
            else "faster"
        )
        out.append(
            f"On this CPU, compiled steps were {word} than eager ones ("
            + ", ".join(f"{k} x{v:.2f}" for k, v in ratio.items())
            + " of the eager speed, reference backend) and used more memory. Not profiled; a likely "
            "reason is that the steps are dominated by "
            "convolutions that inductor hands to the same oneDNN kernels eager uses, so there is little "
            "to fuse; `compile_networks` stays opt-in."
        )
    out.append("")
    return out


def write_page(info, base, results, facades, names, img, triples) -> None:
    d = info["data"]
    lines = [
        "# UU-Nets: connecting D and G, on an embedded image-to-image task",
        "",
        "Generated by `python docs/experiments/uunet.py` (numbers: `uunet.json`); do not edit by hand.",
        "",
        "## What was run",
        "",
        f"Task `{d}`: 1-channel edge maps -> 32 px colour photo patches (2,000 train / 256 test patches "
        "from the photographs scikit-learn and scikit-image ship; test patches come from parts of the "
        "photos the training patches never touch). Every model in `pygan/models/uunet.py`, trained with "
        f"`pygan.train.train` for **{info['steps']} iterations** at batch 8 (the paper's batch; "
        f"{info['steps'] * 8 / 2000:.0f} epochs), G and D base width **{info['width']}** "
        "(the paper states none; pix2pix uses 64), Adam 2e-4 / (0.5, 0.999), one thread; metrics by "
        "`pygan eval` (`pygan.evaluate.evaluate_run`, `translation`: the model's `translate` on the 256 "
        "test inputs vs their targets; `translate` runs G in eval mode: no dropout, BatchNorm running "
        "statistics, a VAE's posterior mean), images in [-1, 1], data range 2, so MSE is in [-1, 1] units "
        "(divide by 4 for [0, 1] units) and PSNR is the same as on [0, 1] images; PSNR is averaged over "
        "per-image values, so it need not rank runs as MSE does; SSIM 11x11 Gaussian; "
        "LPIPS-style = pygan's perceptual distance on the shipped digits CNN, a weak proxy on photos).",
        "",
        "Configs are each model's defaults (docstrings of `pygan/models/uunet.py` list every choice the "
        "paper leaves open) except the width: UU-Nets and the VAE models use the paper's L2 of Eq. 4 "
        "(half the per-sample sum of squares, weight 1); pix2pix uses its own L1 x 100, and "
        "`pix2pix-L2` is pix2pix with the UU-Nets' L2, so that the architecture comparison is not a "
        "loss comparison. UU-Nets: D is a U-Net on (input, image) with the tail, G's maps enter D "
        "undetached, and G's parameters are in D's optimizer (`g_in_d_step=cooperative`) unless noted.",
        "",
        f"Machine: {info['cpu']}, torch {info['torch']}, shared with other jobs (load average "
        f"{info['load_avg_1min_at_end']:.1f} at the end); training took {info['train_minutes_total']:.0f} "
        "minutes in all (sum over the runs; evaluation adds a few seconds per run). Time per step = "
        "median over 50-step logging intervals, one intra-op thread.",
        "",
        *performance(),
        "",
        "## Results",
        "",
        *table(results, base),
        "",
    ]
    ss = seed_summary(results)
    if len(ss) > 2:
        lines += ["Seed spread (seeds 0 and 1, mean ± sample std):", "", *ss, ""]
    lines += [
        "D adv. loss and D(real) / D(fake) are means over the last 20% of the logged steps "
        "(D(·) = mean sigmoid of D's logits; the adversarial part of D's loss, halved as in pix2pix).",
        "",
        "Observations (computed from the table):",
        "",
        *observations(results, base),
        "",
        f"![test inputs, targets and outputs]({img})",
        "",
        "Rows, top to bottom: " + ", ".join(names) + " (the same 8 test pairs, seed-0 runs).",
        "",
        f"![v4 triples]({triples})",
        "",
        "UU-Net v4 at the last step, as `pygan train` draws it: (input, output, target) triples of 16 "
        "fixed test pairs.",
        "",
    ]
    if facades:
        lines += [
            "## Facades (pix2pix folder)",
            "",
            *table(facades, {"mse": None, "psnr": None, "ssim": None}),
            "",
        ]
    else:
        lines += [
            "## Facades",
            "",
            "Not run: no Facades copy on this machine (nothing downloads). With a local pix2pix-format "
            "folder, `python docs/experiments/uunet.py --facades DIR` adds a table for pix2pix, "
            "pix2pix-L2, the unconnected UU-Net, v4 and UUVAE-GAN at `--facades-size` px (64).",
            "",
        ]
    lines += [
        "## What was cut for the CPU budget",
        "",
        "- Scale: 32 px, width 16, "
        f"{info['steps']} iterations, versus the paper's 256 px (Facades), unstated width, 2,000 epochs "
        "on four GPUs. The runs are short: every number here is an early-training number.",
        "- Seeds: one seed for every model, a second seed only for pix2pix-L2, the unconnected UU-Net, "
        'v4 and UUVAE-GAN (the paper averages 5 "computations").',
        "- Not run: `uuc` (triple concatenation), adversarial `g_in_d_step`, the Dis_kl 0.4 row and "
        "the alpha:beta / beta-ramp settings (all available through `--set`), the blurred -> sharp "
        "task (`--data photo-blur32`), Facades (no local copy), the stability column of Table 2 "
        '("Tensorboard smoothing coefficient" is not a defined statistic).',
        "",
    ]
    with open(os.path.join(HERE, "uunet.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
