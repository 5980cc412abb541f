"""CUDA-graph mode without a GPU: the model contract (no host reads in any model's training step), the
device-side loss monitor, portable optimizer state, lazy regularisation's schedule, and the plumbing
of :class:`pygan.graphs.GraphedStep` (static buffers, warm-up, capture, phases, the fall-backs) on a
CPU stand-in for the CUDA graph API. Graphed vs eager equality on a real GPU: tests/gpu/test_gpu_graphs.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import pytest
import torch
from torch import nn

from pygan.data import Loader, load_data
from pygan.data.core import Batch, DataInfo
from pygan.graphs import (
    EagerStep,
    GraphedStep,
    HostReadDetector,
    LossMonitor,
    NonFiniteLossError,
    make_capturable,
    portable_optimizer_state,
)
from pygan.models import Model, build_model, lazy_schedule, list_models
from pygan.train import train
from tests._tiny import TINY, all_cases

# ---- the contract, for every registered model -----------------------------------------------------


def test_every_model_has_a_tiny_config():
    assert set(list_models()) - {"test-paired", "test-two-domain"} == set(TINY)


def _built(case):
    name, spec, overrides = all_cases()[case]
    data = load_data(spec, "train")
    torch.manual_seed(0)
    model = build_model(name, data.info, overrides)
    model.optimizers = model.configure_optimizers()
    return model, Loader(data, model.batch_size * model.batches_per_step, seed=0)


@pytest.mark.parametrize("case", sorted(all_cases()))
def test_training_steps_never_read_device_values_on_the_host(case, one_thread):
    """A CUDA graph cannot replay a host read (``.item()``, ``float(t)``, ``if t > 0``): every model's
    whole iteration runs without one, and reports its losses as detached 0-dim tensors, the same
    names every step."""
    model, loader = _built(case)
    model.train()
    keys = None
    for it in range(4):  # covers every lazy-regularisation phase of the variants
        model.iteration = it
        with HostReadDetector() as det:
            logs = model.training_step(loader.next())
        assert det.reads == [], f"{case}: {det.reads}"
        assert all(torch.is_tensor(v) and v.dim() == 0 and not v.requires_grad for v in logs.values()), logs
        assert keys is None or tuple(logs) == keys
        keys = tuple(logs)
        assert model.cuda_graph_blocker() is None


def test_the_detector_flags_host_reads_in_user_code_only():
    x = torch.ones(3, requires_grad=True)
    with HostReadDetector() as det:
        y = (x * 2).sum().detach()
        y.item()
        float(y)
        if y > 0:
            pass
        y.tolist()
        f"{y}"
        torch.nonzero(x > 0)
        opt = torch.optim.Adam([x])  # torch's own .item() on its CPU step counter is not ours
        (x * 2).sum().backward()
        opt.step()
    kinds = [r.split("()")[0] for r in det.reads]
    assert kinds[:5] == ["item", "float", "bool", "tolist", "format"] and "nonzero" in kinds
    assert all(__name__ in r for r in det.reads)
    assert not any("torch.optim" in r for r in det.reads)


# ---- the loss monitor -------------------------------------------------------------------------------


def _feed(mon, *rows):
    for r in rows:
        mon.observe({k: torch.tensor(v) if not isinstance(v, int) else v for k, v in r.items()})
        mon.advance()


def test_monitor_returns_every_step_since_the_last_read():
    mon = LossMonitor(4, start_step=10)
    _feed(mon, {"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0})
    assert mon.read() == [(11, {"a": 1.0, "b": 2.0}), (12, {"a": 3.0, "b": 4.0})]
    assert mon.read() == []
    _feed(mon, *({"a": float(i), "b": 0.5} for i in range(4)))  # wraps around the ring
    assert [r[0] for r in mon.read()] == [13, 14, 15, 16]
    with pytest.raises(TypeError, match=r"loss 'b' was a tensor before and is a int at step 17"):
        _feed(mon, {"a": 7.0, "b": 1})
    mon = LossMonitor(4)
    _feed(mon, {"a": 7.0, "b": 1}, {"a": 8.0, "b": 2})  # Python numbers are kept on the host
    assert mon.read() == [(1, {"a": 7.0, "b": 2.0}), (2, {"a": 8.0, "b": 2.0})]


def test_monitor_names_the_first_non_finite_loss_and_its_step():
    mon = LossMonitor(8)
    _feed(mon, {"d": 1.0, "g": 1.0}, {"d": 1.0, "g": float("inf")}, {"d": float("nan"), "g": 1.0})
    with pytest.raises(NonFiniteLossError, match=r"loss 'g' is inf at step 2") as info:
        mon.read()
    assert (info.value.loss, info.value.step) == ("g", 2) and math.isinf(info.value.value)


def test_monitor_refuses_changing_names_and_a_missed_read():
    mon = LossMonitor(2)
    _feed(mon, {"a": 1.0})
    with pytest.raises(ValueError, match=r"the same losses every step"):
        mon.observe({"b": torch.tensor(1.0)})
    _feed(mon, {"a": 1.0})
    with pytest.raises(RuntimeError, match=r"window of 2"):
        _feed(mon, {"a": 1.0})
    with pytest.raises(TypeError, match=r"dict"):
        LossMonitor(2).observe([1.0])
    with pytest.raises(ValueError, match=r"scalar"):
        LossMonitor(2).observe({"a": torch.ones(3)})
    with pytest.raises(ValueError, match=r"window"):
        LossMonitor(0)


def test_loop_reads_losses_only_every_log_every_steps(tmp_path, monkeypatch):
    reads = []
    orig = LossMonitor.read

    def spy(self):
        rows = orig(self)
        reads.append([s for s, _ in rows])
        return rows

    monkeypatch.setattr(LossMonitor, "read", spy)
    train(
        "wgan-gp",
        "ring8",
        str(tmp_path / "r"),
        12,
        overrides=["batch_size=8", "mlp_hidden=8", "n_critic=1"],
        log_every=5,
        ckpt_every=6,
        sample_every=0,
        progress=False,
        tensorboard=False,
    )
    # reads at the log steps, the checkpoints and the end; each read covers every step since the last
    assert reads == [[1, 2, 3, 4, 5], [6], [7, 8, 9, 10], [11, 12]]


# ---- optimizers ------------------------------------------------------------------------------------


def test_portable_optimizer_state_equals_an_eager_optimizers():
    def make():
        torch.manual_seed(0)
        w = nn.Parameter(torch.randn(5))
        opt = torch.optim.Adam([w], lr=0.1)
        (w**2).sum().backward()
        opt.step()
        return opt

    eager, graphed = make(), make()
    make_capturable({"o": graphed}, True)
    assert graphed.param_groups[0]["capturable"] is True
    a, b = eager.state_dict(), portable_optimizer_state(graphed)
    assert a["param_groups"] == b["param_groups"]
    for k in a["state"]:
        for name, v in a["state"][k].items():
            assert torch.equal(v, b["state"][k][name]) and v.device == b["state"][k][name].device
    assert graphed.param_groups[0]["capturable"] is True  # the live optimizer is untouched
    make_capturable({"o": graphed}, False)
    assert graphed.param_groups[0]["capturable"] is False
    assert portable_optimizer_state(eager) is not None


# ---- lazy regularisation ------------------------------------------------------------------------------


def test_lazy_schedule_counts_critic_steps_from_the_start():
    every = 4
    flat = [d for it in range(8) for d in lazy_schedule(it, 5, every)]
    assert flat == [i % every == 0 for i in range(40)]
    assert lazy_schedule(3, 5, 1) == (True,) * 5


@pytest.mark.parametrize("case", ["wgan-gp-lazy", "acl-gan-gp-lazy", "cogan-wgan-lazy"])
def test_lazy_penalty_runs_on_the_scheduled_steps_with_its_weight_scaled(case, monkeypatch, one_thread):
    from pygan.models import acl, cogan, wgan_gp

    calls = []
    for mod in (wgan_gp, acl, cogan):
        orig = mod.gradient_penalty

        def spy(*a, _orig=orig, **kw):
            calls.append(kw["weight"])
            return _orig(*a, **kw)

        monkeypatch.setattr(mod, "gradient_penalty", spy)
    model, loader = _built(case)
    k = model.lazy_gp.every
    n = model.lazy_gp.steps
    expected = []
    for it in range(5):
        model.iteration = it
        calls.clear()
        logs = model.training_step(loader.next())
        assert len(calls) == sum(lazy_schedule(it, n, k)), it
        expected.append(model.graph_phase(it))
        assert all(w == pytest.approx(k * (2 if case.startswith("cogan") else 1) * 10.0) for w in calls)
        assert all(math.isfinite(float(v)) for v in logs.values())
    assert len(set(expected)) > 1  # the phases differ: several graphs
    with pytest.raises(ValueError, match="gp_every"):
        build_model("wgan-gp", load_data("digits16").info, ["gp_every=0"])
    with pytest.raises(ValueError, match="gp_every"):
        build_model("acl-gan", load_data("digits16").info, ["gp_every=2"])


# ---- GraphedStep on a CPU stand-in for the CUDA graph API -----------------------------------------------


class FakeGraphs:
    """torch.cuda.graph's roles on CPU: capture records the step (running nothing); replay runs it."""

    def __init__(self, fail: bool = False):
        self.fail, self.captures, self.replays, self.synced_checks = fail, 0, 0, 0

    @contextlib.contextmanager
    def side_stream(self):
        yield

    @contextlib.contextmanager
    def sync_check(self, found):
        self.synced_checks += 1
        yield

    def capture(self, fn):
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing\nmore")
        self.captures += 1
        return fn

    def replay(self, g):
        self.replays += 1
        g()

    def rng_state(self):
        return torch.get_rng_state()

    def set_rng_state(self, s):
        torch.set_rng_state(s)

    def after_failure(self):
        pass


@dataclasses.dataclass
class ToyConfig:
    batch_size: int = 4
    every: int = 1  # phases
    host_read: bool = False
    blocker: str | None = None


class Toy(Model):
    """``loss = mean((w - x)^2)`` on the batch; logs the batch mean (to see which batch a step read)."""

    Config = ToyConfig
    name = "toy"

    def __init__(self, config, info):
        super().__init__(config, info)
        self.w = nn.Parameter(torch.zeros(info.shape))
        self.seen_phases = []

    def configure_optimizers(self):
        return {"w": torch.optim.Adam([self.w], lr=0.1)}

    def graph_phase(self, iteration):
        return iteration % self.config.every

    def cuda_graph_blocker(self):
        return self.config.blocker

    def training_step(self, batch):
        self.seen_phases.append(self.iteration % self.config.every)
        loss = (self.w - batch.x).square().mean()
        if self.config.host_read and loss > 0:
            pass
        self.update("w", loss)
        return {"loss": loss.detach(), "xmean": batch.x.mean()}


def _toy(**kw):
    info = DataInfo("images", (1, 2, 2))
    m = Toy(ToyConfig(**kw), info)
    m.optimizers = m.configure_optimizers()
    return m


def _batches(n):
    g = torch.Generator().manual_seed(0)
    return [Batch(x=torch.rand(4, 1, 2, 2, generator=g)) for _ in range(n)]


def _run(runner, batches, mon):
    for i, b in enumerate(batches):
        runner(b, i)
    return mon.read()


def test_graphed_step_warms_up_captures_once_and_replays_on_static_buffers():
    batches = _batches(8)
    mon_e, mon_g = LossMonitor(8), LossMonitor(8)
    eager, graphed = _toy(), _toy()
    api = FakeGraphs()
    said = []
    runner = GraphedStep(graphed, mon_g, torch.device("cpu"), warmup=3, say=said.append, api=api)
    rows_g = _run(runner, batches, mon_g)
    rows_e = _run(EagerStep(eager, mon_e, torch.device("cpu")), batches, mon_e)
    assert said == [] and runner.reason is None
    assert api.captures == 1 and api.replays == 5 == runner.replays  # 3 warm-up, 1 capture + 5 replays
    assert api.synced_checks == 2  # warm-ups 2 and 3 run under the host-read check
    assert rows_g == rows_e  # each replay read the new batch through the static buffers
    assert [r[1]["xmean"] for r in rows_g] == [pytest.approx(float(b.x.mean())) for b in batches]
    assert torch.equal(graphed.w, eager.w)
    assert runner.static.x.data_ptr() == runner.static.x.data_ptr()
    with pytest.raises(ValueError, match=r"batch.x is \(2, 1, 2, 2\).*fixed shapes"):
        runner(Batch(x=torch.zeros(2, 1, 2, 2)), 8)
    with pytest.raises(ValueError, match=r"fields"):
        runner(Batch(x=torch.zeros(4, 1, 2, 2), y=torch.zeros(4, dtype=torch.long)), 8)


def test_the_eager_twin_never_captures():
    api = FakeGraphs()
    runner = GraphedStep(_toy(every=2), LossMonitor(8), torch.device("cpu"), capture=False, api=api)
    _run(runner, _batches(8), runner.monitor)
    assert api.captures == 0 and runner.replays == 0 and runner.eager_runs == {0: 4, 1: 4}


def test_one_graph_per_phase():
    api = FakeGraphs()
    m = _toy(every=3)
    mon = LossMonitor(16)
    runner = GraphedStep(m, mon, torch.device("cpu"), warmup=2, api=api)
    _run(runner, _batches(12), mon)
    assert sorted(runner.graphs) == [0, 1, 2] and api.captures == 3
    assert runner.eager_runs == {0: 2, 1: 1, 2: 1}  # the first phase warms up twice, the others once
    runner2 = GraphedStep(_toy(every=3), LossMonitor(16), torch.device("cpu"), max_phases=2, api=FakeGraphs())
    said = []
    runner2.say = said.append
    _run(runner2, _batches(12), runner2.monitor)
    assert runner2.reason and "more than 2 graph phases" in said[0]


def test_a_step_that_reads_the_host_falls_back_to_eager_with_one_line():
    said, api = [], FakeGraphs()
    m, ref = _toy(host_read=True), _toy(host_read=True)
    mon, mon_ref = LossMonitor(8), LossMonitor(8)
    runner = GraphedStep(m, mon, torch.device("cpu"), say=said.append, api=api)
    batches = _batches(6)
    rows = _run(runner, batches, mon)
    assert len(said) == 1 and said[0].startswith("cuda-graphs: toy runs eagerly: its training_step reads")
    assert "bool() in tests.test_graphs" in said[0] and "\n" not in said[0]
    assert api.captures == 0 and runner.reason is not None
    assert rows == _run(EagerStep(ref, mon_ref, torch.device("cpu")), batches, mon_ref)
    assert torch.equal(m.w, ref.w)  # nothing lost: the run is the eager run


def test_a_failed_capture_falls_back_and_runs_that_iteration_eagerly():
    said, api = [], FakeGraphs(fail=True)
    m, ref = _toy(), _toy()
    mon, mon_ref = LossMonitor(8), LossMonitor(8)
    runner = GraphedStep(m, mon, torch.device("cpu"), warmup=1, say=said.append, api=api)
    batches = _batches(4)
    assert _run(runner, batches, mon) == _run(EagerStep(ref, mon_ref, torch.device("cpu")), batches, mon_ref)
    assert said == [
        "cuda-graphs: toy runs eagerly: capture failed "
        "(RuntimeError: operation not permitted when stream is capturing)"
    ]
    assert torch.equal(m.w, ref.w)


def test_a_model_that_declares_a_blocker_runs_eagerly():
    said = []
    runner = GraphedStep(
        _toy(blocker="it draws from a CPU generator"),
        LossMonitor(4),
        torch.device("cpu"),
        say=said.append,
        api=FakeGraphs(),
    )
    assert said == ["cuda-graphs: toy runs eagerly: it draws from a CPU generator"]
    runner(_batches(1)[0], 0)
    assert runner.monitor.read()[0][0] == 1


def test_cuda_graphs_on_a_cpu_device_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"cuda_graphs=True \(--cuda-graphs\) needs a CUDA device"):
        train("wgan-gp", "ring8", str(tmp_path / "r"), 1, device="cpu", cuda_graphs=True, progress=False)
    assert not (tmp_path / "r").exists()


def test_cli_cuda_graphs_flag_on_cpu(tmp_path, capsys):
    from pygan.cli import main

    rc = main(["train", "wgan-gp", "--data", "ring8", "--steps", "1", "--out", str(tmp_path / "r"),
               "--device", "cpu", "--cuda-graphs"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "needs a CUDA device" in err[0]  # a bad flag: status 2
