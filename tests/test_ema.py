"""The generator EMA: the average against a hand computation, its config checks, which networks it
covers in every model, the loop (checkpoint, exact resume, sample grids, load_run with and without
it) and the CUDA-graph runner's step body (on the CPU stand-in of tests/test_graphs.py)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from pygan.data import load_data
from pygan.data.core import DataInfo
from pygan.graphs import EagerStep, GraphedStep, LossMonitor
from pygan.models import EMA, build_model, get_model, list_models
from pygan.runs import load_checkpoint, load_run, run_paths
from pygan.train import train
from tests._tiny import TINY
from tests.test_graphs import FakeGraphs, Toy, ToyConfig, _batches

# ---- the average ----------------------------------------------------------------------------------


class _Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.gen = nn.Linear(2, 2)
        self.critic = nn.Linear(2, 1)


def _set(net: nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(value)


@pytest.mark.parametrize("rampup", [0.0, 0.5])
def test_ema_equals_a_hand_computed_average_after_three_steps(rampup):
    m = _Two()
    _set(m.gen, 1.0)
    ema = EMA(m, ["gen"], decay=0.9, rampup=rampup)
    weights = [2.0, -4.0, 10.0]  # the parameters after each of three training steps
    for w in weights:
        _set(m.gen, w)
        ema.update()
    # by hand: e_0 = 1 (the copy at start); e <- b_t e + (1 - b_t) w_t
    if rampup == 0:
        betas = [0.9, 0.9, 0.9]
    else:  # b_t = min(0.9, 0.5 ** (1 / (0.5 t))): t = 0 -> 0, t = 1 -> 0.25, t = 2 -> 0.5
        betas = [0.0, 0.25, 0.5]
    e = 1.0
    for b, w in zip(betas, weights):
        e = b * e + (1 - b) * w
    expect = {0.0: 0.9**3 + 0.1 * (0.81 * 2 + 0.9 * -4 + 10), 0.5: 0.5 * (0.25 * 2 + 0.75 * -4) + 0.5 * 10}
    assert e == pytest.approx(expect[rampup])
    for p in ema.shadow:
        torch.testing.assert_close(p, torch.full_like(p, e))
    assert float(ema.updates) == 3
    assert len(ema.params) == 2 and all(k.startswith("gen.") for k in ema.keys)  # the critic is not averaged


def test_ramp_reaches_the_decay_and_stays_there():
    m = _Two()
    ema = EMA(m, ["gen"], decay=0.99, rampup=0.05)
    seen = []
    for t in range(0, 3000, 250):
        ema.updates.fill_(t)
        seen.append(float(ema.beta()))
    assert seen[0] == 0.0
    assert all(a <= b for a, b in itertools.pairwise(seen))
    # half-life of 0.99: ln 0.5 / ln 0.99 = 69 updates = 0.05 t at t = 1379
    assert seen[5] == pytest.approx(0.5 ** (1 / (0.05 * 1250)))
    assert seen[-1] == pytest.approx(0.99)


def test_applied_swaps_in_place_and_restores():
    m = _Two()
    _set(m.gen, 1.0)
    ema = EMA(m, ["gen"], decay=0.5, rampup=0.0)
    _set(m.gen, 3.0)
    ema.update()  # 0.5 * 1 + 0.5 * 3 = 2
    ptr = m.gen.weight.data_ptr()
    with ema.applied():
        assert torch.all(m.gen.weight == 2.0) and m.gen.weight.data_ptr() == ptr
    assert torch.all(m.gen.weight == 3.0)


def test_state_dict_round_trip_and_mismatch():
    m = _Two()
    ema = EMA(m, ["gen"], decay=0.9)
    _set(m.gen, 5.0)
    ema.update()
    ema.update()
    other = EMA(_Two(), ["gen"], decay=0.9)
    other.load_state_dict(ema.state_dict())
    assert float(other.updates) == 2
    for a, b in zip(ema.shadow, other.shadow):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="does not match"):
        EMA(m, ["critic"], decay=0.9).load_state_dict(ema.state_dict())


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5, float("nan"), True, "0.9"])
def test_ema_decay_outside_zero_one_is_a_value_error(decay):
    with pytest.raises(ValueError, match="ema_decay must be a number in \\[0, 1\\)"):
        EMA(_Two(), ["gen"], decay=decay)
    cls = get_model("wgan-gp")
    info = load_data("ring8").info
    with pytest.raises(ValueError, match="ema_decay"):
        cls(cls.Config(ema_decay=decay), info)


def test_ema_rampup_must_be_finite_and_non_negative():
    cls = get_model("wgan-gp")
    for bad in (-1.0, float("inf")):
        with pytest.raises(ValueError, match="ema_rampup"):
            cls(cls.Config(ema_decay=0.9, ema_rampup=bad), load_data("ring8").info)


def test_set_rejects_a_bad_decay_on_the_command_line(tmp_path, capsys):
    from pygan.cli import main

    rc = main(["train", "wgan-gp", "--data", "ring8", "--steps", "1", "--out", str(tmp_path / "r"),
               "--set", "ema_decay=1"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "ema_decay must be a finite number in [0, 1) (0: no EMA), got 1.0" in err


# ---- every model ----------------------------------------------------------------------------------

_CRITICS = ("critic", "discriminator", "code_discriminator", "z_discriminator", "discriminators")


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_model_averages_its_output_networks_and_no_critic(name):
    spec, overrides = TINY[name]
    cls = get_model(name)
    assert {"ema_decay", "ema_rampup"} <= {f.name for f in dataclasses.fields(cls.Config)}
    torch.manual_seed(0)
    model = build_model(name, load_data(spec).info, [*overrides, "ema_decay=0.99"])
    ema = model.make_ema()
    assert ema is not None and ema.names == tuple(model.output_networks())
    leaf_names = {k.split(".")[0] for k in ema.keys} | {k.split(".")[1] for k in ema.keys if "." in k}
    assert not leaf_names & set(_CRITICS), ema.keys
    own = dict(model.named_parameters())
    assert all(own[k] is p for k, p in zip(ema.keys, ema.params))


def test_no_ema_without_a_decay():
    model = build_model("wgan-gp", load_data("ring8").info)
    assert model.make_ema() is None and model.ema is None


def test_every_registered_model_is_covered():
    assert set(list_models()) - {"test-paired", "test-two-domain"} <= set(TINY)


# ---- the loop -------------------------------------------------------------------------------------

_SET = ["batch_size=8", "width=8", "n_critic=2", "ema_decay=0.9", "ema_rampup=0.5"]


def _train(out, steps, **kw):
    kw.setdefault("overrides", _SET)
    return train("wgan-gp", "digits16", str(out), steps, progress=False, tensorboard=False, **kw)


def _ema_from_ckpt(run):
    return load_checkpoint(run_paths(str(run))["last"])["ema"]


def test_the_loop_checkpoints_the_ema_and_resumes_it_exactly(tmp_path, one_thread):
    full = _train(tmp_path / "full", 6, sample_every=0)
    _train(tmp_path / "part", 3, sample_every=0)
    _train(tmp_path / "part", 6, sample_every=0, resume=True)
    a, b = _ema_from_ckpt(tmp_path / "full"), _ema_from_ckpt(tmp_path / "part")
    assert float(a["updates"]) == float(b["updates"]) == 6
    for k in a["params"]:
        assert torch.equal(a["params"][k], b["params"][k]), k
    assert full.ema is not None and float(full.ema.updates) == 6
    # the EMA differs from the trained weights (it is an average, not a copy)
    raw = full.state_dict()
    assert any(not torch.equal(raw[k].cpu(), v) for k, v in a["params"].items())


def test_load_run_uses_the_ema_by_default_and_raw_weights_on_request(tmp_path, one_thread):
    _train(tmp_path / "r", 4, sample_every=0)
    ckpt = load_checkpoint(run_paths(str(tmp_path / "r"))["last"])
    m_ema, _, _ = load_run(str(tmp_path / "r"))
    m_raw, _, _ = load_run(str(tmp_path / "r"), ema=False)
    assert (m_ema.weights, m_raw.weights) == ("ema", "raw")
    sd_ema, sd_raw = m_ema.state_dict(), m_raw.state_dict()
    for k, v in ckpt["ema"]["params"].items():
        assert torch.equal(sd_ema[k], v) and torch.equal(sd_raw[k], ckpt["model"][k])
    for k in sd_raw:  # everything outside the generator is the trained state in both
        if k not in ckpt["ema"]["params"]:
            assert torch.equal(sd_ema[k], sd_raw[k]), k
    g = torch.Generator().manual_seed(0)
    assert not torch.equal(
        m_ema.sample(4, generator=g), m_raw.sample(4, generator=torch.Generator().manual_seed(0))
    )


def test_sample_grids_show_the_ema_weights(tmp_path, one_thread):
    from PIL import Image

    from pygan.train import _derived_seed, render_samples

    _train(tmp_path / "r", 4, sample_every=0, n_samples=8)
    model, _, data = load_run(str(tmp_path / "r"))  # EMA weights
    g = torch.Generator().manual_seed(_derived_seed(0, 2))
    render_samples(model, str(tmp_path / "ema.png"), 8, g, data.load("test").fixed(8))
    grid = np.asarray(Image.open(run_paths(str(tmp_path / "r"))["samples"] + "/last.png"))
    assert np.array_equal(grid, np.asarray(Image.open(tmp_path / "ema.png")))


def test_a_run_without_ema_loads_raw(tmp_path, one_thread):
    _train(tmp_path / "r", 2, sample_every=0, overrides=["batch_size=8", "width=8", "n_critic=2"])
    assert "ema" not in load_checkpoint(run_paths(str(tmp_path / "r"))["last"])
    assert load_run(str(tmp_path / "r"))[0].weights == "raw"
    cfg = json.load(open(run_paths(str(tmp_path / "r"))["config"]))
    assert cfg["model_config"]["ema_decay"] == 0.0


# ---- the step runners -----------------------------------------------------------------------------


@dataclasses.dataclass
class EmaToyConfig(ToyConfig):
    ema_decay: float = 0.8
    ema_rampup: float = 0.5


class EmaToy(Toy):
    Config = EmaToyConfig
    generator_networks = ("",)  # the toy's own parameter: the whole module

    def output_networks(self):
        return [""]


def _ema_toy():
    m = EmaToy(EmaToyConfig(), DataInfo("images", (1, 2, 2)))
    m.optimizers = m.configure_optimizers()
    m.make_ema()
    return m


def test_the_graphed_runner_updates_the_ema_in_its_step_body_like_the_eager_one():
    batches = _batches(7)
    eager, graphed = _ema_toy(), _ema_toy()
    api = FakeGraphs()
    runner = GraphedStep(graphed, LossMonitor(8), torch.device("cpu"), warmup=2, api=api)
    for i, b in enumerate(batches):
        runner(b, i)
    er = EagerStep(eager, LossMonitor(8), torch.device("cpu"))
    for i, b in enumerate(batches):
        er(b, i)
    assert api.captures == 1 and runner.replays == 5  # 2 warm-ups, capture + 5 replays
    assert float(graphed.ema.updates) == float(eager.ema.updates) == 7
    assert torch.equal(graphed.ema.shadow[0], eager.ema.shadow[0])
    assert not torch.equal(eager.ema.shadow[0], eager.w)
    # and by hand: the EMA of the weights the steps produced
    ref = _ema_toy()
    e = ref.w.detach().clone()
    for t, b in enumerate(batches):
        ref.iteration = t
        ref.training_step(b)
        beta = min(0.8, 0.5 ** (1 / (0.5 * t))) if t else 0.0
        e = beta * e + (1 - beta) * ref.w.detach()
    torch.testing.assert_close(eager.ema.shadow[0], e, rtol=1e-6, atol=1e-7)
    assert math.isclose(float(eager.ema.beta()), min(0.8, 0.5 ** (1 / 3.5)))
