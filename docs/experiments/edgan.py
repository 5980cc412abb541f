"""ED//GAN vs ED+GAN over the adversarial weight lambda (the ED//GAN paper: the Sec. 4.1 sweep of Tables 2-3,
on the pix2pix adaptation of Sec. 4.2.1), scored by NRDS, on blurred -> sharp photo patches.
Regenerates ``docs/experiments/edgan.md``, ``edgan.json`` and ``docs/images/edgan_*.png``::

    python docs/experiments/edgan.py             # trains the 10 runs (reuses finished ones), scores them
    python docs/experiments/edgan.py --fresh     # retrains everything
    python docs/experiments/edgan.py --markdown-only   # re-renders the .md from edgan.json

The .md also shows the training-step benchmarks of the ED//GAN models when
``bench/results/train_step-cpu-edgan*.json`` exist (written by the ``bench/train_step.py`` commands
printed in that section).

What runs (every run through ``pygan.train.train``, i.e. ``pygan train``):

* data ``photo-blur32`` (2,000 train / 256 test 32 px patches of the photographs scikit-learn and
  scikit-image ship; input = the patch blurred with sigma 1.5 px, target = the sharp patch);
* ``edgan-pix2pix-coupled`` (pix2pix = ED+GAN, Eq. 1) with lambda = ``adv_weight`` in
  {1, 1e-1, 1e-2, 1e-3}, and ``edgan-pix2pix`` (ED//GAN) with the same four weights on L_adv(G) (the
  paper's "intentionally added" weight; lambda = 1 is the method itself); U-Nets and PatchGAN at
  width 16 (pix2pix: 64), batch 16, ``--steps`` iterations each, seed 0, one CPU thread; plus one
  seed-1 repeat of each structure (ED+GAN at lambda 1e-2, ED//GAN at lambda 1) as a reference for
  run-to-run noise. ``--variant table1`` runs the same sweep with Table 1's networks
  (``edgan``/``edgan-coupled``) instead;
* scores: PSNR/SSIM of Î on the 256 test pairs (``pygan.evaluate.evaluate_run``'s translation
  metrics), PSNR of I_ED; NRDS over the paper's 8 models jointly (Table 2: i = 8) with real = the 256
  test targets and fakes = each model's 256 test outputs, for several NRDS seeds (a fresh classifier
  each), and the sample std (ddof = 1) of each structure's 4 values; a second NRDS over the 10 runs
  (with the seed repeats) for the noise reference; the distance between the ED//GAN runs' weights.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from pygan.data import load_data  # noqa: E402
from pygan.data.grid import save_grid  # noqa: E402
from pygan.evaluate import evaluate_run  # noqa: E402
from pygan.metrics.image_quality import psnr  # noqa: E402
from pygan.metrics.nrds import nrds  # noqa: E402
from pygan.models.nets import ConvEncoder  # noqa: E402
from pygan.runs import load_checkpoint, load_run, run_paths  # noqa: E402
from pygan.train import train  # noqa: E402

DATA = "photo-blur32"
LAMBDAS = (1.0, 0.1, 0.01, 0.001)
VARIANTS = {
    # name: (ED+GAN model, ED//GAN model, settings, batch, description)
    "pix2pix": (
        "edgan-pix2pix-coupled",
        "edgan-pix2pix",
        ["width=16", "d_width=16", "batch_size=16"],
        16,
        "the pix2pix adaptation (Sec. 4.2.1): U-Net ED, a second U-Net as G, conditional PatchGAN D;"
        " U-Nets and D at width 16 (pix2pix: 64), instance norm, batch 16 (pix2pix: 1)",
    ),
    "table1": (
        "edgan-coupled",
        "edgan",
        ["width=16", "z_dim=50", "batch_size=25"],
        25,
        "Table 1's networks as an image-conditional ED (Enc reads the blurred patch), width 16"
        " (the paper: 64), z of 50, batch 25",
    ),
}
PAPER = {  # Table 2 (with BN) at lambda = 1, 1e-1, 1e-2, 1e-3, and the std column
    "ED+GAN": {"values": [0.1267, 0.1268, 0.1143, 0.1066], "std": 0.0099},
    "ED//GAN": {"values": [0.1336, 0.1300, 0.1300, 0.1320], "std": 0.0017},
}
PAPER_TABLE4 = {"ED+GAN 1:1": 0.2190, "ED+GAN 100:1": 0.2641, "ED+GAN 1000:1": 0.2572, "ED//GAN": 0.2597}
STRUCTURES: tuple = ()
SEED_REPEATS: tuple = ()


def _configure(variant: str) -> None:
    global STRUCTURES, SEED_REPEATS
    coupled, decoupled = VARIANTS[variant][:2]
    STRUCTURES = (("ED+GAN", coupled), ("ED//GAN", decoupled))
    SEED_REPEATS = (("ED+GAN", coupled, 0.01), ("ED//GAN", decoupled, 1.0))


def _label(struct: str, lam: float, seed: int = 0) -> str:
    return f"{struct} {lam:g}" + (f" seed {seed}" if seed else "")


ZERO_INIT = "ED//GAN 1 zero-init"  # ED//GAN at lambda 1 with residual_init=zero (G starts at I_G = 0)


def _plan(work: str) -> list[tuple[str, str, float, int, list[str], str]]:
    """(label, model, lambda, seed, extra settings, run dir): the paper's 8 runs, the seed repeats,
    and ED//GAN with a zero-initialised residual generator."""
    runs = [(_label(s, lam), m, lam, 0, []) for lam in LAMBDAS for s, m in STRUCTURES]
    runs += [(_label(s, lam, 1), m, lam, 1, []) for s, m, lam in SEED_REPEATS]
    runs.append((ZERO_INIT, STRUCTURES[1][1], 1.0, 0, ["residual_init=zero"]))
    out = []
    for label, m, lam, seed, extra in runs:
        suffix = (f"-seed{seed}" if seed else "") + ("-zero" if extra else "")
        out.append((label, m, lam, seed, extra, os.path.join(work, f"{m}-lam{lam:g}{suffix}")))
    return out


def _finished(run: str, steps: int) -> bool:
    p = run_paths(run)["last"]
    return (
        os.path.isfile(p)
        and os.path.isfile(os.path.join(run, "timing.json"))
        and load_checkpoint(p)["step"] == steps
    )


def nrds_classifier(shape: tuple[int, ...]) -> torch.nn.Module:
    """NRDS's D: "the same as D in Table 1" (the paper) — Table 1's D at width 32, without BatchNorm
    (the authors' NRDS code runs its D without BN by default)."""
    return ConvEncoder(shape[0], shape[-1], width=32, out_dim=1, norm="none")


def _std(v: list[float]) -> float:
    return statistics.stdev(v) if len(v) > 1 else 0.0


def _rel_dist(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """||theta_a - theta_b|| / ||theta_b|| over all parameters."""
    pa = torch.cat([p.detach().flatten() for p in a.parameters()])
    pb = torch.cat([p.detach().flatten() for p in b.parameters()])
    return float((pa - pb).norm() / pb.norm())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="pix2pix")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--work", default=os.path.join(ROOT, "runs", "edgan-exp"))
    ap.add_argument("--fresh", action="store_true", help="retrain runs that already finished")
    ap.add_argument("--nrds-seeds", type=int, default=3)
    ap.add_argument("--nrds-epochs", type=int, default=100)
    ap.add_argument("--nrds-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--markdown-only",
        action="store_true",
        help="rewrite edgan.md from edgan.json and the bench results (no training, no scoring)",
    )
    args = ap.parse_args(argv)
    if args.markdown_only:
        with open(os.path.join(HERE, "edgan.json")) as f:
            result = json.load(f)
        with open(os.path.join(HERE, "edgan.md"), "w") as f:
            f.write(markdown(result))
        print("wrote docs/experiments/edgan.md")
        return 0
    _configure(args.variant)
    common = VARIANTS[args.variant][2]
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    img_dir = os.path.join(ROOT, "docs", "images")
    os.makedirs(img_dir, exist_ok=True)
    t_start = time.perf_counter()

    # ---- training ------------------------------------------------------------------------------
    runs: dict[str, dict] = {}
    for label, model, lam, seed, extra, run in _plan(args.work):
        info: dict = {"model": model, "lambda": lam, "seed": seed, "extra_settings": extra}
        if args.fresh or not _finished(run, args.steps):
            if os.path.exists(run):
                shutil.rmtree(run)
            print(f"training {label} -> {run}", flush=True)
            t0, c0 = time.perf_counter(), time.process_time()
            train(
                model,
                DATA,
                run,
                args.steps,
                overrides=[*common, f"adv_weight={lam}", *extra],
                seed=seed,
                log_every=50,
                sample_every=0,
                ckpt_every=0,
                n_samples=16,
                progress=False,
                tensorboard=False,
            )
            timing = {
                "train_wall_s": round(time.perf_counter() - t0, 1),
                "train_cpu_s": round(time.process_time() - c0, 1),
            }
            with open(os.path.join(run, "timing.json"), "w") as f:
                json.dump(timing, f)
        with open(os.path.join(run, "timing.json")) as f:
            info.update(json.load(f))
        with open(run_paths(run)["metrics"]) as f:
            logged = [json.loads(line) for line in f]
        last = [r for r in logged if "l1" in r][-5:]
        info["final_losses"] = {
            k: round(statistics.fmean(r[k] for r in last), 4)
            for k in last[0]
            if k not in ("step", "time", "img_per_s")
        }
        info["run_dir"] = run
        runs[label] = info

    # ---- outputs on the test pairs -------------------------------------------------------------
    test = load_data(DATA, "test")
    rows = test.rows(torch.arange(len(test)))
    inputs, targets = rows["x"], rows["target"]
    outputs: dict[str, torch.Tensor] = {}
    parts: dict[str, tuple[torch.Tensor, ...]] = {}
    models = {}
    for label, info in runs.items():
        model, _, _ = load_run(info["run_dir"])
        models[label] = model
        i_ed, i_g, out = model.decompose(inputs)
        outputs[label], parts[label] = out, (i_ed, i_g, out)
        q = evaluate_run(info["run_dir"], metrics=["translation"])["metrics"]["translation"]
        info["psnr"] = round(q["psnr"], 3)
        info["ssim"] = round(q["ssim"], 4)
        info["lpips_style"] = round(q["lpips_style"], 4)
        info["psnr_ed"] = round(float(psnr(i_ed, targets)), 3)
        info["residual_mean_abs"] = round(float(i_g.abs().mean()), 4)
    baseline = {"psnr_blurred_input": round(float(psnr(inputs, targets)), 3)}

    # How far apart are the ED//GAN runs that differ only in lambda? (Adam is nearly scale-invariant.)
    ref = models[_label("ED//GAN", 1.0)]
    weight_dist = {}
    for lam in LAMBDAS[1:]:
        m = models[_label("ED//GAN", lam)]
        weight_dist[f"{lam:g}"] = {
            net: round(_rel_dist(getattr(m, net), getattr(ref, net)), 6) for net, _ in ref.named_children()
        }
    seed_m = models[_label("ED//GAN", 1.0, 1)]
    weight_dist["seed 1 (lambda 1)"] = {
        net: round(_rel_dist(getattr(seed_m, net), getattr(ref, net)), 6) for net, _ in ref.named_children()
    }

    # ---- NRDS ----------------------------------------------------------------------------------
    main_labels = [_label(s, lam) for lam in LAMBDAS for s, _ in STRUCTURES]

    def run_nrds(labels, seed, plot=None):
        t0 = time.perf_counter()
        res = nrds(
            targets,
            {k: outputs[k] for k in labels},
            epochs=args.nrds_epochs,
            batch_size=args.nrds_batch,
            classifier=nrds_classifier,
            seed=seed,
            plot=plot,
        )
        print(f"NRDS seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in res.scores.items()), flush=True)
        return {
            "seed": seed,
            "scores": res.scores,
            "areas": res.areas,
            "final_real": res.real_curve[-1],
            "wall_s": round(time.perf_counter() - t0, 1),
        }

    nrds_main = [
        run_nrds(main_labels, s, os.path.join(img_dir, "edgan_nrds.png") if s == 0 else None)
        for s in range(args.nrds_seeds)
    ]
    nrds_noise = run_nrds(list(runs), 100)
    for label in main_labels:
        vals = [r["scores"][label] for r in nrds_main]
        runs[label]["nrds"] = round(statistics.fmean(vals), 4)
        runs[label]["nrds_seed_std"] = round(_std(vals), 4)
    summary = {}
    for struct, _ in STRUCTURES:
        labels = [_label(struct, lam) for lam in LAMBDAS]
        per_seed = [_std([r["scores"][k] for k in labels]) for r in nrds_main]
        repeat = next(_label(s, lam, 1) for s, _, lam in SEED_REPEATS if s == struct)
        twin = next(_label(s, lam) for s, _, lam in SEED_REPEATS if s == struct)
        summary[struct] = {
            "nrds_std_over_lambda": round(statistics.fmean(per_seed), 4),
            "nrds_std_over_lambda_per_nrds_seed": [round(v, 4) for v in per_seed],
            "nrds_range": [
                round(min(runs[k]["nrds"] for k in labels), 4),
                round(max(runs[k]["nrds"] for k in labels), 4),
            ],
            "psnr_range": [min(runs[k]["psnr"] for k in labels), max(runs[k]["psnr"] for k in labels)],
            "noise_pool": {
                "runs": [twin, repeat],
                "nrds": [round(nrds_noise["scores"][twin], 4), round(nrds_noise["scores"][repeat], 4)],
                "lambda_std_in_pool": round(_std([nrds_noise["scores"][k] for k in labels]), 4),
            },
        }

    pool = nrds_noise["scores"]
    ranked = sorted(pool, key=lambda k: -pool[k])
    summary["zero_init"] = {
        "nrds_in_pool": round(pool[ZERO_INIT], 4),
        "default_init_in_pool": round(pool[_label("ED//GAN", 1.0)], 4),
        "rank_in_pool": ranked.index(ZERO_INIT) + 1,
        "pool_size": len(pool),
        "best_in_pool": ranked[0],
        "best_ed_gan_in_pool": max((k for k in pool if k.startswith("ED+GAN")), key=lambda k: pool[k]),
    }

    # ---- pictures ------------------------------------------------------------------------------
    idx = torch.linspace(0, len(inputs) - 1, 8).round().long()
    for label, name in ((_label("ED//GAN", 1.0), "edgan_triples.png"), (ZERO_INIT, "edgan_triples_zero.png")):
        i_ed, i_g, out = (p[idx] for p in parts[label])
        tiles = torch.stack([inputs[idx], i_ed, i_g, out, targets[idx]], 1).flatten(0, 1)
        save_grid(tiles, os.path.join(img_dir, name), nrow=5, scale=3)
    cols = (
        [inputs[idx], targets[idx]]
        + [outputs[_label(s, lam)][idx] for s, _ in STRUCTURES for lam in LAMBDAS]
        + [outputs[ZERO_INIT][idx]]
    )
    save_grid(
        torch.stack(cols, 1).flatten(0, 1), os.path.join(img_dir, "edgan_lambda.png"), nrow=len(cols), scale=3
    )

    for info in runs.values():
        info["run_dir"] = os.path.relpath(info["run_dir"], ROOT)
    result = {
        "data": DATA,
        "steps": args.steps,
        "variant": args.variant,
        "variant_description": VARIANTS[args.variant][4],
        "batch_size": VARIANTS[args.variant][3],
        "config": common,
        "lambdas": list(LAMBDAS),
        "runs": runs,
        "baseline": baseline,
        "weight_distance_to_edgan_lambda1": weight_dist,
        "nrds": {
            "epochs": args.nrds_epochs,
            "batch_size": args.nrds_batch,
            "classifier": "Table 1 D (ConvEncoder width 32, no BN)",
            "num_real": len(targets),
            "num_fake_per_model": len(inputs),
            "main": nrds_main,
            "noise_pool": nrds_noise,
        },
        "summary": summary,
        "paper_table2": PAPER,
        "paper_table4": PAPER_TABLE4,
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": args.threads},
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "total_wall_s_this_invocation": round(time.perf_counter() - t_start, 1),
    }
    with open(os.path.join(HERE, "edgan.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(HERE, "edgan.md"), "w") as f:
        f.write(markdown(result))
    print("wrote docs/experiments/edgan.md, edgan.json, docs/images/edgan_{triples,lambda,nrds}.png")
    return 0


NET_NAMES = {
    "encoder": "Enc",
    "decoder": "Dec (pix2pix: the ED U-Net)",
    "generator": "G",
    "discriminator": "D",
}


def markdown(r: dict) -> str:
    runs, summ, lams = r["runs"], r["summary"], r["lambdas"]
    nr = r["nrds"]
    epochs = r["steps"] * r["batch_size"] / 2000
    out = [
        "# ED//GAN vs ED+GAN over the adversarial weight (ED//GAN paper, Sec. 4.1 sweep)",
        "",
        "Generated by `python docs/experiments/edgan.py` (do not edit by hand; numbers in `edgan.json`).",
        "",
        "## Setup",
        "",
        f"- Data: `{r['data']}`: blurred -> sharp 32 px photo patches (2,000 train / 256 test; the input is",
        "  the patch blurred with sigma 1.5 px). The paper sweeps lambda on 128 px UTKFace autoencoding",
        "  (Sec. 4.1) and compares pix2pix weights on CMP Facade (Sec. 4.2.1).",
        f"- Networks: {r['variant_description']}.",
        "- ED+GAN: one network (Dec = G), `L1 + lambda L_adv` (Eq. 1). ED//GAN: L1 into the ED only, the",
        "  adversarial loss into G only, Î = I_ED + I_G; lambda scales L_adv(G), the weight the paper's",
        '  sweep "intentionally" adds (lambda = 1 is the method).',
        f"- Training: `{' '.join(r['config'])}` (the models' `--preset small`), Adam 2e-4 / beta1 0.5, "
        f"{r['steps']} iterations each",
        f"  ({epochs:.0f} epochs; the paper: 200), seed 0, one CPU thread. Two more runs repeat ED+GAN at",
        "  lambda 0.01 and ED//GAN at lambda 1 with seed 1, as a measure of run-to-run noise; one more runs",
        "  ED//GAN at lambda 1 with G's last layer initialised to zero (`residual_init=zero`).",
        f"- NRDS (`pygan.metrics.nrds`): one classifier for the paper's 8 models (i = 8), real = the"
        f" {nr['num_real']}",
        f"  test targets, fakes = each model's {nr['num_fake_per_model']} test outputs Î; D ="
        f" {nr['classifier']},",
        f"  {nr['epochs']} epochs, batch {nr['batch_size']}, Adam 2e-4 / 0.5, trapezoid areas; repeated for",
        f'  {len(nr["main"])} classifier seeds (mean +- std). "std over lambda" is the sample std (ddof = 1)',
        "  of a structure's 4 values, like the paper's column, averaged over the NRDS seeds.",
        "",
        "## NRDS (higher = harder to tell from real; one seed's 8 values sum to 1)",
        "",
        "| structure | " + " | ".join(f"lambda {lam:g}" for lam in lams) + " | std over lambda |",
        "|---|" + "---|" * (len(lams) + 1),
    ]
    for struct in ("ED+GAN", "ED//GAN"):
        vals = " | ".join(
            f"{runs[_label(struct, lam)]['nrds']:.4f} +- {runs[_label(struct, lam)]['nrds_seed_std']:.4f}"
            for lam in lams
        )
        out.append(f"| {struct} (here) | {vals} | **{summ[struct]['nrds_std_over_lambda']:.4f}** |")
    for struct in ("ED+GAN", "ED//GAN"):
        p = r["paper_table2"][struct]
        vals = " | ".join(f"{v:.4f}" for v in p["values"])
        out.append(f"| {struct} (paper, Table 2, UTKFace) | {vals} | {p['std']:.4f} |")
    t4 = r["paper_table4"]
    out += [
        "",
        "Paper, Table 4 (pix2pix on CMP Facade, 4 models): "
        + ", ".join(f"{k} {v:.4f}" for k, v in t4.items())
        + " (recon:adv 1:1, 100:1, 1000:1 are lambda 1, 0.01, 0.001).",
        "",
        "std over lambda per NRDS seed: "
        + "; ".join(f"{s} {summ[s]['nrds_std_over_lambda_per_nrds_seed']}" for s in ("ED+GAN", "ED//GAN"))
        + ".",
        "",
        f"A second NRDS over all {summ['zero_init']['pool_size']} runs (one classifier seed; values sum to 1"
        f" over {summ['zero_init']['pool_size']}): run-to-run noise from the seed-1 repeats, and ED//GAN"
        " with a zero-initialised G (`residual_init=zero`):",
        "",
        "| run | NRDS of the seed-0 run | NRDS of its seed-1 repeat | std over lambda in this pool |",
        "|---|---|---|---|",
    ]
    for struct in ("ED+GAN", "ED//GAN"):
        n = summ[struct]["noise_pool"]
        out.append(
            f"| {n['runs'][0]} | {n['nrds'][0]:.4f} | {n['nrds'][1]:.4f} | {n['lambda_std_in_pool']:.4f} |"
        )
    z = summ["zero_init"]
    out += [
        "",
        f"In that pool: ED//GAN lambda 1 with zero-initialised G {z['nrds_in_pool']:.4f} (rank"
        f" {z['rank_in_pool']} of {z['pool_size']}), with the default init {z['default_init_in_pool']:.4f};"
        f" best run: {z['best_in_pool']}; best ED+GAN: {z['best_ed_gan_in_pool']}"
        f" ({r['nrds']['noise_pool']['scores'][z['best_ed_gan_in_pool']]:.4f}).",
    ]
    out += [
        "",
        "## Quality on the 256 test pairs",
        "",
        f"Blurred input against the target: PSNR {r['baseline']['psnr_blurred_input']:.2f} dB.",
        "",
        "| run | PSNR Î | SSIM Î | LPIPS-style Î | PSNR I_ED | mean abs I_G | l1 / loss_d / loss_g"
        " (last 250 steps) | train wall / CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, i in runs.items():
        fl = i["final_losses"]
        out.append(
            f"| {label} | {i['psnr']:.2f} | {i['ssim']:.4f} | {i['lpips_style']:.4f} | {i['psnr_ed']:.2f} | "
            f"{i['residual_mean_abs']:.4f} | {fl['l1']:.3f} / {fl['loss_d']:.3f} / {fl['loss_g']:.3f} | "
            f"{i['train_wall_s']:.0f} / {i['train_cpu_s']:.0f} |"
        )
    wd = r["weight_distance_to_edgan_lambda1"]
    nets = list(next(iter(wd.values())))
    out += [
        "",
        "PSNR in dB. For ED+GAN, I_ED is Î (no residual branch: mean abs I_G = 0).",
        "",
        "Relative weight distance ||theta - theta_ref|| / ||theta_ref|| to the ED//GAN lambda = 1 run, after"
        " training:",
        "",
        "| ED//GAN run | " + " | ".join(NET_NAMES.get(n, n) for n in nets) + " |",
        "|---|" + "---|" * len(nets),
    ]
    for k, d in wd.items():
        name = k if k.startswith("seed") else f"lambda {k}"
        out.append(f"| {name} | " + " | ".join(f"{d[n]:.2e}" for n in nets) + " |")
    out += [
        "",
        "## Pictures",
        "",
        "ED//GAN (lambda = 1) on 8 test patches; columns: input (blurred), I_ED, I_G (the residual as it is:",
        "mid-gray = 0), Î = I_ED + I_G, target:",
        "",
        "![ED//GAN triples](../images/edgan_triples.png)",
        "",
        "The same with the zero-initialised G (`residual_init=zero`):",
        "",
        "![ED//GAN triples, zero-initialised G](../images/edgan_triples_zero.png)",
        "",
        "Outputs Î per run; columns: input, target, ED+GAN at lambda = 1, 0.1, 0.01, 0.001, ED//GAN at the",
        "same lambdas, ED//GAN with the zero-initialised G:",
        "",
        "![lambda sweep](../images/edgan_lambda.png)",
        "",
        "NRDS curves (classifier seed 0): mean output on each model's fakes after each epoch:",
        "",
        "![NRDS curves](../images/edgan_nrds.png)",
        "",
        *bench_section(),
        "## Reading",
        "",
        *reading(r),
        "",
        f"Machine: {r['machine']['platform']}, torch {r['machine']['torch']},"
        f" {r['machine']['threads']} thread"
        " per run, shared with other jobs (load average at the end: "
        + ", ".join(f"{v:.1f}" for v in r["load_average_at_end"])
        + ").",
    ]
    return "\n".join(out) + "\n"


BENCH_DIR = os.path.join(ROOT, "bench", "results")
BENCHES = (  # (result file, --models, extra flags, what it is for)
    (
        "train_step-cpu-edgan.json",
        "edgan,edgan-coupled,edgan-pix2pix,edgan-pix2pix-coupled,edgan-caae,edgan-caae-coupled",
        "",
        "every ED//GAN model and baseline, eager and compiled",
    ),
    (
        "train_step-cpu-edgan-eager.json",
        "edgan,edgan-pix2pix,edgan-caae,edgan-coupled",
        " --no-compile",
        "more repetitions of the eager steps: the three decoupled models and one coupled control",
    ),
)


def bench_section() -> list[str]:
    """The training-step tables from ``bench/train_step.py`` (fused ops vs ``PYGAN_BACKEND=reference``,
    eager vs compile), for the result files that exist."""
    out: list[str] = []
    for name, models, flags, what in BENCHES:
        path = os.path.join(BENCH_DIR, name)
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            b = json.load(f)
        rows = b["results"]
        ref = {(x["model"], x["mode"]): x["ms_median"] for x in rows if x["backend"] == "reference"}
        if not out:
            out = [
                "## Training-step time: fused ops vs reference",
                "",
                "Each model's default data and paper config; one CPU thread; a machine shared with other"
                " jobs, so compare the rows of one model, which were timed interleaved (one step of each"
                " variant in turn). The decoupled models run `residual_add` once per step (Î = I_ED +"
                " I_G); the coupled baselines call no pygan op, so their fused and reference rows run the"
                " same code and show the timing noise.",
                "",
            ]
        out += [
            f"{what[0].upper()}{what[1:]}: `python bench/train_step.py --models {models} --reps {b['reps']}"
            f" --warmup {b['warmup']} --threads 1{flags} --out bench/results/{name}` (torch {b['torch']},"
            f" load average {b['load_avg_1min']:.1f} at the end):",
            "",
            "| model | data | variant | ms/step (median) | p20..p80 | img/s | reference / this (same mode) |",
            "|---|---|---|---|---|---|---|",
        ]
        for x in rows:
            rel = ref.get((x["model"], x["mode"]), float("nan")) / x["ms_median"]
            out.append(
                f"| {x['model']} | {x['data']} | {x['variant']} | {x['ms_median']:.1f} |"
                f" {x['ms_p20']:.1f}..{x['ms_p80']:.1f} | {x['img_per_s']:.1f} | {rel:.2f} |"
            )
        refrow = {(x["model"], x["mode"]): x for x in rows if x["backend"] == "reference"}
        fused = [(x, refrow[(x["model"], x["mode"])]) for x in rows if x["backend"] == "fused"]
        dec = [(x, r) for x, r in fused if "coupled" not in x["model"]]
        ctl = [r["ms_median"] / x["ms_median"] for x, r in fused if "coupled" in x["model"]]
        if dec:
            ratios = [r["ms_median"] / x["ms_median"] for x, r in dec]
            inside = [r["ms_p20"] <= x["ms_median"] <= r["ms_p80"] for x, r in dec]
            out += [
                "",
                f"reference / fused time for the decoupled models (which run the fused `residual_add`):"
                f" {min(ratios):.2f}..{max(ratios):.2f}"
                + (f"; coupled controls (identical code): {min(ctl):.2f}..{max(ctl):.2f}" if ctl else "")
                + f". The fused median lies inside the reference's p20..p80 band in {sum(inside)} of"
                f" {len(inside)} decoupled rows.",
            ]
        out.append("")
    return out


def _monotone(v: list[float]) -> str:
    """ "rises"/"falls" when ``v`` (over lambda = 1 .. 1e-3) is strictly monotone, else ""."""
    if all(a < b for a, b in itertools.pairwise(v)):
        return "rises"
    if all(a > b for a, b in itertools.pairwise(v)):
        return "falls"
    return ""


def reading(r: dict) -> list[str]:
    """Statements computed from the numbers (so they stay true when the experiment is re-run)."""
    runs, summ, lams = r["runs"], r["summary"], r["lambdas"]
    cs, ds = summ["ED+GAN"]["nrds_std_over_lambda"], summ["ED//GAN"]["nrds_std_over_lambda"]
    c_lo, c_hi = summ["ED+GAN"]["nrds_range"]
    d_lo, d_hi = summ["ED//GAN"]["nrds_range"]
    c_vals = [runs[_label("ED+GAN", lam)]["nrds"] for lam in lams]
    d_vals = [runs[_label("ED//GAN", lam)]["nrds"] for lam in lams]
    c_rel, d_rel = cs / statistics.fmean(c_vals), ds / statistics.fmean(d_vals)
    best = max((k for k in runs if "nrds" in runs[k]), key=lambda k: runs[k]["nrds"])
    n_c, n_d = summ["ED+GAN"]["noise_pool"], summ["ED//GAN"]["noise_pool"]
    wd = r["weight_distance_to_edgan_lambda1"]
    g_max = max(wd[f"{lam:g}"]["generator"] for lam in lams[1:])
    seed_g = wd["seed 1 (lambda 1)"]["generator"]
    ed_nets = [n for n in ("encoder", "decoder") if n in wd[f"{lams[1]:g}"]]
    ed_same = all(wd[f"{lam:g}"][n] == 0 for lam in lams[1:] for n in ed_nets)
    above = sum(d > c for c, d in zip(c_vals, d_vals))
    ratio = f"{cs / ds:.1f}x smaller" if ds > 0 else "zero to four digits"
    psnr_c, psnr_d = summ["ED+GAN"]["psnr_range"], summ["ED//GAN"]["psnr_range"]
    psnr_in = r["baseline"]["psnr_blurred_input"]
    best_psnr = max(max(i["psnr"], i["psnr_ed"]) for i in runs.values())
    z = summ["zero_init"]
    pool_n = z["pool_size"]
    one = runs[_label("ED//GAN", 1.0)]
    res_abs = [runs[_label("ED//GAN", lam)]["residual_mean_abs"] for lam in lams]
    trends = [
        f"{what} {t} as lambda goes from 1 to {lams[-1]:g}"
        for what, t in (
            ("its NRDS", _monotone(d_vals)),
            ("mean |I_G|", _monotone(res_abs)),
            ("PSNR of Î", _monotone([runs[_label("ED//GAN", lam)]["psnr"] for lam in lams])),
        )
        if t
    ]

    def noise(n: dict) -> str:
        shift = abs(n["nrds"][1] - n["nrds"][0])
        cmp = "smaller than" if shift < n["lambda_std_in_pool"] else "not smaller than"
        return (
            f"{n['runs'][0]} moved {n['nrds'][0]:.4f} -> {n['nrds'][1]:.4f} (shift {shift:.4f}, {cmp} that"
            f" structure's std over lambda in the pool, {n['lambda_std_in_pool']:.4f})"
        )

    low = runs[_label("ED+GAN", lams[-1])]

    return [
        f"- Spread over lambda: ED+GAN's NRDS ranges {c_lo:.4f}..{c_hi:.4f} (std {cs:.4f}), ED//GAN's"
        f" {d_lo:.4f}..{d_hi:.4f} (std {ds:.4f}): ED//GAN's spread is {ratio} (the paper: 0.0099 vs"
        f" 0.0017, 5.8x). Relative to each structure's mean NRDS the spreads are {c_rel:.2f} (ED+GAN) and"
        f" {d_rel:.2f} (ED//GAN).",
        f"- Level: ED//GAN's NRDS is above ED+GAN's at {above} of the 4 lambdas; the highest NRDS is {best}."
        " (The paper has ED//GAN above ED+GAN at every lambda in Table 2, and second behind the tuned"
        " 100:1 pix2pix in Table 4.)"
        + (
            f" ED+GAN's NRDS {_monotone(c_vals)} as lambda goes from 1 to {lams[-1]:g}, i.e. towards the"
            " plain L1 model."
            if _monotone(c_vals)
            else ""
        )
        + (
            " So the paper's robustness claim (a smaller spread over lambda) holds here, in part by"
            " construction (lambda cannot reach the ED), but its quality claim (ED//GAN at or near the top)"
            f" does not: ED+GAN {lams[-1]:g}, whose output is about as close to the target as ED//GAN's"
            f" I_ED (PSNR {low['psnr']:.2f} vs {one['psnr_ed']:.2f} dB), scores {low['nrds']:.4f}, ED//GAN's"
            f" Î = I_ED + I_G at most {d_hi:.4f}."
            if ds < cs and above <= 1
            else ""
        ),
        "- The ED//GAN runs across lambda: "
        + (
            "the ED never sees the adversarial loss, so it is bit-identical across lambda (same seed and"
            " batches), and only G and D differ; "
            if ed_same
            else ""
        )
        + f"G's weights differ by up to {g_max:.1e} (relative) between lambdas, against {seed_g:.1e}"
        " between two seeds at the same lambda"
        + ("; " + ", ".join(trends) if trends else "")
        + ". lambda multiplies only G's loss and G has its own Adam optimizer, which divides by"
        " sqrt(v) + eps, so a constant factor matters only where lambda x |gradient| comes near eps"
        " (1e-8) or through the adversarial dynamics; which of the two drives the difference here was"
        " not measured.",
        f"- Run-to-run noise (the {pool_n}-run pool): retraining with seed 1, "
        + noise(n_c)
        + "; "
        + noise(n_d)
        + ". The paper reports one run per setting.",
        f"- PSNR of Î: ED+GAN {psnr_c[0]:.2f}..{psnr_c[1]:.2f} dB,"
        f" ED//GAN {psnr_d[0]:.2f}..{psnr_d[1]:.2f} dB over lambda;"
        f" ED//GAN's I_ED alone {one['psnr_ed']:.2f} dB."
        + (
            f" Every output is below the blurred input itself ({psnr_in:.2f} dB): after"
            f" {r['steps']} iterations no model has learned to undo the blur better than the identity."
            if best_psnr < psnr_in
            else f" The blurred input itself: {psnr_in:.2f} dB."
        )
        + f" ED//GAN's residual (mean |I_G| {one['residual_mean_abs']:.3f} at lambda 1) lowers PSNR by"
        f" {one['psnr_ed'] - one['psnr']:.1f} dB; in the pictures committed with this file it is a"
        " high-frequency, grid-like pattern rather than edges at the image's structure (the paper notes"
        ' that the residual "sometimes creates artifacts"), and D separates it from real images: D(Î)'
        f" {one['final_losses']['d_fake']:.2f} vs D(real) {one['final_losses']['d_real']:.2f} (means over"
        " the last 250 training steps).",
        f"- G's initialisation (the paper is silent): with the DCGAN init G adds a residual of mean |I_G| ="
        f" {one['residual_mean_abs']:.3f} (PSNR I_ED {one['psnr_ed']:.2f} -> Î {one['psnr']:.2f} dB);"
        f" started from I_G = 0 it adds {runs[ZERO_INIT]['residual_mean_abs']:.3f}"
        f" ({runs[ZERO_INIT]['psnr_ed']:.2f} -> {runs[ZERO_INIT]['psnr']:.2f} dB), and its NRDS in the"
        f" {pool_n}-run pool is {z['nrds_in_pool']:.4f} against {z['default_init_in_pool']:.4f}"
        f" (rank {z['rank_in_pool']} of {pool_n}; best: {z['best_in_pool']},"
        f" {r['nrds']['noise_pool']['scores'][z['best_in_pool']]:.4f}).",
        f"- Scale caveats: 32 px patches instead of 128/256 px images, width 16 instead of 64, {r['steps']}"
        f" iterations ({r['steps'] * r['batch_size'] / 2000:.0f} epochs) instead of 200 epochs, batch"
        f" {r['batch_size']} instead of pix2pix's 1, a 256-image test set for NRDS; one machine shared"
        " with other jobs. Longer training may well change the level comparison; it was not run here.",
    ]


if __name__ == "__main__":
    sys.exit(main())
