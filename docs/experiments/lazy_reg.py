"""Regenerates ``docs/experiments/lazy_reg.md`` (+ ``lazy_reg.json``): lazy regularisation
(``gp_every=k``: the gradient penalty on every k-th critic step, weight times k; Karras et al. 2020,
"Analyzing and Improving the Image Quality of StyleGAN", §B) on the README's main job.

    python docs/experiments/lazy_reg.py                  # train every run, time the steps, write
    python docs/experiments/lazy_reg.py --reuse          # evaluate runs that are already trained
    python docs/experiments/lazy_reg.py --steps 100 --seeds 0 --out /tmp/lazy-smoke   # a smoke run

Two measurements, both on this machine:

* **speed**: ``bench/train_step.py --models wgan-gp --data digits16 --set width=32 --set gp_every=K
  --threads 1 --clock cpu --modes eager --no-compile`` for K = 1, 4, 16 (one thread, CPU time,
  interleaved rounds inside each call; the median step);
* **quality**: the main job (``pygan train wgan-gp --data digits16 --steps N --set width=32 --threads
  1``) at ``gp_every`` 1 and 4 for seeds 0, 1, 2, scored by the Fréchet distance in the digits
  classifier's feature space between 1,000 samples and the test split
  (``pygan.metrics.fid(..., extractor="digits")``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from pygan.data import load_data  # noqa: E402
from pygan.metrics import fid  # noqa: E402
from pygan.runs import load_checkpoint, load_run, run_paths  # noqa: E402

DATA = "digits16"
COMMON = ["width=32"]
N_SAMPLES = 1000


def _train(k: int, out: str, steps: int, seed: int, reuse: bool) -> float | None:
    last = run_paths(out)["last"]
    if reuse and os.path.isfile(last) and load_checkpoint(last)["step"] >= steps:
        print(f"  reuse {out}", flush=True)
        return None
    cmd = [sys.executable, "-m", "pygan", "train", "wgan-gp", "--data", DATA, "--steps", str(steps)]
    cmd += ["--out", out, "--seed", str(seed), "--threads", "1", "--no-progress", "--no-tensorboard"]
    cmd += ["--sample-every", "0", "--ckpt-every", "0", "--log-every", "50"]
    for o in [*COMMON, f"gp_every={k}"]:
        cmd += ["--set", o]
    if os.path.isdir(out) and not reuse:
        raise SystemExit(f"{out} exists: pass --reuse or remove it")
    r0 = os.times()
    subprocess.run(cmd, check=True, cwd=ROOT)
    r1 = os.times()
    return (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)


@torch.no_grad()
def _fd(out: str) -> float:
    model, _, _ = load_run(out)
    real = load_data(DATA, "test").x
    g = torch.Generator().manual_seed(1234)
    fake = model.sample(N_SAMPLES, g)
    return float(fid(real, fake, extractor="digits"))


def _speed(ks: list[int], reps: int) -> dict[int, dict]:
    res = {}
    for k in ks:
        path = os.path.join("/tmp", f"lazy_speed_{k}.json")
        cmd = [sys.executable, os.path.join(ROOT, "bench", "train_step.py"), "--models", "wgan-gp"]
        cmd += ["--data", DATA, "--threads", "1", "--clock", "cpu", "--modes", "eager", "--no-compile"]
        cmd += ["--reps", str(reps), "--warmup", "3", "--out", path]
        for o in [*COMMON, f"gp_every={k}"]:
            cmd += ["--set", o]
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        with open(path) as f:
            rows = json.load(f)["results"]
        row = next(r for r in rows if r["variant"] == "fused/eager")
        res[k] = {key: row[key] for key in ("ms_median", "ms_p20", "ms_p80", "img_per_s")}
        print(f"  gp_every={k}: {row['ms_median']:.1f} ms/step, {row['img_per_s']:.0f} img/s", flush=True)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2400)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--ks", default="1,4", help="gp_every values trained and scored")
    p.add_argument("--speed-ks", default="1,4,16", help="gp_every values timed")
    p.add_argument("--reps", type=int, default=30, help="timed steps per gp_every")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "lazy_reg"))
    p.add_argument("--reuse", action="store_true")
    p.add_argument("--doc", default=os.path.join(HERE, "lazy_reg.md"))
    p.add_argument("--from-json", action="store_true", help="rewrite the page from lazy_reg.json only")
    args = p.parse_args(argv)
    if args.from_json:
        with open(os.path.splitext(args.doc)[0] + ".json") as f:
            result = json.load(f)
        args.steps, args.reps = result["steps"], result.get("reps", args.reps)
        _doc(args, result)
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    ks = [int(k) for k in args.ks.split(",")]
    torch.set_num_threads(1)
    print("speed:", flush=True)
    speed = _speed([int(k) for k in args.speed_ks.split(",")], args.reps)
    runs = {}
    for k in ks:
        for seed in seeds:
            out = os.path.join(args.out, f"k{k}-s{seed}")
            print(f"train gp_every={k} seed={seed} -> {out}", flush=True)
            cpu = _train(k, out, args.steps, seed, args.reuse)
            runs[f"{k}/{seed}"] = {"k": k, "seed": seed, "cpu_s": cpu, "fd": _fd(out)}
            print(f"  FD {runs[f'{k}/{seed}']['fd']:.1f}", flush=True)
    summary = {}
    for k in ks:
        fds = [r["fd"] for r in runs.values() if r["k"] == k]
        summary[k] = {
            "fd_mean": statistics.mean(fds),
            "fd_sd": statistics.stdev(fds) if len(fds) > 1 else 0.0,
        }
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}",
        "steps": args.steps,
        "seeds": seeds,
        "speed": speed,
        "runs": runs,
        "summary": summary,
        "reps": args.reps,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    with open(os.path.splitext(args.doc)[0] + ".json", "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    _doc(args, result)
    return 0


def _doc(args, result: dict) -> None:
    """Writes the page from ``result`` (keys are strings once read back from JSON)."""
    speed = {int(k): v for k, v in result["speed"].items()}
    summary = {int(k): v for k, v in result["summary"].items()}
    runs, seeds = result["runs"], result["seeds"]
    ks = sorted(summary)
    base = speed.get(1)
    lines = [
        "# Lazy regularisation on the main job (`gp_every`)",
        "",
        "Regenerate: `python docs/experiments/lazy_reg.py` (this page and `lazy_reg.json`).",
        "",
        "`gp_every=k` computes WGAN-GP's penalty on every k-th critic step (counted from the start of",
        "training) with its weight multiplied by k (Karras et al. 2020, §B, where StyleGAN2 takes k = 16",
        "for R1). Default 1: the paper. Available on every model with a penalty: `wgan-gp`, `acl-gan`/",
        "`acl-gan-gp` (`gan_loss=wgan-gp`), `cogan`/`scogan` (`loss=wgan-gp`). With `--cuda-graphs` each",
        "distinct schedule of an iteration's critic steps is its own captured graph.",
        "",
        f"Machine: {result['machine']}; the main job's settings (`--data digits16 --preset small`: width 32,",
        "5 critic steps per iteration, batch 64), one thread.",
        "",
        f"## Step time (`bench/train_step.py`, CPU time, median of {args.reps} steps, p20-p80)",
        "",
        "| gp_every | ms/step | p20-p80 | img/s | vs gp_every=1 |",
        "|---:|---:|---:|---:|---:|",
    ]
    for k, r in speed.items():
        ratio = base["ms_median"] / r["ms_median"] if base else float("nan")
        lines.append(
            f"| {k} | {r['ms_median']:.1f} | {r['ms_p20']:.1f}-{r['ms_p80']:.1f} | {r['img_per_s']:.0f} | "
            f"{ratio:.2f}x |"
        )
    lines += [
        "",
        f"## Sample quality after {args.steps} iterations (digits-feature FD, {N_SAMPLES} samples vs the"
        " test split; lower is better)",
        "",
        "| gp_every | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd |",
        "|---:|" + "---:|" * (len(seeds) + 1),
    ]
    for k in ks:
        fds = [runs[f"{k}/{s}"]["fd"] for s in seeds]
        lines.append(
            f"| {k} | " + " | ".join(f"{v:.1f}" for v in fds) + f" | {summary[k]['fd_mean']:.1f} ± "
            f"{summary[k]['fd_sd']:.1f} |"
        )
    if 1 in summary and len(summary) > 1:
        lines += ["", "## Reading", ""]
        for k in ks:
            if k == 1:
                continue
            d = summary[k]["fd_mean"] - summary[1]["fd_mean"]
            sp = base["ms_median"] / speed[k]["ms_median"] if base and k in speed else float("nan")
            worse = d > summary[1]["fd_sd"] + summary[k]["fd_sd"]
            verdict = (
                "worse than the seed spread: keep the default on this job" if worse else "within the spread"
            )
            lines.append(
                f"`gp_every={k}` makes the step {sp:.2f}x faster and moves the FD by {d:+.1f} ({verdict})."
            )
        kmax = max(speed)
        if base and kmax > 1:  # t_k = t_1 - share * t_1 * (1 - 1/k): the penalty's share of an iteration
            share = (base["ms_median"] - speed[kmax]["ms_median"]) / (1 - 1 / kmax) / base["ms_median"]
            lines += [
                "",
                "The saving is the penalty's pass (the double backward through the critic) on the skipped",
                f"steps: from gp_every={kmax} it is about {100 * share:.0f}% of an iteration here.",
                "The default stays `gp_every=1`, the paper's setting.",
            ]
    with open(args.doc, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    sys.exit(main())
