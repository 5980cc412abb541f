"""CUDA graphs on a real GPU (run by the lent-GPU script; skipped elsewhere): for every registered
model (tests/_tiny.py, plus lazy-regularisation and other host-path variants), K iterations through
the training loop with ``cuda_graphs=True`` against K eager ones from the same seed.

* graphed vs eager through the loop: bitwise equal losses and parameters (on CUDA the eager path's
  optimizers are capturable too, so both do the same arithmetic), with cuDNN deterministic in both;
* graphed vs its eager twin (the graph path's side stream and static buffers, never captured):
  bitwise equal, which shows that capture and replay change nothing;
* resume across modes (graphed -> eager and eager -> graphed) lands bitwise on the uninterrupted run;
* bf16 autocast inside the graph stays finite; graph memory does not grow with the steps;
* a step that reads a device value on the host falls back to eager with one line.

Every case writes its measured differences to ``$PYGAN_GPU_GRAPH_REPORT`` (JSON lines) when set.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from pygan.data import Loader, load_data
from pygan.graphs import EagerStep, GraphedStep, LossMonitor
from pygan.models import build_model
from pygan.runs import load_checkpoint, run_paths
from pygan.train import train
from tests._tiny import all_cases

if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU here: tests/gpu runs on a lent GPU", allow_module_level=True)
if os.environ.get("TRITON_INTERPRET") == "1":
    pytest.skip("TRITON_INTERPRET=1 is set: tests/gpu needs compiled Triton", allow_module_level=True)

K = 8  # iterations per run: 3 eager warm-ups, the capture, 4 replays (more warm-ups with phases)
CASES = all_cases()


@pytest.fixture(autouse=True)
def _deterministic():
    old = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


def _report(**row):
    path = os.environ.get("PYGAN_GPU_GRAPH_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


def _train(case, out, steps=K, **kw):
    name, spec, overrides = CASES[case]
    kw.setdefault("log_every", 1)
    return train(
        name,
        spec,
        str(out),
        steps,
        overrides=overrides,
        device="cuda",
        sample_every=0,
        ckpt_every=kw.pop("ckpt_every", steps),
        progress=False,
        tensorboard=False,
        **kw,
    )


def _rows(run):
    with open(run_paths(str(run))["metrics"]) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in ("time", "img_per_s")} for line in f]


def _max_diff(a: dict, b: dict) -> tuple[float, float]:
    """(max abs difference, max difference relative to the larger magnitude) over tensors/floats."""
    worst_abs = worst_rel = 0.0
    for k in a:
        x, y = torch.as_tensor(a[k]).double().cpu(), torch.as_tensor(b[k]).double().cpu()
        d = (x - y).abs()
        worst_abs = max(worst_abs, float(d.max()) if d.numel() else 0.0)
        scale = torch.maximum(x.abs(), y.abs()).clamp_min(1e-12)
        worst_rel = max(worst_rel, float((d / scale).max()) if d.numel() else 0.0)
    return worst_abs, worst_rel


def _assert_equal_dicts(a: dict, b: dict, what: str):
    assert a.keys() == b.keys()
    for k in a:
        x, y = torch.as_tensor(a[k]), torch.as_tensor(b[k])
        assert torch.equal(x, y), f"{what} {k}: max |diff| {float((x.double() - y.double()).abs().max())}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_graphed_iterations_equal_eager_ones(case, tmp_path):
    g = _train(case, tmp_path / "g", cuda_graphs=True)
    e = _train(case, tmp_path / "e")
    stats = g.train_stats
    assert stats["step_mode"] == "graph", stats["eager_reason"]
    assert stats["graph_replays"] >= 1
    lg, le = _rows(tmp_path / "g"), _rows(tmp_path / "e")
    assert [r["step"] for r in lg] == [r["step"] for r in le] == list(range(1, K + 1))
    pg, pe = g.state_dict(), e.state_dict()
    loss_diff = max(_max_diff(a, b)[1] for a, b in zip(lg, le))
    param_abs, param_rel = _max_diff(pg, pe)
    _report(test="graph_vs_eager", case=case, replays=stats["graph_replays"], loss_rel=loss_diff,
            param_abs=param_abs, param_rel=param_rel)  # fmt: skip
    for a, b in zip(lg, le):
        _assert_equal_dicts(a, b, f"{case} step {a['step']} loss")
    _assert_equal_dicts(pg, pe, f"{case} parameter")


def _steps(case, runner_kind, steps=K, seed=0):
    name, spec, overrides = CASES[case]
    data = load_data(spec, "train")
    data.to("cuda")
    torch.manual_seed(seed)
    model = build_model(name, data.info, overrides).cuda()
    model.optimizers = model.configure_optimizers()
    model.train()
    loader = Loader(data, model.batch_size * model.batches_per_step, seed=seed, device="cuda")
    torch.manual_seed(seed + 1)
    mon = LossMonitor(steps)
    dev = torch.device("cuda")
    if runner_kind == "graph":
        runner = GraphedStep(model, mon, dev, say=pytest.fail)
    elif runner_kind == "twin":  # the same path, never captured
        runner = GraphedStep(model, mon, dev, say=pytest.fail, capture=False)
    else:
        runner = EagerStep(model, mon, dev)
    mem = []
    for i in range(steps):
        runner(loader.next(), i)
        torch.cuda.synchronize()
        mem.append(torch.cuda.memory_allocated())
    return model, mon.read(), runner, mem


@pytest.mark.parametrize("case", sorted(CASES))
def test_capture_and_replay_change_nothing(case):
    """Graphed vs the same capturable, side-stream path run eagerly: bitwise equal."""
    g, lg, rg, _ = _steps(case, "graph")
    t, lt, rt, _ = _steps(case, "twin")
    assert rg.replays >= 1 and rt.replays == 0
    pa, _ = _max_diff(g.state_dict(), t.state_dict())
    la = max(_max_diff(a[1], b[1])[0] for a, b in zip(lg, lt))
    _report(test="graph_vs_twin", case=case, param_abs=pa, loss_abs=la)
    assert lg == lt
    for k, v in g.state_dict().items():
        assert torch.equal(v, t.state_dict()[k]), k


@pytest.mark.parametrize("case", ["wgan-gp", "uuvae-gan", "wgan-gp-lazy", "idvae"])
@pytest.mark.parametrize("first", ["graph", "eager"])
def test_resume_across_modes(case, first, tmp_path):
    whole = _train(case, tmp_path / "whole", cuda_graphs=first == "graph")
    _train(case, tmp_path / "r", steps=K // 2, cuda_graphs=first == "graph")
    ck = load_checkpoint(run_paths(str(tmp_path / "r"))["last"])
    for opt in ck["optimizers"].values():  # portable: what an eager run writes
        assert all(not g.get("capturable", False) for g in opt["param_groups"])
        assert all(s["step"].device.type == "cpu" for s in opt["state"].values() if "step" in s)
    resumed = _train(case, tmp_path / "r", resume=True, cuda_graphs=first != "graph")
    assert resumed.train_stats["step_mode"] == ("eager" if first == "graph" else "graph")
    a, b = whole.state_dict(), resumed.state_dict()
    _report(test="resume", case=case, first=first, param_abs=_max_diff(a, b)[0])
    _assert_equal_dicts(a, b, f"{case} resumed {first}->other")
    lw, lr = _rows(tmp_path / "whole"), _rows(tmp_path / "r")
    assert [r["step"] for r in lr] == list(range(1, K + 1))
    for x, y in zip(lw, lr):
        _assert_equal_dicts(x, y, f"{case} resumed loss")


@pytest.mark.parametrize("case", sorted(c for c in CASES if "-lazy" not in c))
def test_bf16_autocast_inside_the_graph(case, tmp_path):
    m = _train(case, tmp_path / "b", cuda_graphs=True, amp=True)
    assert m.train_stats["step_mode"] == "graph", m.train_stats["eager_reason"]
    rows = _rows(tmp_path / "b")
    assert len(rows) == K and all(v == v and abs(v) != float("inf") for r in rows for v in r.values())


@pytest.mark.parametrize("case", ["wgan-gp", "uunet", "wgan-gp-lazy"])
def test_graph_memory_does_not_grow(case):
    _, _, runner, mem = _steps(case, "graph", steps=30)
    settled = 15  # by then every phase of these cases is captured
    _report(test="memory", case=case, mem_settled=mem[settled], mem_end=mem[-1])
    assert len(runner.graphs) >= 1 and runner.replays >= 15
    assert mem[-1] == mem[settled], mem


def test_a_host_read_falls_back_on_cuda(monkeypatch):
    from pygan.models import wgan_gp

    orig = wgan_gp.WGANGP.training_step

    def reading(self, batch):
        out = orig(self, batch)
        if out["loss_d"] > 1e9:  # a host read: a sync on CUDA
            pass
        return out

    monkeypatch.setattr(wgan_gp.WGANGP, "training_step", reading)
    said = []
    name, spec, overrides = CASES["wgan-gp"]
    data = load_data(spec, "train")
    model = build_model(name, data.info, overrides).cuda()
    model.optimizers = model.configure_optimizers()
    loader = Loader(data, model.batch_size * model.batches_per_step, device="cuda")
    mon = LossMonitor(8)
    runner = GraphedStep(model, mon, torch.device("cuda"), say=said.append)
    for i in range(6):
        runner(loader.next(), i)
    assert runner.reason is not None and len(said) == 1 and "reads device values on the host" in said[0]
    assert "called a synchronizing CUDA operation" in said[0] or "bool() in tests." in said[0]
    assert len(mon.read()) == 6


# ---- issue 15: the generator EMA under graphs, fp16's fall-back, --deterministic -------------------

EMA_CASES = ["wgan-gp", "wgan-gp-lazy", "dcgan", "cogan", "edgan", "idvae", "acl-gan", "uunet"]


@pytest.mark.parametrize("case", EMA_CASES)
def test_graphed_ema_equals_eager_ema(case, tmp_path):
    """The EMA update is captured with the step: a graphed run's averages equal an eager run's
    (bitwise, as the parameters) and its never-captured twin's (bitwise, below)."""
    name, spec, overrides = CASES[case]
    ema = [*overrides, "ema_decay=0.9", "ema_rampup=0.5"]
    runs = {}
    for mode in ("graph", "eager"):
        m = train(name, spec, str(tmp_path / mode), K, overrides=ema, device="cuda", sample_every=0,
                  ckpt_every=K, progress=False, tensorboard=False, log_every=1,
                  cuda_graphs=mode == "graph")  # fmt: skip
        runs[mode] = m
    g, e = runs["graph"], runs["eager"]
    assert g.train_stats["step_mode"] == "graph", g.train_stats["eager_reason"]
    assert float(g.ema.updates) == float(e.ema.updates) == K
    a, b = g.ema.averaged_state(), e.ema.averaged_state()
    _report(test="ema_graph_vs_eager", case=case, ema_abs=_max_diff(a, b)[0])
    _assert_equal_dicts(a, b, f"{case} EMA")
    ck = load_checkpoint(run_paths(str(tmp_path / "graph"))["last"])
    for k, v in ck["ema"]["params"].items():
        assert torch.equal(v, a[k].cpu()), k


@pytest.mark.parametrize("case", ["wgan-gp", "cogan", "edgan"])
def test_graphed_ema_equals_its_twin_bitwise(case):
    name, spec, overrides = CASES[case]
    out = {}
    for kind in ("graph", "twin"):
        data = load_data(spec, "train")
        data.to("cuda")
        torch.manual_seed(0)
        model = build_model(name, data.info, [*overrides, "ema_decay=0.9", "ema_rampup=0.5"]).cuda()
        model.optimizers = model.configure_optimizers()
        model.make_ema()
        model.train()
        loader = Loader(data, model.batch_size * model.batches_per_step, seed=0, device="cuda")
        torch.manual_seed(1)
        runner = GraphedStep(model, LossMonitor(K), torch.device("cuda"), say=pytest.fail,
                             capture=kind == "graph")  # fmt: skip
        for i in range(K):
            runner(loader.next(), i)
        torch.cuda.synchronize()
        out[kind] = (model.ema.averaged_state(), runner.replays)
    assert out["graph"][1] >= 1 and out["twin"][1] == 0
    for k, v in out["graph"][0].items():
        assert torch.equal(v, out["twin"][0][k]), k


def test_fp16_with_cuda_graphs_runs_eagerly_and_finite(tmp_path, capsys):
    name, spec, overrides = CASES["wgan-gp"]
    m = train(name, spec, str(tmp_path / "h"), K, overrides=overrides, device="cuda", cuda_graphs=True,
              amp="fp16", sample_every=0, progress=False, tensorboard=False, log_every=1)  # fmt: skip
    assert m.train_stats["step_mode"] == "eager" and "GradScaler" in m.train_stats["eager_reason"]
    assert capsys.readouterr().err.count("--amp fp16 needs a GradScaler") == 1
    rows = _rows(tmp_path / "h")
    assert len(rows) == K and all(v == v and abs(v) != float("inf") for r in rows for v in r.values())
    ck = load_checkpoint(run_paths(str(tmp_path / "h"))["last"])
    assert ck["grad_scaler"]["scale"] > 0


def test_fp16_penalty_equals_fp32_on_cuda():
    from pygan.amp import grad_scaling, scaled_backward, unscale_grads
    from pygan.ops import gradient_penalty

    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 4, 2, 1), torch.nn.LeakyReLU(0.2),
                                 torch.nn.Conv2d(16, 32, 4, 2, 1), torch.nn.LeakyReLU(0.2),
                                 torch.nn.Flatten(), torch.nn.Linear(32 * 8 * 8, 1)).cuda()  # fmt: skip
    real, fake = torch.randn(32, 3, 32, 32, device="cuda"), torch.randn(32, 3, 32, 32, device="cuda")
    alpha = torch.rand(32, device="cuda")
    p32 = gradient_penalty(critic, real, fake, alpha=alpha)
    p32.backward()
    g32 = [p.grad.clone() for p in critic.parameters() if p.grad is not None]
    critic.zero_grad()
    scaler = torch.amp.GradScaler("cuda")
    opt = torch.optim.SGD(critic.parameters(), lr=0)
    with grad_scaling(scaler):
        with torch.autocast("cuda", dtype=torch.float16):
            p16 = gradient_penalty(critic, real, fake, alpha=alpha)
        scaled_backward(p16)
        unscale_grads(opt)
    torch.testing.assert_close(p16.float(), p32, rtol=5e-3, atol=1e-5)
    g16 = [p.grad for p in critic.parameters() if p.grad is not None]
    rel = max(float((b - a).norm() / a.norm()) for a, b in zip(g32, g16))
    _report(test="fp16_penalty_cuda", penalty_rel=float((p16.float() - p32).abs() / p32), grad_rel=rel)
    assert rel < 2e-2


@pytest.mark.parametrize("case", sorted(CASES))
def test_deterministic_runs_are_bitwise_repeatable(case, tmp_path):
    """--deterministic: two runs of the same seed are bitwise equal (an op without a deterministic
    CUDA implementation makes torch raise, naming it). The step times of a deterministic and a
    default run go to the report (the switch's cost)."""
    import time

    name, spec, overrides = CASES[case]
    runs, times = [], {}
    for i, det in enumerate((True, True, False)):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            m = train(name, spec, str(tmp_path / f"r{i}"), 2 * K, overrides=overrides, device="cuda",
                      deterministic=det, sample_every=0, progress=False, tensorboard=False,
                      log_every=1)  # fmt: skip
        except RuntimeError as exc:
            pytest.fail(f"{case}: --deterministic: {str(exc).splitlines()[0]}")
        torch.cuda.synchronize()
        times[f"det={det}#{i}"] = time.perf_counter() - t0
        runs.append(m)
    _report(test="deterministic", case=case, **{k: round(v, 3) for k, v in times.items()})
    assert _rows(tmp_path / "r0") == _rows(tmp_path / "r1")
    a, b = runs[0].state_dict(), runs[1].state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
