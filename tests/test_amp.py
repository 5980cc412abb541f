"""Mixed precision: ``--amp bf16|fp16``, float16's gradient scaler in the models' updates, the gradient
penalty's scaled inner gradient (fp16 penalty = fp32 penalty within tolerance; without the scale a
small critic's gradients vanish in float16), checkpointed scaler state, and the CUDA-graph
fall-back (on the CPU stand-in of tests/test_graphs.py). CPU autocast supports float16, so all of
this runs here."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from pygan.amp import (
    amp_dtype,
    check_amp,
    current_grad_scaler,
    grad_scaling,
    make_grad_scaler,
    optimizer_step,
    scaled_backward,
    unscale_grads,
)
from pygan.graphs import GraphedStep, LossMonitor
from pygan.ops import gradient_penalty
from pygan.runs import load_checkpoint, run_paths
from pygan.train import TrainOptions, train
from tests.test_graphs import FakeGraphs, _toy


def test_amp_settings():
    assert [check_amp(v) for v in (False, None, "none", True, "bf16", "BF16", "fp16", "float16")] == [
        False, False, False, "bf16", "bf16", "bf16", "fp16", "fp16"
    ]  # fmt: skip
    assert (
        amp_dtype("fp16") is torch.float16 and amp_dtype(True) is torch.bfloat16 and amp_dtype(False) is None
    )
    for bad in ("fp8", 16, "yes please"):
        with pytest.raises(ValueError, match="amp must be"):
            check_amp(bad)
    with pytest.raises(ValueError, match="amp must be"):
        TrainOptions(steps=1, amp="fp32")
    assert TrainOptions(steps=1, amp=True).amp == "bf16"
    assert make_grad_scaler("bf16", torch.device("cpu")) is None
    assert isinstance(make_grad_scaler("fp16", torch.device("cpu")), torch.amp.GradScaler)


def _critic(scale: float = 1.0) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(8, 16, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 1),
    )

    class Critic(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x) * scale

    return Critic()


def _grads(m: nn.Module) -> list[torch.Tensor]:
    # the last layer's bias gets no gradient from a penalty (d score / d x does not depend on it)
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in m.parameters()]


def _inputs():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(16, 1, 16, 16, generator=g), torch.randn(16, 1, 16, 16, generator=g),
            torch.rand(16, generator=g))  # fmt: skip


@pytest.mark.parametrize("kind", ["wgan-gp", "one-sided", "r1"])
def test_fp16_penalty_equals_the_fp32_one(kind):
    """The penalty and the critic's parameter gradients under float16 autocast with the scaler's
    recipe (scaled inner gradient, scaled loss, unscale before reading) match float32."""
    real, fake, alpha = _inputs()
    critic = _critic()
    p32 = gradient_penalty(critic, real, fake, alpha=alpha, kind=kind)
    p32.backward()
    g32 = _grads(critic)

    critic.zero_grad()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**14)
    opt = torch.optim.SGD(critic.parameters(), lr=0.0)
    with grad_scaling(scaler):
        assert current_grad_scaler() is scaler
        with torch.autocast("cpu", dtype=torch.float16):
            assert critic(real).dtype == torch.float16  # the critic really runs in float16
            p16 = gradient_penalty(critic, real, fake, alpha=alpha, kind=kind)
        scaled_backward(p16)
        unscale_grads(opt)
    assert current_grad_scaler() is None
    torch.testing.assert_close(p16.float(), p32, rtol=5e-3, atol=1e-5)
    # per tensor, relative to its norm: float16 rounding (measured 5e-4 for the WGAN-GP penalties and
    # 1.3e-2 for R1's smaller gradients, the same with or without the scale; bf16 gives 1-3e-2)
    tol = 2.5e-2 if kind == "r1" else 2e-3
    for a, b in zip(g32, _grads(critic)):
        assert float((b - a).norm()) <= tol * float(a.norm()) + 1e-7


def test_without_the_scale_a_small_critics_fp16_gradients_vanish():
    """A critic with tiny input gradients (scores times 1e-6): in float16 they underflow to zero
    unless the inner gradient is scaled, which is why the penalty takes the scaler's scale."""
    real, fake, alpha = _inputs()
    critic = _critic(scale=1e-6)
    want = gradient_penalty(critic, real, fake, alpha=alpha, kind="r1")
    assert 1e-15 < float(want.detach()) < 1e-12
    with torch.autocast("cpu", dtype=torch.float16):
        plain = gradient_penalty(critic, real, fake, alpha=alpha, kind="r1")
        scaled = gradient_penalty(critic, real, fake, alpha=alpha, kind="r1", grad_scale=65536.0)
        with grad_scaling(torch.amp.GradScaler("cpu")):  # the loop's way: the scale from the scaler
            ambient = gradient_penalty(critic, real, fake, alpha=alpha, kind="r1")
    assert float(plain.detach()) < 0.5 * float(want.detach())  # lost to underflow
    torch.testing.assert_close(scaled.float(), want, rtol=2e-2, atol=0)
    torch.testing.assert_close(ambient, scaled)


def test_bad_grad_scale():
    real, fake, alpha = _inputs()
    with pytest.raises(TypeError, match="grad_scale"):
        gradient_penalty(_critic(), real, fake, alpha=alpha, grad_scale="big")


def test_optimizer_step_updates_the_scale_once_and_skips_on_overflow():
    w = nn.Parameter(torch.ones(3))
    v = nn.Parameter(torch.ones(3))
    opt_w, opt_v = torch.optim.SGD([w], lr=0.1), torch.optim.SGD([v], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=1)
    with grad_scaling(scaler):
        scaled_backward((w * v).sum())
        optimizer_step(opt_w, opt_v)  # one backward feeding two optimizers: both step, one update
        assert scaler.get_scale() == 16.0  # grown once (growth_interval=1), not twice
        torch.testing.assert_close(w.detach(), torch.full((3,), 0.9))  # unscaled gradient 1
        opt_w.zero_grad()
        scaled_backward((w * float("inf")).sum())
        optimizer_step(opt_w)
        assert scaler.get_scale() == 8.0  # backed off, step skipped
    torch.testing.assert_close(w.detach(), torch.full((3,), 0.9))
    # without a scaler the helpers are plain backward/step
    opt_w.zero_grad()
    scaled_backward(w.sum())
    optimizer_step(opt_w)
    torch.testing.assert_close(w.detach(), torch.full((3,), 0.8))


_SET = ["batch_size=8", "width=8", "n_critic=2"]


def test_fp16_training_runs_checkpoints_the_scaler_and_resumes_exactly(tmp_path, one_thread):
    kw = dict(overrides=_SET, amp="fp16", progress=False, tensorboard=False, sample_every=0, log_every=1)
    train("wgan-gp", "digits16", str(tmp_path / "full"), 4, **kw)
    train("wgan-gp", "digits16", str(tmp_path / "part"), 2, **kw)
    train("wgan-gp", "digits16", str(tmp_path / "part"), 4, resume=True, **kw)
    ck = load_checkpoint(run_paths(str(tmp_path / "full"))["last"])
    assert ck["grad_scaler"]["scale"] > 0
    assert ck["grad_scaler"] == load_checkpoint(run_paths(str(tmp_path / "part"))["last"])["grad_scaler"]

    def rows(run):
        with open(run_paths(str(run))["metrics"]) as f:
            return [{k: v for k, v in json.loads(x).items() if k not in ("time", "img_per_s")} for x in f]

    assert rows(tmp_path / "full") == rows(tmp_path / "part")
    cfg = json.load(open(run_paths(str(tmp_path / "full"))["config"]))
    assert cfg["train"]["amp"] == "fp16"


def test_cuda_graphs_with_fp16_runs_eagerly_with_one_line():
    said = []
    runner = GraphedStep(
        _toy(),
        LossMonitor(4),
        torch.device("cpu"),
        torch.float16,
        say=said.append,
        api=FakeGraphs(),
        scaler=torch.amp.GradScaler("cpu"),
    )
    assert len(said) == 1 and "--amp fp16 needs a GradScaler" in said[0] and "\n" not in said[0]
    assert runner.reason is not None


def test_cli_amp_flag(tmp_path):
    from pygan.cli import build_parser

    p = build_parser()
    base = ["train", "wgan-gp", "--steps", "1", "--out", str(tmp_path)]
    assert p.parse_args(base).amp is False
    assert p.parse_args([*base, "--amp"]).amp == "bf16"
    assert p.parse_args([*base, "--amp", "fp16"]).amp == "fp16"
    with pytest.raises(SystemExit):
        p.parse_args([*base, "--amp", "fp8"])
