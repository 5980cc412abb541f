"""Regenerates ``docs/experiments/scogan.md``: CoGAN vs SCoGAN variants on digits->edge and
digits->negative (Soft-Coupled GANs), with semantic agreement of pairs, per-domain FID (digits extractor) and
sample grids of pairs from the same ``z``.

    python docs/experiments/scogan.py             # train every run (sequentially), evaluate, write
    python docs/experiments/scogan.py --reuse     # keep finished runs in runs/scogan/, redo the rest
    python docs/experiments/scogan.py --render    # rewrite the .md from scogan.json (after editing notes)

Each run is ``python -m pygan train ... --threads 1`` (one process at a time; its CPU time is
measured from the child's rusage) and ``pygan.evaluate.evaluate_run`` (1,000 pairs). Outputs:
``docs/experiments/scogan.md``, ``docs/experiments/scogan.json`` and ``docs/images/scogan_*.png``;
the run directories stay in ``runs/scogan/`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pygan.data import DataSpec, load_data, load_digits  # noqa: E402
from pygan.data import transforms as T  # noqa: E402
from pygan.data.grid import save_grid  # noqa: E402
from pygan.evaluate import evaluate_run, run_data  # noqa: E402
from pygan.runs import load_run  # noqa: E402

RUNS = ROOT / "runs" / "scogan"
DOC = ROOT / "docs" / "experiments" / "scogan.md"
JSON = ROOT / "docs" / "experiments" / "scogan.json"
IMAGES = ROOT / "docs" / "images"

STEPS = 1200  # about 21 CPU-minutes of training for the 13 runs below (the CPU budget)
# Scaled-down thesis nets (Tables 3.1/3.2 at 16 px: g_width 1024 -> 64, d_width 20 -> 10), batch 32,
# the non-saturating loss with the DCGAN optimiser (the thesis' CoGAN reproduction and §4.1 FR runs;
# §5 used WGAN-GP, 5x the discriminator work: not affordable here).
COMMON = ["loss=ns", "g_width=64", "d_width=10", "batch_size=32"]
# alpha_PL/beta_PL: the thesis' 1e-3/1e-11 were set for Keras' VGG19 on [0, 255] pixels; on the digits
# classifier's maps they make PL vanish (content ~3e-3, style ~1e-11), so they are rescaled: the
# content term starts near 10 (as the thesis' alpha * FRL did), the style term near 1.
PL = ["pl_content_weight=3", "pl_style_weight=5"]
VARIANTS = (  # name, model, overrides (weights: the thesis' MNIST2edge values; pairs: its MNIST2SVHN ones)
    ("CoGAN", "cogan", []),
    ("uncoupled", "scogan", ["regularizers="]),
    ("FR", "scogan", ["regularizers=fr", "fr_weight=10"]),
    ("SL", "scogan", ["regularizers=sl", "sl_weight=10"]),
    ("CC", "scogan", ["regularizers=cc", "cc_weight=10", "enc_width=16"]),
    ("PL", "scogan", ["regularizers=pl", *PL]),
    ("SL+FR", "scogan", ["regularizers=sl,fr", "sl_weight=10", "fr_weight=100"]),
    ("SL+CC", "scogan", ["regularizers=sl,cc", "sl_weight=10", "cc_weight=10", "enc_width=16"]),
    ("FR+CC", "scogan", ["regularizers=fr,cc", "fr_weight=100", "cc_weight=10", "enc_width=16"]),
)
# the harder pair gets every variant; the easier one CoGAN, the uncoupled control and the two cheapest
# regularisers (the CPU budget)
DATASETS = {
    "digits16-edge": [v[0] for v in VARIANTS],
    "digits16-negative": ["CoGAN", "uncoupled", "FR", "SL"],
}
N_EVAL = 1000
GRID_PAIRS = 8


def _slug(name: str) -> str:
    return name.lower().replace("+", "-")


def _train(spec: str, name: str, model: str, overrides: list[str], reuse: bool) -> dict:
    out = RUNS / spec / _slug(name)
    done = out / "checkpoints" / "last.pt"
    info_file = out / "cpu.json"
    if reuse and done.is_file() and info_file.is_file():
        return json.loads(info_file.read_text())
    if out.exists():
        import shutil

        shutil.rmtree(out)
    cmd = [
        sys.executable,
        "-m",
        "pygan",
        "train",
        model,
        "--data",
        spec,
        "--steps",
        str(STEPS),
        "--out",
        str(out),
    ]
    cmd += ["--threads", "1", "--no-progress", "--no-tensorboard", "--sample-every", "500", "--seed", "0"]
    for o in COMMON + overrides:
        cmd += ["--set", o]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    info = {
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "command": " ".join(["python", *cmd[1:]]).replace(str(ROOT) + "/", ""),
    }
    info_file.write_text(json.dumps(info))
    return info


class _RealPairs:
    """A stand-in "model" whose samples are real pairs (x, transform(x)): the agreement ceiling."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor):
        self.a, self.b, self.i = a, b, 0

    def sample(self, n, generator=None):
        idx = torch.arange(self.i, self.i + n) % len(self.a)
        self.i += n
        return self.a[idx], self.b[idx]


def _references(spec: str) -> dict:
    """Agreement of real pairs (a test digit and its own transform: the ceiling), of unpaired real
    rows (chance), and per-domain FID of real training rows against the test rows (the floor), with
    the machinery ``pygan eval`` uses."""
    info = load_data(spec, "train").info
    data = run_data(DataSpec(spec, None, info))
    size, tr = info.size, info.meta["transform"]
    x, _ = load_digits(size, "test")
    out = {}
    paired = _RealPairs(x, T.DOMAIN_TRANSFORMS[tr](x))
    r = evaluate_run(
        ".", loader=lambda _: (paired, {}, data), write=False, n_samples=len(x), batch_size=len(x)
    )
    out["agreement_real_pairs"] = r["metrics"]["semantic_agreement"]["agreement"]
    test = load_data(spec, "test")
    a, b = test.x[test.domain == 0], test.x[test.domain == 1]
    n = min(len(a), len(b))
    unpaired = _RealPairs(a[:n], b[:n])
    r = evaluate_run(".", loader=lambda _: (unpaired, {}, data), write=False, n_samples=n, batch_size=n)
    out["agreement_unpaired"] = r["metrics"]["semantic_agreement"]["agreement"]
    train = load_data(spec, "train")
    reals = _RealPairs(train.x[train.domain == 0][:700], train.x[train.domain == 1][:700])
    r = evaluate_run(".", loader=lambda _: (reals, {}, data), write=False, n_samples=700, batch_size=700)
    out["fid_train_vs_test"] = r["metrics"]["fid_per_domain"]
    return out


def _grid(spec: str) -> str:
    """One row per variant: ``GRID_PAIRS`` pairs (A, B) from the same fixed z."""
    rows = []
    for name in DATASETS[spec]:
        model, _, _ = load_run(str(RUNS / spec / _slug(name)))
        a, b = model.sample(GRID_PAIRS, generator=torch.Generator().manual_seed(123))
        rows.append(torch.stack([a, b], 1).flatten(0, 1))
    path = IMAGES / f"scogan_{spec.split('-')[1]}.png"
    save_grid(torch.cat(rows), str(path), nrow=2 * GRID_PAIRS, pad=1, scale=2)
    return str(path.relative_to(ROOT))


def main(argv=None) -> int:
    global STEPS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reuse", action="store_true", help="keep finished runs in runs/scogan/")
    ap.add_argument(
        "--steps", type=int, default=STEPS, help=f"iterations per run (default {STEPS}; for smoke tests)"
    )
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from scogan.json")
    args = ap.parse_args(argv)
    if args.render:
        DOC.write_text(_markdown(json.loads(JSON.read_text())))
        print(f"wrote {DOC.relative_to(ROOT)}")
        return 0
    STEPS = args.steps
    torch.set_num_threads(1)
    results = {
        "steps": STEPS,
        "common": COMMON,
        "n_eval": N_EVAL,
        "torch": torch.__version__,
        "cpu": platform.processor() or "cpu",
        "datasets": {},
    }
    t_start = time.perf_counter()
    for spec, names in DATASETS.items():
        rows = {}
        for name, model, overrides in (v for v in VARIANTS if v[0] in names):
            print(f"[{spec}] {name} ...", flush=True)
            info = _train(spec, name, model, overrides, args.reuse)
            run = RUNS / spec / _slug(name)
            t0 = time.perf_counter()
            ev = evaluate_run(run, n_samples=N_EVAL, seed=0)
            m = ev["metrics"]
            last = json.loads((run / "metrics.jsonl").read_text().strip().splitlines()[-1])
            rows[name] = {
                "model": model,
                "overrides": COMMON + overrides,
                "agreement": m["semantic_agreement"]["agreement"],
                "fid": m["fid_per_domain"],
                "cpu_s": info["cpu_s"],
                "wall_s": info["wall_s"],
                "eval_s": round(time.perf_counter() - t0, 1),
                "command": info["command"],
                "final_losses": {k: v for k, v in last.items() if k not in ("step", "time", "img_per_s")},
            }
            print(
                f"    agreement {rows[name]['agreement']:.3f} fid {m['fid_per_domain']} cpu {info['cpu_s']}s"
            )
        results["datasets"][spec] = {"runs": rows, "references": _references(spec), "grid": _grid(spec)}
    results["total_wall_s"] = round(time.perf_counter() - t_start, 1)
    results["total_train_cpu_s"] = round(
        sum(r["cpu_s"] for d in results["datasets"].values() for r in d["runs"].values()), 1
    )
    JSON.write_text(json.dumps(results, indent=2) + "\n")
    DOC.write_text(_markdown(results))
    print(f"wrote {DOC.relative_to(ROOT)}, {JSON.relative_to(ROOT)}")
    return 0


def _markdown(r: dict) -> str:
    from textwrap import dedent

    lines = [
        "# CoGAN vs SCoGAN on digits->edge and digits->negative (Soft-Coupled GANs)",
        "",
        "Regenerate everything on this page (runs, numbers, pictures) with:",
        "",
        "```bash",
        "python docs/experiments/scogan.py",
        "```",
        "",
        dedent(
            f"""\
            **What.** The thesis' question: does soft coupling (SCoGAN's regularisers)
            learn the *joint* distribution of two domains where CoGAN's hard weight sharing struggles?
            Both models are pygan's (`pygan/models/cogan.py`, `pygan/models/scogan.py`), trained with
            `pygan train` on the embedded digits at 16 px, unpaired half/half split (`digits16-edge`:
            719 plain digits vs 719 *other* digits as edges `dilate(x) - x`; `digits16-negative`:
            the other half negated), {r["steps"]:,} generator iterations each, seed 0, `--threads 1`.

            **Settings** (all runs): `{" ".join("--set " + c for c in r["common"])}` (`cogan` and
            `scogan`'s `--preset small`, whose `enc_width=16` is what the CC runs set) — the thesis'
            Table 3.1/3.2 nets scaled down (generator 4x4 stage 64 channels instead of 1024,
            discriminator 10/25/250 instead of 20/50/500), the non-saturating loss with the DCGAN
            optimiser (Adam 2e-4, betas 0.5/0.999; weight decay 5e-4 on kernels; z ~ U[-1, 1]^100).
            Regulariser weights are the thesis' (FR 10, SL 10, CC 10; the pairs SL+FR, FR+CC use
            FR 100 as its MNIST2SVHN runs); PL uses rescaled weights (alpha 3, beta 5, see below).
            The semantic classifier of SL is Table B.1 trained by pygan on both domains' labelled
            training rows (10 epochs); PL's feature network is the shipped digits classifier (no VGG19
            weights here).

            **Metrics** (`pygan eval` / `pygan.evaluate.evaluate_run`, {r["n_eval"]:,} pairs from the
            same z, generators in eval mode):
            * *agreement*: fraction of pairs whose two images get the same digit class — domain A by the
              shipped digits classifier, domain B after undoing the negative (`-x`) or by a digits
              classifier trained on 16 px edges. Ceiling: a real test digit and its own transform;
              chance: two unrelated real digits.
            * *FID per domain*: each generator's samples against that domain's real test rows, in the
              digits classifier's 128-d feature space (the edge domain: the edge classifier's). The
              test split has ~180 rows per domain, so FID is biased upwards; compare across rows, and
              with the floor (real training rows vs the test rows).
            """
        ),
    ]
    for spec, d in r["datasets"].items():
        ref = d["references"]
        names = list(d["runs"])
        dom_b = spec.split("-")[1]
        lines += [
            f"## {spec}",
            "",
            f"| variant | agreement | FID A (digits) | FID B ({dom_b}) | train CPU s |",
            "|---|---:|---:|---:|---:|",
        ]
        for name in names:
            row = d["runs"][name]
            fa, fb = row["fid"]["original"], row["fid"][dom_b]
            lines.append(f"| {name} | {row['agreement']:.3f} | {fa:.1f} | {fb:.1f} | {row['cpu_s']:.0f} |")
        fl = ref["fid_train_vs_test"]
        lines += [
            f"| *real pairs (ceiling)* | {ref['agreement_real_pairs']:.3f} | | | |",
            f"| *unrelated real digits (chance)* | {ref['agreement_unpaired']:.3f} | | | |",
            f"| *real train vs test (FID floor)* | | {fl['original']:.1f} | {fl[dom_b]:.1f} | |",
            "",
            f"![pairs from the same z, one row per variant]({os.path.relpath(ROOT / d['grid'], DOC.parent)})",
            "",
            "Rows, top to bottom: "
            + ", ".join(names)
            + f". Each row: {GRID_PAIRS} pairs (A, B) from one fixed z"
            " per column pair (the same z for every row).",
            "",
        ]
    lines += [
        "## Cost",
        "",
        f"Training CPU time in total: {r['total_train_cpu_s'] / 60:.1f} CPU-minutes for "
        f"{sum(len(d['runs']) for d in r['datasets'].values())} runs; the whole script took "
        f"{r['total_wall_s'] / 60:.0f} min wall on the shared 2-core machine (torch {r['torch']}).",
        "",
        "Commands (one per run) are in `scogan.json` (`command`).",
        "",
    ]
    notes = ROOT / "docs" / "experiments" / "scogan_notes.md"
    if notes.is_file():
        lines += [notes.read_text().strip(), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
