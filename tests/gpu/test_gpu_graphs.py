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
from pygan.train import load_checkpoint, run_paths, train
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
