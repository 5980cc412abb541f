"""The shared loss terms (pygan.models.losses), the eval-mode context and the network lookup every
model uses."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pygan.data import load_data
from pygan.models import build_model, eval_mode
from pygan.models import losses as L


def test_cross_entropy_forms_from_logits():
    logits = torch.tensor([-30.0, -2.0, 0.5, 3.0, 30.0], dtype=torch.float64)
    d = torch.sigmoid(logits)
    torch.testing.assert_close(L.bce_real(logits), -F.logsigmoid(logits).mean())
    torch.testing.assert_close(L.bce_fake(logits), -F.logsigmoid(-logits).mean())
    real, fake = logits[:3], logits[2:]
    torch.testing.assert_close(L.d_loss_bce(real, fake), L.bce_real(real) + L.bce_fake(fake))
    torch.testing.assert_close(L.g_loss_bce(logits[1:4]), -torch.log(d[1:4]).mean())
    torch.testing.assert_close(L.g_loss_saturating(logits[1:4]), torch.log(1 - d[1:4]).mean())
    # float32 at least: bf16 logits (autocast) give a float32 loss; float64 stays float64
    assert L.bce_real(logits.bfloat16()).dtype == torch.float32
    assert L.d_loss_bce(real, fake).dtype == torch.float64


def test_wasserstein_forms():
    real, fake = torch.randn(5), torch.randn(7)
    assert L.d_loss_wgan(real, fake).item() == (fake.mean() - real.mean()).item()
    assert L.g_loss_wgan(fake).item() == (-fake.mean()).item()


def test_kl_reductions_and_reparameterisation():
    g = torch.Generator().manual_seed(0)
    mu, lv = torch.randn(4, 3, 2, generator=g), torch.randn(4, 3, 2, generator=g)
    per = L.kl_normal(mu, lv, reduction="none")
    assert per.shape == (4,)
    torch.testing.assert_close(per, (0.5 * (mu**2 + lv.exp() - lv - 1)).flatten(1).sum(1))
    torch.testing.assert_close(L.kl_normal(mu, lv), per.mean())
    with pytest.raises(ValueError, match="reduction"):
        L.kl_normal(mu, lv, reduction="sum")
    eps = torch.randn(4, 3, 2, generator=g)
    torch.testing.assert_close(L.reparameterize(mu, lv, eps), mu + torch.exp(0.5 * lv) * eps)


def test_reconstruction_distances():
    a, b = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    assert L.l1(a, b).item() == (a - b).abs().mean().item()
    assert L.mse(a, b).item() == (a - b).square().mean().item()
    assert L.half_sq_sum(a, b).item() == pytest.approx(0.5 * ((a - b) ** 2).sum().item() / 3, rel=1e-6)


def test_eval_mode_restores_every_submodule_flag():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Sequential(nn.BatchNorm1d(2)))
    net[1].eval()  # mixed modes: restored as they were, not all set to the parent's
    other = nn.Linear(1, 1).eval()
    with eval_mode(net, other):
        assert not any(m.training for m in [*net.modules(), other])
    assert net.training and not net[1].training and net[2][0].training and not other.training
    with pytest.raises(RuntimeError), eval_mode(net):
        raise RuntimeError  # restored on errors too
    assert net.training and not net[1].training


def test_wrapped_picks_ddp_compiled_or_plain():
    data = load_data("ring8", "test")
    m = build_model("wgan-gp", data.info, ["mlp_hidden=8", "mlp_layers=1"])
    assert m.wrapped("critic") is m.critic and m.wrapped("critic", compiled=True) is m.critic
    ddp, fast = nn.Identity(), nn.Identity()
    m.distribute(lambda net: ddp if net is m.critic else net)
    assert m.wrapped("critic") is ddp and m.wrapped("critic", plain=True) is m.critic
    assert m.wrapped("critic", compiled=True) is ddp
    m._compiled_nets["critic"] = fast  # what compile_first_order("critic") stores
    assert m.wrapped("critic", compiled=True) is fast
    assert m.wrapped("critic", plain=True, compiled=True) is fast
    assert m.wrapped("critic") is ddp  # the penalty's pass (double backward) stays eager
    acl = build_model("acl-ae", load_data("square4", "test").info, [])
    assert acl.wrapped("acl.code_generator") is acl.acl.code_generator  # dotted names
