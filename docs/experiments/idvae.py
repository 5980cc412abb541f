"""Regenerates ``docs/experiments/idvae.md`` (+ ``idvae.json`` and ``docs/images/idvae_*.png``): IDVAE
vs VAE vs VAE-GAN on the embedded digits (the IDVAE paper's comparison at CPU scale), and C-IDVAE's
per-class samples scored by the digits classifier.

    python docs/experiments/idvae.py                 # train every run (pygan train), evaluate, write
    python docs/experiments/idvae.py --reuse         # evaluate runs that are already trained
    python docs/experiments/idvae.py --steps 200 --seeds 0 --out /tmp/idvae-smoke   # a quick smoke run

Every run is ``python -m pygan train MODEL --data digits16 --steps N --set width=32 --set z_dim=32
--threads 1 --seed S`` (one process at a time); the metrics come from :mod:`pygan.metrics`: Fréchet
distance in the digits classifier's feature space (``fid(..., extractor="digits")``), the test-split
reconstruction error of ``model.reconstruct`` (``mse``, ``psnr``), and the digits classifier's labels
(``load_digits_classifier().predict``) for the class histogram of unconditional samples and the class
agreement of C-IDVAE's conditional samples.
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
from pygan.data.grid import save_grid  # noqa: E402
from pygan.metrics import fid, load_digits_classifier, mse, psnr  # noqa: E402
from pygan.runs import load_checkpoint, load_run, run_paths  # noqa: E402

DATA = "digits16"
COMMON = ["width=32", "z_dim=32"]
# (label, model, extra overrides, short name for files)
RUNS = [
    ("VAE", "vae", [], "vae"),
    ("VAE-GAN (Larsen: feature-space encoder loss)", "vae-gan", [], "vaegan"),
    ("VAE-GAN (pixel encoder loss = IDVAE without sharing)", "vae-gan", ["encoder_loss=pixel"], "vaegan-pix"),
    ("IDVAE", "idvae", [], "idvae"),
    ("IDVAE(R) (gamma = 1)", "idvae-r", [], "idvae-r"),
    ("C-IDVAE (conditional)", "cidvae", [], "cidvae"),
]
N_SAMPLES = 1000
SAMPLE_SEEDS = (0, 1, 2)


def _train(model: str, extra: list[str], out: str, steps: int, seed: int, reuse: bool) -> float | None:
    last = run_paths(out)["last"]
    if reuse and os.path.isfile(last) and load_checkpoint(last)["step"] >= steps:
        print(f"  reuse {out}", flush=True)
        return None
    cmd = [sys.executable, "-m", "pygan", "train", model, "--data", DATA, "--steps", str(steps)]
    cmd += ["--out", out, "--seed", str(seed), "--threads", "1", "--no-progress", "--no-tensorboard"]
    cmd += ["--log-every", "50", "--sample-every", "0", "--ckpt-every", "0"]
    for kv in COMMON + extra:
        cmd += ["--set", kv]
    if os.path.isdir(out):
        import shutil

        shutil.rmtree(out)
    print("  $ " + " ".join(cmd[1:]), flush=True)
    t = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.time() - t


def _ms(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


@torch.no_grad()
def _evaluate(run: str, train_x, test, clf) -> dict:
    model, _, _ = load_run(run)
    out: dict = {"steps": int(getattr(model, "trained_steps", 0))}
    fids, fids_train, tvs, covered = [], [], [], []
    for s in SAMPLE_SEEDS:
        g = torch.Generator().manual_seed(s)
        x = model.sample(N_SAMPLES, g)  # conditional: classes 0..9 in turn
        fids.append(fid(test.x, x, extractor="digits"))
        fids_train.append(fid(train_x, x, extractor="digits"))
        hist = torch.bincount(clf.predict(x), minlength=10).double() / N_SAMPLES
        tvs.append(float(0.5 * (hist - 0.1).abs().sum()))
        covered.append(int((hist >= 0.02).sum()))
    out["fid_test"] = _ms(fids)
    out["fid_train"] = _ms(fids_train)
    out["class_tv_from_uniform"] = _ms(tvs)
    out["classes_with_2pct"] = covered
    rec = model.reconstruct(test.x, test.y if model.conditional else None)
    out["recon_mse"] = float(mse(rec, test.x))
    out["recon_sq_per_image"] = float(((rec - test.x) ** 2).flatten(1).sum(1).mean())
    out["recon_psnr"] = float(psnr(rec, test.x, data_range=2.0))
    if model.conditional:
        out["recon_mse_labels_inferred"] = float(mse(model.reconstruct(test.x), test.x))
        agree, per_class = [], []
        for s in SAMPLE_SEEDS:
            x = model.sample_per_class(100, torch.Generator().manual_seed(s))
            want = torch.arange(10).repeat_interleave(100)
            ok = clf.predict(x) == want
            agree.append(float(ok.double().mean()))
            per_class.append(ok.view(10, 100).double().mean(1))
        out["class_agreement"] = _ms(agree)
        out["class_agreement_per_class"] = torch.stack(per_class).mean(0).tolist()
    lines = [json.loads(s) for s in open(run_paths(run)["metrics"])]
    last = [d for d in lines if "time" in d]
    out["train_seconds"] = last[-1]["time"] if last else None
    out["final_losses"] = {k: v for k, v in last[-1].items() if k not in ("step", "time", "img_per_s")}
    return out


def _pictures(runs_dir: str, seed: int, test, img_dir: str) -> dict:
    os.makedirs(img_dir, exist_ok=True)
    rows_s, rows_r = [], []
    pick = torch.linspace(0, len(test.x) - 1, 12).round().long()
    reals = test.x[pick]
    rows_r.append(reals)
    names = []
    for label, _model, _, short in RUNS:
        model, _, _ = load_run(os.path.join(runs_dir, f"{short}-s{seed}"))
        names.append(label)
        if not model.conditional:
            rows_s.append(model.sample(12, torch.Generator().manual_seed(123)))
        rows_r.append(model.reconstruct(reals, test.y[pick] if model.conditional else None))
        if model.conditional:
            grid = model.sample_per_class(10, torch.Generator().manual_seed(123))
            save_grid(grid, os.path.join(img_dir, "idvae_cidvae_per_class.png"), nrow=10, scale=2)
    save_grid(torch.cat(rows_s), os.path.join(img_dir, "idvae_samples.png"), nrow=12, scale=2)
    save_grid(torch.cat(rows_r), os.path.join(img_dir, "idvae_reconstructions.png"), nrow=12, scale=2)
    return {
        "samples_rows": [n for n, (_, m, _, _) in zip(names, RUNS) if m != "cidvae"],
        "reconstruction_rows": ["test images", *names],
    }


def _fmt(ms: dict, digits: int = 1) -> str:
    return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


BENCH = os.path.join(ROOT, "bench", "results", "train_step-cpu-idvae.json")
BENCH_CMD = (
    "python bench/train_step.py --models vae,idvae,idvae-r,cidvae,vae-gan --threads 1 --reps 20 "
    "--out bench/results/train_step-cpu-idvae.json"
)


def _performance() -> list[str]:
    """The training-step table from ``bench/train_step.py`` (a separate command; read if present)."""
    if not os.path.isfile(BENCH):
        return ["", f"(No training-step benchmark at `{os.path.relpath(BENCH, ROOT)}`; run `{BENCH_CMD}`.)"]
    with open(BENCH) as f:
        b = json.load(f)
    lines = [
        "",
        "## Performance: a training step, fused ops vs `PYGAN_BACKEND=reference`",
        "",
        f"`{BENCH_CMD}` (default configs: width 64, z 128, batch 64, digits16; {b['reps']} interleaved "
        f"timed steps per variant after {b['warmup']} warm-up steps; {b['threads']} thread; load average "
        f"{b['load_avg_1min']:.1f} when it ended; {b['time']}):",
        "",
        "| model | variant | ms/step (median) | p20-p80 | img/s | reference/eager ÷ this |",
        "|---|---|---:|---:|---:|---:|",
    ]
    base = {r["model"]: r["ms_median"] for r in b["results"] if r["variant"] == "reference/eager"}
    for r in b["results"]:
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['ms_median']:.1f} | {r['ms_p20']:.0f}-{r['ms_p80']:.0f} | "
            f"{r['img_per_s']:.1f} | {base[r['model']] / r['ms_median']:.2f}x |"
        )
    lines += [
        "",
        "The only pygan op these models call is `feature_regularizer` (p=2, sum, one layer, constant "
        "target) for the pixel loss `L_recons` and the feature loss `L_recons^dis`: two or three calls on "
        "16k-131k elements per step, in a step dominated by the convolutions. The op alone at these "
        "shapes (one thread, median of 400 interleaved calls per variant, measured when this page was "
        "generated):",
        "",
        "| shape (IDVAE's use) | forward: fused C++ µs | reference µs | forward + backward: fused C++ µs "
        "| reference µs | reference ÷ fused (fwd + bwd) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    extra_us = 0.0  # fused minus reference, forward + backward, over one IDVAE step's two calls
    for shape, what, per_step in (
        ((64, 1, 16, 16), "pixels, L_recons", True),
        ((64, 2048), "layer l at width 64, L_recons^dis", True),
        ((64, 65536), "a large layer, for scale", False),
    ):
        t = _op_timing(shape)
        lines.append(
            f"| {list(shape)} ({what}) | {t['cpp_fwd']:.0f} | {t['reference_fwd']:.0f} | {t['cpp']:.0f} | "
            f"{t['reference']:.0f} | {t['reference'] / t['cpp']:.2f}x |"
        )
        if per_step:
            extra_us += t["cpp"] - t["reference"]
    idvae_ms = base.get("idvae")
    lines += [
        "",
        "Per IDVAE step (one pixel call in the encoder step, one layer-*l* call in the decoder step) the "
        f"fused op costs {extra_us:+.0f} µs against the reference"
        + (
            f", i.e. {extra_us / 1e3 / idvae_ms * 100:+.3f} % of the {idvae_ms:.0f} ms step"
            if idvae_ms
            else ""
        )
        + ". At these small sizes the op's fixed per-call costs (torch.profiler puts most of them in "
        "the Python autograd wrapper that `register_autograd` builds around the op, in the forward with "
        "grad and the backward) are of the order of the arithmetic itself; the fused "
        "kernel pays off only on large layers (last row). The step-level rows above are therefore the "
        "same work within the machine's noise.",
    ]
    return lines


def _op_timing(shape: tuple[int, ...], reps: int = 400) -> dict[str, float]:
    """Median µs of ``feature_regularizer`` (IDVAE's ``sum_sq`` call) per backend: forward only
    (``<backend>_fwd``, under ``no_grad``) and forward + backward (``<backend>``), interleaved."""
    from pygan.ops import feature_regularizer

    a = torch.randn(*shape, requires_grad=True)
    b = torch.randn(*shape)
    backends = ("cpp", "reference")
    times: dict[str, list[float]] = {k: [] for be in backends for k in (be, be + "_fwd")}

    def call(be: str, backward: bool) -> None:
        if backward:
            feature_regularizer([a], [b], 2, "sum", [0.5 / shape[0]], True, backend=be).backward()
        else:
            with torch.no_grad():
                feature_regularizer([a], [b], 2, "sum", [0.5 / shape[0]], True, backend=be)

    for _ in range(20):
        for be in backends:
            call(be, True)
            call(be, False)
    for _ in range(reps):
        for be in backends:
            for key, backward in ((be, True), (be + "_fwd", False)):
                t = time.perf_counter()
                call(be, backward)
                times[key].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e6 for k, v in times.items()}


def _markdown(res: dict) -> str:
    seeds = res["seeds"]
    floor = res["true_data"]
    rows = []
    for label, _, _, short in RUNS:
        per = [res["runs"][f"{short}-s{s}"] for s in seeds]
        fid_means = [p["fid_test"]["mean"] for p in per]
        rows.append((label, short, per, fid_means))
    lines = [
        "# IDVAE vs VAE vs VAE-GAN on the embedded digits (the IDVAE paper's comparison at CPU scale)",
        "",
        "Regenerate everything on this page (runs, numbers, pictures) with",
        "",
        "```bash",
        f"python docs/experiments/idvae.py --steps {res['steps']} --seeds {','.join(map(str, seeds))}",
        "```",
        "",
        f"Data: `{DATA}` (scikit-learn's 1,797 handwritten 8x8 digits at 16 px, the fixed 1,438 / 359 "
        "train/test split). Models (`pygan/models/idvae.py`): the same DCGAN-style conv encoder trunk, "
        "Gaussian heads and decoder everywhere, `width=32` (trunk convs 32 -> 64 channels, layer *l* = "
        "the 64x4x4 last conv stage), `z_dim=32`, batch 64, Adam 2e-4 / (0.5, 0.999), all loss weights 1 "
        "(α = β = ω = λ = 1, γ = 1 for IDVAE(R)): the defaults of the configs apart from width and "
        "latent size (`--preset small` of every model here). The paper's settings are in its "
        "(unavailable) supplement; nothing was tuned per "
        f"model. {res['steps']} iterations per run, training seed(s) {', '.join(map(str, seeds))}, one "
        "process with `--threads 1` per run, one run at a time.",
        "",
        "Metrics (`pygan.metrics`): **FD** = Fréchet distance between 1,000 samples and the real "
        "images in the 128-d feature space of pygan's digits classifier (`fid(..., "
        'extractor="digits")`; *not* comparable with Inception FIDs), against the 359 test images '
        "and against the 1,438 training images, mean ± std over 3 sample seeds"
        + (" and the training seeds" if len(seeds) > 1 else "")
        + "; **class TV** = total-variation distance of the classifier's label histogram of the "
        "samples from uniform (0 = every digit 10 %; a mode-dropping proxy); **recon** = "
        "`model.reconstruct` (decoder of the posterior mean) on the 359 test images: per-pixel MSE "
        "on [-1, 1] pixels, the paper's per-image square loss (sum over the 256 pixels) and PSNR.",
        "",
        'Floor (the paper\'s "True Data" row): FD(train images, test images) = '
        f"**{floor['fid_train_vs_test']:.1f}**; "
        f"359 random training images vs the test images: {floor['fid_359_train_vs_test']:.1f} "
        "(the 359-image reference set alone costs this much).",
        "",
        "| model | FD vs test ↓ | FD vs train ↓ | class TV ↓ | recon MSE ↓ | square loss / image ↓ "
        "| PSNR dB ↑ | train s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, _short, per, _ in rows:
        fd_test = [v for p in per for v in p["fid_test"]["values"]]
        fd_train = [v for p in per for v in p["fid_train"]["values"]]
        tv = [v for p in per for v in p["class_tv_from_uniform"]["values"]]
        mse_ = [p["recon_mse"] for p in per]
        sq = [p["recon_sq_per_image"] for p in per]
        ps = [p["recon_psnr"] for p in per]
        secs = [p["train_seconds"] or 0 for p in per]
        lines.append(
            f"| {label} | {_fmt(_ms(fd_test))} | {_fmt(_ms(fd_train))} | {_fmt(_ms(tv), 3)} | "
            f"{statistics.fmean(mse_):.4f} | {statistics.fmean(sq):.2f} | {statistics.fmean(ps):.2f} | "
            f"{statistics.fmean(secs):.0f} |"
        )
    if len(seeds) > 1:
        lines += ["", "Per training seed (FD vs test, mean over sample seeds):", ""]
        lines.append("| model | " + " | ".join(f"seed {s}" for s in seeds) + " |")
        lines.append("|---|" + "---:|" * len(seeds))
        for label, _short, _per, fm in rows:
            lines.append(f"| {label} | " + " | ".join(f"{v:.1f}" for v in fm) + " |")
    # C-IDVAE
    cond = [res["runs"][f"cidvae-s{s}"] for s in seeds]
    agree = [v for p in cond for v in p["class_agreement"]["values"]]
    per_class = torch.tensor([p["class_agreement_per_class"] for p in cond]).mean(0).tolist()
    lines += [
        "",
        "## C-IDVAE: samples per class",
        "",
        "100 samples of each digit (`model.sample_per_class(100)`), labelled by the digits classifier: "
        f"**class agreement {_fmt(_ms(agree), 3)}** (3 sample seeds"
        + (", all training seeds" if len(seeds) > 1 else "")
        + "). Per class: "
        + ", ".join(f"{k}: {v:.2f}" for k, v in enumerate(per_class))
        + ". Its reconstruction MSE with the true labels is "
        + f"{statistics.fmean(p['recon_mse'] for p in cond):.4f}; "
        "with the label inferred per image (the class whose reconstruction is closest; what `pygan eval`, "
        "which passes no labels, measures) "
        f"{statistics.fmean(p['recon_mse_labels_inferred'] for p in cond):.4f}. "
        "Its unconditional-style FD above uses the classes 0..9 in turn.",
        "",
        "![C-IDVAE, one row per class 0..9](../images/idvae_cidvae_per_class.png)",
        "",
        "## Pictures (training seed " + str(seeds[0]) + ")",
        "",
        "Samples from the prior, one row per model: " + "; ".join(res["pictures"]["samples_rows"]) + ".",
        "",
        "![samples](../images/idvae_samples.png)",
        "",
        "Reconstructions of 12 test images (first row), then one row per model: "
        + "; ".join(res["pictures"]["reconstruction_rows"][1:])
        + ".",
        "",
        "![reconstructions](../images/idvae_reconstructions.png)",
        "",
        "## Reading",
        "",
    ]
    order = sorted(
        [(statistics.fmean(fm), label) for label, short, _, fm in rows if short != "cidvae"],
        key=lambda t: t[0],
    )
    best = order[0][1]
    lines.append(
        "FD vs test, best first: "
        + " < ".join(f"{label} ({v:.1f})" for v, label in order)
        + ". "
        + (
            "**The paper's ordering holds here: IDVAE has the best FD** of the unconditional models."
            if best == "IDVAE"
            else f"**The paper's ordering (IDVAE best) does not hold here: {best} is best.**"
        )
    )
    # the paper's own comparison: IDVAE against the VAE and Larsen et al.'s VAE-GAN (not the ablation)
    fd = {short: statistics.fmean(fm) for _label, short, _, fm in rows}
    vs_paper = fd["idvae"] < min(fd["vae"], fd["vaegan"])
    lines.append(
        "Against the paper's two baselines only (VAE, Larsen et al.'s VAE-GAN), IDVAE's FD "
        + ("is lower than both" if vs_paper else "is not lower than both")
        + f" ({fd['idvae']:.1f} vs {fd['vae']:.1f} and {fd['vaegan']:.1f}); the unshared VAE-GAN with "
        f"IDVAE's pixel encoder loss (an ablation the paper does not run) reaches {fd['vaegan-pix']:.1f}, "
        f"so at this scale ({len(seeds)} training seed{'s' if len(seeds) > 1 else ''}) "
        + (
            "the gain over Larsen's VAE-GAN comes from the encoder's pixel loss, and sharing the trunk "
            "costs FD."
            if fd["vaegan-pix"] < fd["idvae"]
            else "sharing the trunk helps beyond the change of encoder loss."
        )
    )
    recon = sorted(
        [
            (statistics.fmean(p["recon_mse"] for p in per), label)
            for label, short, per, _ in rows
            if short != "cidvae"
        ]
    )
    lines += [
        "",
        "Reconstruction MSE, best first: " + " < ".join(f"{label} ({v:.4f})" for v, label in recon) + ". "
        "The paper reports the VAE best, IDVAE at par with or better than VAE-GAN, and IDVAE(R) best among "
        "the hybrids.",
        "",
    ]
    kls = []
    for label, _short, per, _ in rows:
        kl = [p["final_losses"].get("kl") for p in per if p["final_losses"].get("kl") is not None]
        if kl:
            kls.append(f"{label} {statistics.fmean(kl):.1f}")
    lines += [
        "KL(q(z|x) || N(0, I)) on the last training batch (nats, summed over the 32 latents): "
        + "; ".join(kls)
        + ". A large KL means the codes of real images sit away from where the prior puts samples, so "
        "reconstructions can be good while samples from N(0, I) are poor.",
    ]
    lines += _performance()
    lines += [
        "",
        "Caveats: 16 px digits with 1,438 training images and a few thousand iterations are not "
        "CelebA/CIFAR-10 at 64 px; the Fréchet distance uses a small digits classifier (not the "
        'paper\'s Inception-2015/2016 and ResNet "experts") and a 359-image test reference; the '
        "runs are short and untuned (equal loss weights for every model), so the numbers rank "
        "these configurations at this budget, not the methods in general.",
        "",
        f"Machine: {res['machine']} (shared with other jobs; load average {res['load_avg']}), "
        f"torch {res['torch']}; wall time of the generating command {res['wall_minutes']:.1f} min"
        + (
            f" (it reused the already trained runs {', '.join(res['reused_runs'])} via `--reuse`; their "
            "training time is the table's train s column)"
            if res.get("reused_runs")
            else ""
        )
        + ". Raw numbers: [idvae.json](idvae.json).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "idvae-experiment"), help="run directories")
    p.add_argument("--reuse", action="store_true", help="keep runs already trained to --steps")
    p.add_argument("--out", default=HERE, help="where idvae.md / idvae.json go (images: <out>/../images)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    t0 = time.time()
    reused = []
    for seed in seeds:
        for label, model, extra, short in RUNS:
            print(f"{label} (seed {seed})", flush=True)
            if (
                _train(
                    model, extra, os.path.join(args.runs, f"{short}-s{seed}"), args.steps, seed, args.reuse
                )
                is None
            ):
                reused.append(f"{short}-s{seed}")
    train_x = load_data(DATA).x
    test = load_data(DATA, "test")
    clf = load_digits_classifier()
    g = torch.Generator().manual_seed(0)
    sub = train_x[torch.randperm(len(train_x), generator=g)[: len(test.x)]]
    res: dict = {
        "steps": args.steps,
        "seeds": seeds,
        "data": DATA,
        "common_overrides": COMMON,
        "n_samples": N_SAMPLES,
        "sample_seeds": list(SAMPLE_SEEDS),
        "true_data": {
            "fid_train_vs_test": fid(test.x, train_x, extractor="digits"),
            "fid_359_train_vs_test": fid(test.x, sub, extractor="digits"),
        },
        "runs": {},
    }
    for seed in seeds:
        for label, _, extra, short in RUNS:
            name = f"{short}-s{seed}"
            print(f"evaluate {name}", flush=True)
            res["runs"][name] = {"label": label, "overrides": COMMON + extra, "seed": seed}
            res["runs"][name].update(_evaluate(os.path.join(args.runs, name), train_x, test, clf))
    img_dir = os.path.join(os.path.dirname(os.path.abspath(args.out)), "images")
    res["pictures"] = _pictures(args.runs, seeds[0], test, img_dir)
    res["machine"] = f"{platform.machine()} CPU, {os.cpu_count()} cores"
    res["load_avg"] = f"{os.getloadavg()[0]:.1f}"
    res["torch"] = torch.__version__
    res["wall_minutes"] = (time.time() - t0) / 60
    res["reused_runs"] = reused
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "idvae.json"), "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "idvae.md"), "w") as f:
        f.write(_markdown(res))
    print(f"wrote {os.path.join(args.out, 'idvae.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
