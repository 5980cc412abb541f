"""Helpers of ``bench/gpu.sh``: the environment record and the final report of a GPU run.

    python bench/gpu.py env --out DIR/env.json
    python bench/gpu.py smoke [--device cuda]       # every kernel path once (under compute-sanitizer)
    python bench/gpu.py report --out DIR --env DIR/env.json --bench a.json b.json \\
        --tests gpu=DIR/tests-gpu.log cpu=DIR/tests-cpu.log

``report`` writes ``DIR/<gpu-name>.json`` (environment, test summaries, every benchmark row) and
``DIR/<gpu-name>.md`` (tables per size set and dtype, the issue's targets checked, and the per-op
CUDA default the numbers suggest for ``pygan/ops/_backend.py::CUDA_DEFAULTS``), and prints the
markdown last. Targets (issue 3, H100): memory-bound ops >= 90% of the measured copy bandwidth and
>= 1.3x torch.compile of the reference; style loss >= 1.6x the eager bmm-based reference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

MEMORY_BOUND = ("residual_add", "feature_regularizer", "grad_norm_penalty", "interpolate")
# bench case op -> pygan.ops._backend op name (CUDA_DEFAULTS key)
BACKEND_OP = {
    "residual_add": "residual_add",
    "feature_regularizer": "feature_regularizer",
    "style_loss": "gram_diff",
    "grad_norm_penalty": "grad_norm_penalty",
    "interpolate": "interpolate",
}
GPU_BACKENDS = ("cuda", "triton")


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({exc})"


def env_record() -> dict:
    import torch

    rec = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cpu_count": os.cpu_count(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "nvidia_smi": _run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.limit",
                "--format=csv",
            ]
        ),
        "nvcc": (_run(["nvcc", "--version"]).splitlines() or [None])[-1],
    }
    try:
        import triton

        rec["triton"] = triton.__version__
    except ImportError:
        rec["triton"] = None
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        rec["device"] = {
            "name": p.name,
            "capability": f"{p.major}.{p.minor}",
            "multiprocessors": p.multi_processor_count,
            "memory_GiB": round(p.total_memory / 2**30, 1),
            "L2_MB": round(getattr(p, "L2_cache_size", 0) / 2**20, 1),
        }
    else:
        rec["device"] = {"name": "cpu (dry run)"}
    try:
        import pygan

        rec["pygan"] = pygan.info()
    except Exception as exc:  # the report must still be written
        rec["pygan"] = f"import failed: {exc}"
    return rec


def test_summary(path: str) -> dict:
    """The pytest -q summary line ('3 failed, 10 passed, 2 skipped in 5.0s') of a log, parsed."""
    if not os.path.exists(path):
        return {"status": "not run", "log": os.path.basename(path)}
    text = open(path, errors="replace").read()
    lines = [
        ln for ln in text.splitlines() if re.search(r"\b(passed|failed|error|skipped|no tests ran)\b", ln)
    ]
    summary = lines[-1].strip("= ") if lines else "no pytest summary (timed out or crashed?)"
    counts = {
        k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", summary)
    }
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, flags=re.M)
    ok = (
        counts.get("passed", 0) > 0
        and not counts.get("failed")
        and not counts.get("error")
        and not counts.get("errors")
    )
    return {
        "summary": summary,
        "counts": counts,
        "ok": ok,
        "failed": failed[:50],
        "log": os.path.basename(path),
    }


def _fmt(v, spec):
    return "" if v is None else format(v, spec)


def table(result: dict) -> str:
    lines = [
        f"### sizes={result['sizes']} dtype={result['dtype']} — copy bandwidth "
        f"{result['copy_bandwidth_GBps']:.0f} GB/s",
        "",
        "| case | shape | candidate | ms (median) | x eager | x compile | GB/s | % copy | TFLOP/s | "
        "peak MB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['shape']} | {r['candidate']} | {r['error'][:80]} | | | | | | |")
            continue
        lines.append(
            f"| {r['case']} | {r['shape']} | {r['candidate']} | {r['ms']:.4f} | {r['vs_eager']:.2f} | "
            f"{_fmt(r.get('vs_compile'), '.2f')} | {r['GB/s']:.0f} | {100 * r['frac_copy_bw']:.0f} | "
            f"{_fmt(r.get('TFLOP/s'), '.1f')} | {_fmt(r.get('peak_MB'), '.0f')} |"
        )
    return "\n".join(lines)


def targets(result: dict) -> list[str]:
    """The issue's targets, checked on one bench result (meaningful for the 'large' sizes)."""
    out = []
    for r in result["rows"]:
        if "error" in r or r["candidate"] not in GPU_BACKENDS:
            continue
        if r["op"] in MEMORY_BOUND:
            ok_bw = r["frac_copy_bw"] >= 0.9
            ok_c = r.get("vs_compile") is not None and r["vs_compile"] >= 1.3
            out.append(
                f"- {r['case']} [{r['candidate']}]: {100 * r['frac_copy_bw']:.0f}% of copy bandwidth "
                f"({'ok' if ok_bw else 'MISSES'} >= 90%), x{_fmt(r.get('vs_compile'), '.2f')} vs compile "
                f"({'ok' if ok_c else 'MISSES'} >= 1.3)"
            )
        elif r["op"] == "style_loss":
            ok = r["vs_eager"] >= 1.6
            out.append(
                f"- {r['case']} [{r['candidate']}]: x{r['vs_eager']:.2f} vs eager bmm "
                f"({'ok' if ok else 'MISSES'} >= 1.6), {_fmt(r.get('TFLOP/s'), '.1f')} TFLOP/s"
            )
    return out


def suggest_defaults(results: list[dict]) -> dict[str, dict]:
    """Fastest GPU backend per op at the 'large' float32 sizes (ties: cuda), with the model-size
    winner for reference."""
    out: dict[str, dict] = {}
    for sizes in ("large", "model"):
        for res in results:
            if res["sizes"] != sizes or res["dtype"] != "float32":
                continue
            best: dict[str, tuple[float, str]] = {}
            for r in res["rows"]:
                if "error" in r or r["candidate"] not in GPU_BACKENDS or r["op"] not in BACKEND_OP:
                    continue
                op = BACKEND_OP[r["op"]]
                if op not in best or r["ms"] < best[op][0]:
                    best[op] = (r["ms"], r["candidate"])
            for op, (ms, cand) in best.items():
                out.setdefault(op, {})[sizes] = {"backend": cand, "ms": ms}
    return out


def report(args) -> int:
    env = json.load(open(args.env)) if args.env and os.path.exists(args.env) else env_record()
    name = slug(env.get("device", {}).get("name", "gpu"))
    results = []
    for path in args.bench:
        if os.path.exists(path):
            results.append(json.load(open(path)))
        else:
            print(f"# bench result missing (step skipped or failed): {path}")
    tests = {}
    for spec in args.tests:
        key, _, path = spec.partition("=")
        tests[key] = test_summary(path)
    defaults = suggest_defaults(results)
    record = {
        "name": name,
        "env": env,
        "tests": tests,
        "bench": results,
        "suggested_CUDA_DEFAULTS": {
            op: d.get("large", d.get("model"))["backend"] for op, d in defaults.items()
        },
        "suggested_detail": defaults,
        "notes": args.note,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump(record, f, indent=1)
    md = [f"# GPU run: {env.get('device', {}).get('name')} ({env.get('time')})", ""]
    md.append(
        f"torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), triton {env.get('triton')}, "
        f"{env.get('device', {}).get('multiprocessors')} SMs, L2 {env.get('device', {}).get('L2_MB')} MB"
    )
    md += ["", "## Tests", ""]
    for key, t in tests.items():
        md.append(f"- {key}: {t.get('summary', t.get('status'))}" + ("" if t.get("ok") else "  **(not ok)**"))
        for fail in t.get("failed", [])[:15]:
            md.append(f"  - {fail}")
    md += ["", "## Benchmarks (fwd+bwd, median of triton.testing.do_bench)", ""]
    for res in results:
        md += [table(res), ""]
        if res["sizes"] == "large":
            md += ["Targets:", *targets(res), ""]
    md += ["## Suggested CUDA_DEFAULTS (fastest GPU backend at the large float32 sizes)", "", "```python"]
    md.append("CUDA_DEFAULTS = " + json.dumps(record["suggested_CUDA_DEFAULTS"], indent=4))
    md += ["```", ""]
    for note in args.note or []:
        md.append(f"- {note}")
    text = "\n".join(md)
    with open(os.path.join(args.out, f"{name}.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    print(f"\n# wrote {os.path.join(args.out, name)}.json and .md")
    all_ok = all(t.get("ok") for t in tests.values()) and bool(results)
    return 0 if all_ok else 1


def smoke(args) -> int:
    """Calls every GPU kernel path once on small odd shapes (vector and scalar paths, one and several
    blocks, direct and split-K Gram), forward and backward, and compares with the reference: within
    a tolerance of the float64 result, or within twice PyTorch's own error in the same dtype (so an
    overflow or a clamp kink that PyTorch shares is not flagged). Meant to run under
    ``compute-sanitizer`` (memcheck / racecheck), which sees bad accesses value tests can miss.
    Exit status 1 on a wrong or non-finite result."""
    import torch

    import pygan
    from pygan import ops

    device = args.device
    torch.manual_seed(0)
    backends = [b for b in (args.backends or "cuda,triton").split(",") if ops.available(b, device)]
    print(f"# smoke on {device}: backends {backends}; pygan {pygan.info()}", flush=True)
    bad = []
    tols = {torch.float32: 1e-4, torch.bfloat16: 3e-2, torch.float16: 5e-3, torch.float64: 1e-10}

    def rel(got, want):
        got, want = got.double().cpu(), want.double().cpu()
        fin = torch.isfinite(want)
        if not bool(torch.equal(torch.isfinite(got), fin)):
            return float("inf")
        got, want = got[fin], want[fin]
        return ((got - want).abs().max() / want.abs().max().clamp_min(1e-30)).item() if want.numel() else 0.0

    def run(fn, inputs, grad_inputs):
        xs = [t.detach().requires_grad_(i in grad_inputs) for i, t in enumerate(inputs)]
        out = fn(*xs)
        out0 = out[0] if isinstance(out, tuple) else out
        loss = out0.float().sum() if out0.dim() else out0
        if isinstance(out, tuple):
            loss = loss + out[1].sum().to(loss.dtype)
        grads = torch.autograd.grad(loss, [xs[i] for i in grad_inputs]) if grad_inputs else []
        return [out0, *(out[1:] if isinstance(out, tuple) else ()), *grads]

    def check(name, ours, ref, inputs, grad_inputs, dtype):
        got = run(ours, inputs, grad_inputs)
        want = run(ref, [t.double() for t in inputs], grad_inputs)
        low = run(ref, inputs, grad_inputs) if dtype != torch.float64 else want
        for i, (g, w, lw) in enumerate(zip(got, want, low)):
            err = rel(g, w)
            bound = max(tols[dtype], 2 * rel(lw, w) + 1e-6) if dtype != torch.float64 else tols[dtype]
            ok = err <= bound or (rel(g, lw) == 0.0)
            if not ok:
                bad.append(f"{name}[{i}]")
            print(
                f"{'ok' if ok else 'BAD':4s} {name} [{i}]: rel err {err:.2e} (bound {bound:.1e})", flush=True
            )

    def rnd(*shape, dtype, offset=0):
        t = torch.randn(int(torch.tensor(shape).prod()) + offset, dtype=dtype, device=device)
        return t[offset:].view(shape)

    elementwise = (((3, 5, 7, 9), 0), ((4, 8, 16, 16), 0), ((2, 3, 33, 1001), 1), ((70001,), 0))
    grams = (((2, 5, 7, 9), 0), ((3, 70, 16, 16), 0), ((2, 130, 4097), 1), ((1, 64, 8192), 0))
    for backend in backends:

        def can(op, backend=backend):
            return ops.available(backend, device, op)

        for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
            for shape, off in elementwise:
                tag = f"{backend} {dtype} {shape}+{off}"
                x, y = rnd(*shape, dtype=dtype, offset=off), rnd(*shape, dtype=dtype, offset=off)
                if can("residual_add"):
                    for act in ("tanh", "clamp"):
                        check(
                            f"residual_add {act} {tag}",
                            lambda a, b, act=act, bk=backend: ops.residual_add(a, b, act, False, backend=bk),
                            lambda a, b, act=act: ops.residual_add_ref(a, b, act, False),
                            [x, y],
                            [0, 1],
                            dtype,
                        )
                if can("feature_regularizer"):
                    small = rnd(5, 7, dtype=dtype)
                    for p in (1, 2):
                        check(
                            f"feature_regularizer p={p} {tag}",
                            lambda a, b, c, p=p, bk=backend: ops.feature_regularizer(
                                [a, c], [b, c * 0.5], p, "mean", [0.5, 2.0], backend=bk
                            ),
                            lambda a, b, c, p=p: ops.feature_regularizer_ref(
                                [a, c], [b, c * 0.5], p, "mean", [0.5, 2.0]
                            ),
                            [x, y, small],
                            [0, 1, 2],
                            dtype,
                        )
                if can("grad_norm_penalty"):
                    alpha = torch.rand(shape[0], dtype=dtype, device=device)
                    check(
                        f"interpolate {tag}",
                        lambda a, b, al=alpha, bk=backend: ops.interpolate(a, b, al, backend=bk),
                        lambda a, b, al=alpha: ops.interpolate_ref(a, b, al.to(a.dtype)),
                        [x, y],
                        [0, 1],
                        dtype,
                    )
                    check(
                        f"grad_norm_penalty {tag}",
                        lambda g, bk=backend: ops.grad_norm_penalty(
                            g * 0.01, 1.0, 10.0, return_norms=True, backend=bk
                        ),
                        lambda g: ops.grad_norm_penalty_ref(g * 0.01, 1.0, 10.0, return_norms=True),
                        [x],
                        [0],
                        dtype,
                    )
            for shape, off in grams if can("gram_diff") else ():
                tag = f"{backend} {dtype} {shape}+{off}"
                fx, fy = rnd(*shape, dtype=dtype, offset=off), rnd(*shape, dtype=dtype, offset=off)
                check(
                    f"style_loss {tag}",
                    lambda a, b, bk=backend: ops.style_loss(a, b, "hw", "sum", backend=bk),
                    lambda a, b: ops.style_loss_ref(a, b, "hw", "sum"),
                    [fx, fy],
                    [0, 1],
                    dtype,
                )
                check(
                    f"gram_matrix {tag}",
                    lambda a, bk=backend: ops.gram_matrix(a, "hw", backend=bk),
                    lambda a: ops.gram_matrix_ref(a, "hw"),
                    [fx],
                    [0],
                    dtype,
                )
    if device == "cuda":
        torch.cuda.synchronize()
    print(f"# smoke: {len(bad)} bad result(s)" + (f": {bad[:20]}" if bad else ""), flush=True)
    return 1 if bad else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("env")
    e.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--out", required=True, help="folder for <gpu-name>.json and .md")
    r.add_argument("--env")
    r.add_argument("--bench", nargs="*", default=[])
    r.add_argument("--tests", nargs="*", default=[], help="key=path of a pytest -q log")
    r.add_argument("--note", action="append", help="a line for the report (repeatable)")
    sm = sub.add_parser("smoke")
    sm.add_argument("--device", default="cuda")
    sm.add_argument("--backends", help="comma-separated (default cuda,triton: those that can run)")
    args = p.parse_args(argv)
    if args.cmd == "smoke":
        return smoke(args)
    if args.cmd == "env":
        rec = env_record()
        with open(args.out, "w") as f:
            json.dump(rec, f, indent=1)
        print(json.dumps(rec, indent=1))
        return 0
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
