"""The model registry, typed --set overrides, and the WGAN-GP baseline: shapes, the paper's defaults,
the loss it optimises (checked against an independent re-computation), gradient isolation."""

import copy
import dataclasses

import pytest
import torch

from pygan.data import DataInfo, load_data
from pygan.models import (
    MODELS,
    Model,
    as_floats,
    build_model,
    config_from_dict,
    config_to_dict,
    frozen,
    get_model,
    list_models,
    parse_overrides,
    register,
)
from pygan.models.wgan_gp import WGANGP, WGANGPConfig, conv_plan
from pygan.ops import gradient_penalty_ref
from tests.models.helpers import record_updates

pytestmark = pytest.mark.usefixtures("one_thread")


IMG = DataInfo("images", (1, 16, 16), num_classes=10)


def test_registry():
    assert "wgan-gp" in list_models() and get_model("wgan-gp") is WGANGP and WGANGP.name == "wgan-gp"
    with pytest.raises(ValueError, match="unknown model 'nope'; registered models"):
        get_model("nope")
    with pytest.raises(TypeError, match="Model subclass"):
        register("x")(object)

    class NoCfg(Model):
        Config = int

    with pytest.raises(TypeError, match="must be a dataclass"):
        register("nocfg")(NoCfg)
    with pytest.raises(ValueError, match="already registered"):

        @register("wgan-gp")
        class Other(WGANGP):
            pass

    assert MODELS["wgan-gp"] is WGANGP


def test_paper_defaults():
    c = WGANGPConfig()
    assert (c.lr, c.betas, c.n_critic, c.gp_weight, c.batch_size) == (1e-4, (0.0, 0.9), 5, 10.0, 64)
    assert c.critic_norm == "none"


def test_overrides_are_typed_from_the_dataclass():
    got = parse_overrides(
        WGANGPConfig,
        ["lr=2e-4", "betas=0.5,0.999", "g_batchnorm=false", "z_dim=none", "gp_kind=one-sided", "n_critic=3"],
    )
    assert got == {
        "lr": 2e-4,
        "betas": (0.5, 0.999),
        "g_batchnorm": False,
        "z_dim": None,
        "gp_kind": "one-sided",
        "n_critic": 3,
    }
    assert parse_overrides(WGANGPConfig, ["z_dim=7"]) == {"z_dim": 7}
    with pytest.raises(ValueError, match="has no field 'lrate'"):
        parse_overrides(WGANGPConfig, ["lrate=1"])
    with pytest.raises(ValueError, match=r"--set n_critic='2.5': expected int"):
        parse_overrides(WGANGPConfig, ["n_critic=2.5"])
    with pytest.raises(ValueError, match=r"--set betas='1': expected"):
        parse_overrides(WGANGPConfig, ["betas=1"])
    with pytest.raises(ValueError, match="expects key=value"):
        parse_overrides(WGANGPConfig, ["lr"])
    with pytest.raises(ValueError, match="g_batchnorm='maybe'"):
        parse_overrides(WGANGPConfig, ["g_batchnorm=maybe"])


def test_config_dict_roundtrip():
    c = WGANGPConfig(betas=(0.5, 0.99), z_dim=12)
    assert config_from_dict(WGANGPConfig, config_to_dict(c)) == c
    with pytest.raises(ValueError, match="no field"):
        config_from_dict(WGANGPConfig, {"bogus": 1})


@pytest.mark.parametrize(
    ("size", "plan"), [(16, (4, 2)), (28, (7, 2)), (32, (4, 3)), (64, (4, 4)), (48, (3, 4))]
)
def test_conv_nets_for_sizes(size, plan):
    assert conv_plan(size) == plan
    m = build_model("wgan-gp", DataInfo("images", (3, size, size)), ["width=4", "batch_size=2"])
    x = m.sample(3)
    assert x.shape == (3, 3, size, size) and x.abs().max() <= 1
    assert m.critic(x).shape == (3,)
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.critic.modules())


def test_bad_data_for_wgan_gp():
    with pytest.raises(ValueError, match="need an image side"):
        build_model("wgan-gp", DataInfo("images", (1, 25, 25)))
    with pytest.raises(ValueError, match="trains on images or points data, got paired"):
        build_model("wgan-gp", DataInfo("paired", (1, 8, 8), (3, 8, 8)))
    with pytest.raises(ValueError, match="critic_norm"):
        build_model("wgan-gp", IMG, ["critic_norm=batch"])


def test_points_nets():
    m = build_model("wgan-gp", DataInfo("points", (2,)), ["mlp_hidden=8"])
    assert m.z_dim == 2 and m.sample(5).shape == (5, 2)
    assert sum(isinstance(x, torch.nn.Linear) for x in m.generator.modules()) == 4


def _replay_wgan_step(m: WGANGP, batch_x: torch.Tensor):
    """An independent re-computation of one WGAN-GP iteration (Gulrajani et al.'s Algorithm 1) with
    plain torch and the pure reference penalty, consuming the global RNG in the same order as the model."""
    c = m.config
    opt_d = torch.optim.Adam(m.critic.parameters(), lr=c.lr, betas=c.betas)
    opt_g = torch.optim.Adam(m.generator.parameters(), lr=c.lr, betas=c.betas)
    for real in batch_x.chunk(c.n_critic):
        with torch.no_grad():
            fake = m.generator(torch.randn(len(real), m.z_dim))
        alpha = torch.rand(len(real))
        x_hat = (real + alpha.view(-1, 1, 1, 1) * (fake - real)).requires_grad_(True)
        (g,) = torch.autograd.grad(m.critic(x_hat).sum(), x_hat, create_graph=True)
        gp = c.gp_weight * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
        loss_d = m.critic(fake).mean() - m.critic(real).mean() + gp
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
    z = torch.randn(len(batch_x) // c.n_critic, m.z_dim)
    loss_g = -m.critic(m.generator(z)).mean()
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()


def test_training_step_implements_the_wgan_gp_objective():
    data = load_data("digits16")
    torch.manual_seed(0)
    m = build_model("wgan-gp", data.info, ["width=4", "batch_size=4", "n_critic=2", "z_dim=8"])
    m.optimizers = m.configure_optimizers()
    twin = copy.deepcopy(m)
    batch = data.batch(torch.arange(8))
    torch.manual_seed(1)
    logs = m.training_step(batch)
    torch.manual_seed(1)
    _, loss_g = _replay_wgan_step(twin, batch.x)
    assert set(logs) == {"loss_d", "wdist", "gp", "loss_g"}
    assert logs["loss_g"] == pytest.approx(loss_g, rel=1e-5, abs=1e-6)
    for (name, p), q in zip(m.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
    for (name, b), q in zip(m.named_buffers(), twin.buffers()):
        torch.testing.assert_close(b, q, rtol=1e-5, atol=1e-6, msg=name)
    # the gradient penalty term really is the reference's
    real, fake = batch.x[:4], m.sample(4)
    alpha = torch.rand(4)
    from pygan.ops import gradient_penalty

    torch.testing.assert_close(
        gradient_penalty(m.critic, real, fake, alpha=alpha),
        gradient_penalty_ref(m.critic, real, fake, alpha=alpha),
    )


def test_gradient_isolation():
    """The critic's updates never touch the generator; the generator's update leaves the critic's
    gradients and weights alone."""
    data = load_data("digits16")
    torch.manual_seed(0)
    m = build_model("wgan-gp", data.info, ["width=4", "batch_size=4", "n_critic=2"])
    m.optimizers = m.configure_optimizers()
    seen = record_updates(m)
    m.training_step(data.batch(torch.arange(8)))
    assert [s[0] for s in seen] == ["critic", "critic", "generator"]
    for name, before, after in seen:
        other = "generator." if name == "critic" else "critic."
        for n, (w1, g1) in after.items():
            w0, g0 = before[n]
            if n.startswith(other):
                assert torch.equal(w1, w0), f"{name} update changed {n}"
                same = (g1 is None and g0 is None) or (
                    g1 is not None and g0 is not None and torch.equal(g1, g0)
                )
                assert same, f"{name} update touched the gradient of {n}"
            elif n.endswith("weight"):
                assert not torch.equal(w1, w0), f"{name} update left {n} unchanged"
    assert all(p.requires_grad for p in m.critic.parameters())  # frozen() restored the flags


def test_frozen_restores_flags():
    lin = torch.nn.Linear(2, 2)
    lin.bias.requires_grad_(False)
    with frozen(lin):
        assert not any(p.requires_grad for p in lin.parameters())
    assert lin.weight.requires_grad and not lin.bias.requires_grad


def test_evaluate_and_sample_do_not_touch_global_rng_or_bn_stats():
    data = load_data("ring8", "test")
    m = build_model("wgan-gp", data.info, ["mlp_hidden=16", "mlp_layers=2"])
    state = torch.get_rng_state()
    out = m.evaluate(data, torch.Generator().manual_seed(0))
    assert set(out) == {"wdist", "modes", "modes_total", "high_quality"} and out["modes_total"] == 8
    assert torch.equal(torch.get_rng_state(), state)
    img = build_model("wgan-gp", IMG, ["width=4"])
    bn = copy.deepcopy(dict(img.generator.named_buffers()))
    a = img.sample(4, torch.Generator().manual_seed(3))
    b = img.sample(4, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and img.generator.training
    for k, v in img.generator.named_buffers():
        assert torch.equal(v, bn[k])


def test_config_is_a_dataclass_with_batch_size():
    for name in list_models():
        cls = get_model(name)
        assert dataclasses.is_dataclass(cls.Config) and "batch_size" in {
            f.name for f in dataclasses.fields(cls.Config)
        }


@pytest.mark.slow
def test_compiled_networks_match_eager():
    """--compile: the generator and the critic's first-order passes compiled, the penalty eager."""
    data = load_data("ring8")
    logs = {}
    for mode in ("eager", "compile"):
        torch.manual_seed(0)
        m = build_model("wgan-gp", data.info, ["mlp_hidden=8", "batch_size=8", "n_critic=2"])
        m.optimizers = m.configure_optimizers()
        if mode == "compile":
            assert m.compile_networks() == ["generator", "critic (first-order passes)"]
        logs[mode] = [
            as_floats(m.training_step(data.batch(torch.arange(16 * i, 16 * i + 16)))) for i in range(2)
        ]
    for a, b in zip(logs["eager"], logs["compile"]):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
