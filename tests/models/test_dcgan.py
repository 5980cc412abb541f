"""The DCGAN baseline (the ACL paper's "GAN"): defaults, shapes, one iteration checked against an
independent re-computation of the DCGAN losses, gradient isolation of the discriminator step."""

import copy

import pytest
import torch
import torch.nn.functional as F

from pygan.data import DataInfo, load_data
from pygan.models import build_model, get_model
from pygan.models.dcgan import DCGAN, DCGANConfig

IMG = DataInfo("images", (1, 16, 16), num_classes=10)


def test_registered_with_the_dcgan_paper_defaults():
    assert get_model("dcgan") is DCGAN
    c = DCGANConfig()
    assert (c.lr, c.betas, c.batch_size, c.width) == (2e-4, (0.5, 0.999), 128, 64)
    m = build_model("dcgan", IMG, ["width=4"])
    assert m.z_dim == 100
    assert any(isinstance(x, torch.nn.BatchNorm2d) for x in m.discriminator.modules())


@pytest.mark.parametrize("size", [16, 28, 32])
def test_shapes(size):
    m = build_model("dcgan", DataInfo("images", (3, size, size)), ["width=4"])
    x = m.sample(3, torch.Generator().manual_seed(0))
    assert x.shape == (3, 3, size, size) and x.abs().max() <= 1
    assert m.discriminator(x).shape == (3,)
    assert torch.equal(x, m.sample(3, torch.Generator().manual_seed(0)))  # eval-mode sampling, seeded


def test_points_and_bad_data():
    m = build_model("dcgan", DataInfo("points", (2,)), ["mlp_hidden=8"])
    assert m.z_dim == 2 and m.sample(5).shape == (5, 2)
    with pytest.raises(ValueError, match="trains on images or points data, got paired"):
        build_model("dcgan", DataInfo("paired", (1, 8, 8), (3, 8, 8)))
    with pytest.raises(ValueError, match="need an image side"):
        build_model("dcgan", DataInfo("images", (1, 25, 25)))
    with pytest.raises(ValueError, match="z_dim must be an int >= 1"):
        build_model("dcgan", IMG, ["z_dim=0"])


def test_one_iteration_is_the_dcgan_update():
    """Replays one iteration with plain torch (-log sigmoid / -log(1 - sigmoid) written out) on a
    deep copy: same RNG draw, D step then G step through the updated D; parameters must agree, and
    the generator's step must leave the discriminator's gradients as L_D left them."""
    torch.manual_seed(0)
    m = build_model("dcgan", IMG, ["width=4", "batch_size=6"])
    m.optimizers = m.configure_optimizers()
    ref = copy.deepcopy(m)
    c = ref.config
    opt_d = torch.optim.Adam(ref.discriminator.parameters(), lr=c.lr, betas=c.betas)
    opt_g = torch.optim.Adam(ref.generator.parameters(), lr=c.lr, betas=c.betas)
    batch = load_data("digits16").fixed(6)
    x = batch.x
    torch.manual_seed(5)
    logs = m.training_step(batch)
    torch.manual_seed(5)
    fake = ref.generator(torch.randn(6, 100))
    loss_d = -(
        F.logsigmoid(ref.discriminator(x)).mean() + F.logsigmoid(-ref.discriminator(fake.detach())).mean()
    )
    d_params = list(ref.discriminator.parameters())
    for p, g in zip(d_params, torch.autograd.grad(loss_d, d_params)):
        p.grad = g
    opt_d.step()
    loss_g = -F.logsigmoid(ref.discriminator(fake)).mean()
    g_params = list(ref.generator.parameters())
    for p, g in zip(g_params, torch.autograd.grad(loss_g, g_params)):
        p.grad = g
    opt_g.step()
    assert logs["loss_d"] == pytest.approx(loss_d.item(), rel=1e-5)
    assert logs["loss_g"] == pytest.approx(loss_g.item(), rel=1e-5)
    for (name, a), b in zip(m.named_parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    # the generator's step (last) added nothing to the discriminator's gradients: they are still
    # exactly those of L_D (D was frozen during L_G's backward)
    for (name, a), b in zip(m.discriminator.named_parameters(), d_params):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7, msg=name)
