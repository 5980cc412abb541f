"""UU-Nets (the UU-Nets paper) and their baselines: the G->D connections carry gradient exactly where the
variant connects, the g_in_d_step option, which loss updates which network, the VAE family's KL terms,
every paired data kind, the training loop (resume, eval, sample) and the CLI."""

import copy
import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from pygan.data import DataInfo, load_data
from pygan.data.core import Batch
from pygan.models import build_model, get_model, list_models
from pygan.models.losses import kl_normal
from pygan.models.uunet import (
    CONNECTIONS,
    G_IN_D_STEP,
    VARIANTS,
    Pix2PixConfig,
    UNetVAEGANConfig,
    UUNetConfig,
    UUVAEGANConfig,
    cross_kl,
    parse_connect,
    reconstruction_loss,
)
from tests.models.helpers import loss_floats

NAMES = ("pix2pix", "unet-vae-gan", "uunet", "uuvae-gan")
INFO = DataInfo("paired", (1, 16, 16), (3, 16, 16))
TINY = {"width": 4, "d_width": 4, "batch_size": 4}
EDGES = "photo-edges16?sources=sklearn&limit=16"


def build(name, info=INFO, **kw):
    m = build_model(name, info, {**TINY, **kw})
    m.optimizers = m.configure_optimizers()
    return m


def batch(n=4, seed=0, info=INFO):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *info.shape), generator=g) * 2 - 1
    y = torch.rand((n, *info.target_shape), generator=g) * 2 - 1
    return Batch(x=x, target=y)


def params(net):
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def same(net, snap):
    return all(torch.equal(v, snap[k]) for k, v in net.named_parameters())


def blocks_with_grad(net, loss):
    """The blocks ("down.1", "up.0", "mu", ...) of a U-Net whose parameters get a non-zero gradient."""
    names, ps = zip(*net.named_parameters())
    grads = torch.autograd.grad(loss, ps, allow_unused=True, retain_graph=True)
    out = set()
    for n, g in zip(names, grads):
        if g is not None and g.abs().sum() > 0:
            parts = n.split(".")
            out.add(".".join(parts[:2]) if parts[0] in ("down", "up", "out") else parts[0])
    return out


# ---- registry, defaults, config errors --------------------------------------------------------------


def test_registered_with_the_papers_defaults():
    assert set(NAMES) <= set(list_models())
    u, v, p, b = UUNetConfig(), UUVAEGANConfig(), Pix2PixConfig(), UNetVAEGANConfig()
    assert u.batch_size == v.batch_size == p.batch_size == 8  # §4.1: every Table 1 model, batch 8
    assert (u.rec_loss, u.rec_weight) == ("l2", 1.0) and (p.rec_loss, p.rec_weight) == ("l1", 100.0)
    assert (u.connect, u.g_in_d_step, u.tail) == ("v4", "cooperative", True)
    assert (v.kl_d, v.ckl, v.kl_alpha, v.kl_beta, v.tail) == (0.65, 1.0, 1.0, 1.0, True)
    assert (b.rec_loss, b.kl_g) == ("l2", 1.0)
    assert get_model("uunet").default_data == "photo-edges32"


def test_parse_connect():
    assert parse_connect("v1") == ("enc",) and parse_connect("V4") == ("enc", "dec")
    assert parse_connect("none") == () and parse_connect("uuc") == ("skip",)
    assert parse_connect("dec+enc+latent") == ("enc", "latent", "dec")
    assert set(CONNECTIONS) == {"enc", "latent", "dec", "skip"} and set(VARIANTS) >= {"v1", "v2", "v3", "v4"}
    for bad in ("v5", "enc+foo", "", "+"):
        with pytest.raises(ValueError, match="connect must be one of"):
            parse_connect(bad)
    with pytest.raises(TypeError, match="connect must be a string"):
        parse_connect(4)


@pytest.mark.parametrize(
    "name,kw,match",
    [
        ("uunet", {"connect": "v9"}, "connect must be one of"),
        ("uunet", {"g_in_d_step": "sometimes"}, "g_in_d_step must be one of"),
        ("uunet", {"rec_loss": "l3"}, "rec_loss must be 'l1' or 'l2'"),
        ("uunet", {"d_norm": "layer"}, "d_norm must be"),
        ("pix2pix", {"norm": "group"}, "norm must be"),
        ("pix2pix", {"d_layers": 3}, "leaves no patches at 16 px"),
        ("uunet", {"depth": 1}, "depth >= 2"),
        ("uunet", {"width": 0}, "width must be an int >= 1"),
        ("uuvae-gan", {"kl_alpha": 0.0, "kl_beta": 0.0}, "kl_alpha \\+ kl_beta must be > 0"),
        ("uuvae-gan", {"ckl": -1.0}, "ckl must be a finite number >= 0"),
        ("uuvae-gan", {"kl_fake_ramp": -2}, "kl_fake_ramp must be an int >= 0"),
        ("unet-vae-gan", {"kl_g": -1.0}, "kl_g must be a finite number >= 0"),
        ("uuvae-gan", {"z_channels": 0}, "z_channels must be an int >= 1"),
    ],
)
def test_bad_config(name, kw, match):
    with pytest.raises(ValueError, match=match):
        build(name, **kw)


@pytest.mark.parametrize("name", NAMES)
def test_bad_data(name):
    with pytest.raises(ValueError, match="trains on paired data, got images"):
        build_model(name, DataInfo("images", (1, 16, 16)))
    with pytest.raises(ValueError, match="same side"):
        build_model(name, DataInfo("paired", (1, 16, 16), (3, 32, 32)))
    with pytest.raises(ValueError, match="divisible by 2\\^depth"):
        build_model(name, DataInfo("paired", (1, 24, 24), (3, 24, 24)))
    m = build(name)
    with pytest.raises(ValueError, match=r"x must be \[N, 1, 16, 16\]"):
        m.translate(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="needs a batch"):
        m.sample(2)


@pytest.mark.parametrize("name", ["pix2pix", "uunet"])
@pytest.mark.parametrize("side,depth", [(1, 0), (2, 1)])
def test_tiny_pairs_are_refused_by_depth(name, side, depth):
    # depth None resolves to log2(side) (0 at 1 px, 1 at 2 px): the model's own message, not a TypeError
    with pytest.raises(ValueError, match=f"needs a U-Net depth >= 2 .* got depth {depth} for {side} px"):
        build_model(name, DataInfo("paired", (1, side, side), (3, side, side)))


# ---- networks and shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("tail", [True, False])
def test_uunet_shapes(variant, tail):
    m = build("uunet", connect=variant, tail=tail)
    b = batch()
    fake, gf = m.generate(m.generator, b.x)
    logits, df = m.discriminate(m.discriminator, b.x, b.target, gf)
    assert fake.shape == (4, 3, 16, 16) and fake.abs().max() <= 1
    # tail: one logit per image; without: a 1x1 conv to one logit per pixel
    assert logits.shape == ((4,) if tail else (4, 1, 16, 16))
    assert [t.shape[-1] for t in df["down"]] == [8, 4, 2, 1] and len(df["up"]) == 3
    s = m.sample(3, batch=b)
    assert s.shape == (3, 3, 16, 16) and s.abs().max() <= 1 and m.generator.training


def test_discriminator_is_a_unet_that_reads_g_maps_and_requires_them():
    m = build("uunet", connect="v4")
    d = m.discriminator
    ch = m.generator.channels  # (4, 8, 16, 32) at width 4, 16 px
    assert d.unet.extra_down == (0, ch[0], ch[1], ch[2])  # enc: G_enc^k beside D_enc^k
    assert d.unet.extra_up == (0, ch[2], ch[1], ch[0])  # dec: G_dec^k beside D_dec^k
    assert build("uunet", connect="v2").discriminator.unet.extra_up == (32, 0, 0, 0)
    assert build("uunet", connect="uuc").discriminator.unet.extra_up == (0, ch[2], ch[1], ch[0])
    assert build("uunet", connect="none").discriminator.unet.extra_up == (0, 0, 0, 0)
    with pytest.raises(ValueError, match="pass g_feats"):
        d(torch.zeros(1, 4, 16, 16))
    assert set(m.generator.parameters()).isdisjoint(set(m.discriminator.parameters()))


# ---- the connections carry D's gradient into G ------------------------------------------------------

# depth 4 at 16 px: G's blocks down.0-3 (down.3 = bottleneck), up.0-2, out.0
ENC = {"down.0", "down.1", "down.2"}
ALL_DOWN = {*ENC, "down.3"}
EXPECTED = {
    "none": set(),
    "v1": ENC,  # G_enc levels 0-2 -> D_enc
    "v2": ALL_DOWN,  # G's code (bottleneck) -> D's code
    "v3": ALL_DOWN | {"up.0", "up.1", "up.2"},  # G_dec -> D_dec
    "v4": ALL_DOWN | {"up.0", "up.1", "up.2"},
    "uuc": ENC,  # triple concatenation: G_enc -> D_dec
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_d_loss_reaches_g_exactly_through_the_connections(variant):
    """The carried maps are not detached: D's loss gives G's parameters a gradient in every connected
    variant, in exactly the blocks that produce the carried maps, and none in the unconnected control
    (the image D judges is detached; G's output layer never gets D's gradient)."""
    torch.manual_seed(0)
    m = build("uunet", connect=variant, dropout=0)
    b = batch()
    fake, gf = m.generate(m.generator, b.x)
    loss_d, _ = m.discriminator_loss(m.discriminator, b.x, b.target, fake, gf)
    assert blocks_with_grad(m.generator, loss_d) == EXPECTED[variant]
    assert "out.0" not in EXPECTED[variant]
    # G's own loss reaches G everywhere, and through the connections as well as through the image
    loss_g, _ = m.generator_loss(m.discriminator, b.x, b.target, fake, gf)
    assert "out.0" in blocks_with_grad(m.generator, loss_g)


@pytest.mark.parametrize("variant", ["v4", "none"])
@pytest.mark.parametrize("mode", G_IN_D_STEP)
def test_g_in_d_step_decides_whether_g_steps_in_ds_update(variant, mode):
    torch.manual_seed(0)
    m = build("uunet", connect=variant, g_in_d_step=mode)
    assert len(m.optimizers["discriminator"].param_groups) == (1 if mode == "none" else 2)
    b = batch()
    g0, d0 = params(m.generator), params(m.discriminator)
    fake, gf = m.generate(m.generator, b.x)
    loss_d, _ = m.discriminator_loss(m.discriminator, b.x, b.target, fake, gf)
    info = m.update_discriminator(loss_d)
    assert not same(m.discriminator, d0)
    moves = mode != "none" and variant != "none"
    assert same(m.generator, g0) != moves and info["g_moved"] == float(moves)
    assert (info["g_grad_norm"] > 0) == moves
    if mode == "none":
        assert all(p.grad is None for p in m.generator.parameters())


def test_adversarial_mode_steps_g_against_ds_loss():
    """cooperative descends D's loss with G's parameters, adversarial ascends it: Adam's first step
    moves G by the same amount in opposite directions (D identically)."""
    deltas = {}
    for mode in ("cooperative", "adversarial"):
        torch.manual_seed(0)
        m = build("uunet", connect="v4", g_in_d_step=mode, dropout=0)
        b = batch()
        g0, d0 = params(m.generator), params(m.discriminator)
        fake, gf = m.generate(m.generator, b.x)
        m.update_discriminator(m.discriminator_loss(m.discriminator, b.x, b.target, fake, gf)[0])
        deltas[mode] = (
            {k: v - g0[k] for k, v in m.generator.named_parameters()},
            {k: v - d0[k] for k, v in m.discriminator.named_parameters()},
        )
    (gc, dc), (ga, da) = deltas["cooperative"], deltas["adversarial"]
    assert any(v.abs().sum() > 0 for v in gc.values())
    for k in gc:
        torch.testing.assert_close(gc[k], -ga[k], atol=1e-6, rtol=0)
    for k in dc:
        torch.testing.assert_close(dc[k], da[k], atol=0, rtol=0)


# ---- which loss updates which network, over a whole training step -----------------------------------


def _instrument(m):
    """Records, at each optimizer step, the other network's parameters and gradients."""
    rec = {}

    def wrap(name, other, mine):
        opt = m.optimizers[name]
        orig = opt.step

        def step(*a, **k):
            rec[name] = {
                "other_grads": [None if p.grad is None else p.grad.clone() for p in other.parameters()],
                "mine_grads": [None if p.grad is None else p.grad.clone() for p in mine.parameters()],
                "other_before": params(other),
                "mine_before": params(mine),
            }
            out = orig(*a, **k)
            rec[name]["other_after"] = params(other)
            rec[name]["mine_after"] = params(mine)
            return out

        opt.step = step

    wrap("discriminator", m.generator, m.discriminator)
    wrap("generator", m.discriminator, m.generator)
    return rec


@pytest.mark.parametrize(
    "name,kw",
    [
        ("pix2pix", {}),
        ("unet-vae-gan", {}),
        ("uunet", {"g_in_d_step": "none"}),
        ("uunet", {"connect": "v2"}),
        ("uunet", {"connect": "none"}),
        ("uuvae-gan", {}),
        ("uuvae-gan", {"connect": "none", "g_in_d_step": "none"}),
    ],
)
def test_each_update_changes_only_the_networks_its_loss_may(name, kw):
    """D's update changes D (and G only where G steps with D by design); G's update runs with D
    frozen: D receives no gradient and keeps its parameters."""
    torch.manual_seed(0)
    m = build(name, **kw)
    rec = _instrument(m)
    loss_floats(m.training_step(batch()), finite=False)
    d, g = rec["discriminator"], rec["generator"]
    assert not any(torch.equal(v, d["mine_before"][k]) for k, v in d["mine_after"].items() if v.numel() > 1)
    g_steps_with_d = name.startswith("uu") and kw.get("g_in_d_step", "cooperative") != "none"
    g_reached = kw.get("connect", "v4") != "none" or (name == "uuvae-gan" and kw.get("ckl", 1.0) > 0)
    if not g_steps_with_d:
        assert all(x is None for x in d["other_grads"])
    moved = any(not torch.equal(v, d["other_before"][k]) for k, v in d["other_after"].items())
    assert moved == (g_steps_with_d and g_reached)
    # G's update: D frozen: G's loss adds no gradient to D's (what D's own update left), D unchanged
    for before, now in zip(d["mine_grads"], g["other_grads"]):
        assert (before is None and now is None) or torch.equal(before, now)
    assert all(torch.equal(v, g["other_before"][k]) for k, v in g["other_after"].items())
    assert all(torch.equal(v, g["other_before"][k]) for k, v in params(m.discriminator).items())
    assert any(not torch.equal(v, g["mine_before"][k]) for k, v in g["mine_after"].items())
    assert all(p.requires_grad for p in m.discriminator.parameters())  # frozen() restored the flags


def test_uunet_step_is_the_papers_objective_in_pix2pix_order():
    """An independent re-computation of one v4 / cooperative iteration with plain torch: D's update
    (D's and G's parameters in one Adam), G's pass recomputed, then G's update with D frozen."""
    torch.manual_seed(0)
    m = build("uunet", connect="v4", dropout=0)
    ref = copy.deepcopy(m)
    b = batch()
    logs = m.training_step(b)
    G, D, c = ref.generator, ref.discriminator, ref.config
    opt_d = torch.optim.Adam([*D.parameters(), *G.parameters()], lr=c.lr, betas=c.betas)
    opt_g = torch.optim.Adam(G.parameters(), lr=c.lr, betas=c.betas)
    x, y = b.x, b.target

    def bce(t, v):
        return F.binary_cross_entropy_with_logits(t, torch.full_like(t, v))

    fake, gf = G(x, return_features=True)
    loss_d = 0.5 * (
        bce(D(torch.cat([x, y], 1), gf)[0], 1.0) + bce(D(torch.cat([x, fake.detach()], 1), gf)[0], 0.0)
    )
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    fake, gf = G(x, return_features=True)
    D.requires_grad_(False)
    loss_g = bce(D(torch.cat([x, fake], 1), gf)[0], 1.0) + 0.5 * (fake - y).pow(2).sum() / len(x)
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    assert logs["loss_d"] == pytest.approx(loss_d.item(), rel=1e-5)
    assert logs["loss_g"] == pytest.approx(loss_g.item(), rel=1e-5)
    for (k, v), w in zip(m.state_dict().items(), ref.state_dict().values()):
        if v.is_floating_point():
            torch.testing.assert_close(v, w, rtol=1e-5, atol=1e-6, msg=k)


def test_g_pass_is_reused_when_g_did_not_move():
    """With g_in_d_step=none D's backward leaves G's graph intact and G's update reuses G's pass: same
    result as recomputing it."""
    torch.manual_seed(0)
    m = build("uunet", connect="v4", g_in_d_step="none", dropout=0)
    ref = copy.deepcopy(m)
    b = batch()
    m.training_step(b)
    fake, gf = ref.generate(ref.generator, b.x)
    ref.update_discriminator(ref.discriminator_loss(ref.discriminator, b.x, b.target, fake, gf)[0])
    fake, gf = ref.generate(ref.generator, b.x)  # recomputed (BN stats move once more: compare params)
    ref.discriminator.requires_grad_(False)
    ref.update("generator", ref.generator_loss(ref.discriminator, b.x, b.target, fake, gf)[0])
    for (k, v), w in zip(m.named_parameters(), ref.parameters()):
        torch.testing.assert_close(v, w, rtol=1e-5, atol=1e-6, msg=k)


def test_pix2pix_objective():
    torch.manual_seed(0)
    m = build("pix2pix", dropout=0)
    ref = copy.deepcopy(m)
    b = batch()
    logs = m.training_step(b)
    G, D = ref.generator, ref.discriminator
    x, y = b.x, b.target
    fake = G(x)
    pr, pf = D(torch.cat([x, y], 1)), D(torch.cat([x, fake.detach()], 1))
    loss_d = 0.5 * (F.softplus(-pr).mean() + F.softplus(pf).mean())
    ref.update("discriminator", loss_d)
    D.requires_grad_(False)
    loss_g = F.softplus(-D(torch.cat([x, fake], 1))).mean() + 100 * (fake - y).abs().mean()
    ref.update("generator", loss_g)
    assert D(torch.cat([x, y], 1)).shape == (4, 1, 2, 2)  # 2 PatchGAN layers at 16 px
    assert logs["loss_d"] == pytest.approx(loss_d.item(), rel=1e-5)
    assert logs["loss_g"] == pytest.approx(loss_g.item(), rel=1e-5)
    for (k, v), w in zip(m.named_parameters(), ref.parameters()):
        torch.testing.assert_close(v, w, rtol=1e-5, atol=1e-6, msg=k)


# ---- the VAE family ---------------------------------------------------------------------------------


def test_kl_formulas():
    g = torch.Generator().manual_seed(0)
    mu_d, lv_d, mu_g, lv_g = (torch.randn(5, 3, 2, 2, generator=g, dtype=torch.float64) for _ in range(4))
    N = torch.distributions.Normal
    kl0 = torch.distributions.kl_divergence(N(mu_g, (0.5 * lv_g).exp()), N(0.0, 1.0)).flatten(1).sum(1)
    torch.testing.assert_close(kl_normal(mu_g, lv_g, reduction="none"), kl0)
    # Eq. 5 as printed, per unit: log(s_G / s_D) + (s_D^2 + (mu_D - mu_G)^2) / (2 s_G^2) - 1/2
    s_d, s_g = (0.5 * lv_d).exp(), (0.5 * lv_g).exp()
    eq5 = (torch.log(s_g / s_d) + (s_d**2 + (mu_d - mu_g) ** 2) / (2 * s_g**2) - 0.5).flatten(1).sum(1)
    ckl = cross_kl(mu_d, lv_d, mu_g, lv_g)
    assert ckl.shape == (5,)
    torch.testing.assert_close(ckl, eq5)
    torch.testing.assert_close(
        ckl, torch.distributions.kl_divergence(N(mu_d, s_d), N(mu_g, s_g)).flatten(1).sum(1)
    )
    assert torch.allclose(cross_kl(mu_g, lv_g, mu_g, lv_g), torch.zeros(5, dtype=torch.float64))
    # the cross-KL couples the posteriors: its gradient reaches both
    ts = [t.clone().requires_grad_(True) for t in (mu_d, lv_d, mu_g, lv_g)]
    grads = torch.autograd.grad(cross_kl(*ts).sum(), ts)
    assert all(gr.abs().sum() > 0 for gr in grads)
    assert torch.autograd.gradcheck(cross_kl, tuple(ts))
    assert kl_normal(torch.zeros(2, 4), torch.zeros(2, 4), reduction="none").tolist() == [0.0, 0.0]
    assert (
        kl_normal(torch.zeros(2, 4, dtype=torch.bfloat16), torch.zeros(2, 4), reduction="none").dtype
        == torch.float32
    )
    with pytest.raises(ValueError, match="same shape"):
        cross_kl(mu_d, lv_d, mu_g[:2], lv_g)
    with pytest.raises(ValueError, match="same shape"):
        kl_normal(mu_d, lv_d[:1], reduction="none")


def test_reconstruction_losses():
    a, b = torch.rand(3, 2, 4, 4), torch.rand(3, 2, 4, 4)
    assert reconstruction_loss(a, b, "l2").item() == pytest.approx(
        0.5 * ((a - b) ** 2).sum().item() / 3, rel=1e-6
    )
    assert reconstruction_loss(a, b, "l1").item() == pytest.approx((a - b).abs().mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="shapes differ"):
        reconstruction_loss(a, b[:1], "l1")


@pytest.mark.parametrize("z", [None, 5])
def test_uuvae_posteriors_have_matching_shapes_and_the_kl_terms(z):
    torch.manual_seed(0)
    m = build("uuvae-gan", z_channels=z, kl_beta=0.0, g_in_d_step="none")
    b = batch()
    fake, gf = m.generate(m.generator, b.x)
    zc = z or m.generator.channels[-1]
    assert gf["mu"].shape == gf["logvar"].shape == (4, zc, 1, 1)
    loss_d, terms = m.discriminator_loss(m.discriminator, b.x, b.target, fake, gf)
    _, d_real = m.discriminate(m.discriminator, b.x, b.target, gf)
    _, d_fake = m.discriminate(m.discriminator, b.x, fake.detach(), gf)
    assert d_real["mu"].shape == gf["mu"].shape
    # beta = 0: Eq. 6 is D's KL on the real pair alone, weighted by lambda_dis = 0.65
    kl_real = kl_normal(d_real["mu"], d_real["logvar"], reduction="none").mean()
    assert terms["kl_d"].item() == pytest.approx(0.65 * kl_real.item(), rel=1e-5)
    ck = cross_kl(d_real["mu"], d_real["logvar"], gf["mu"], gf["logvar"]).mean()
    assert terms["ckl_d"].item() == pytest.approx(ck.item(), rel=1e-5)
    assert loss_d.item() == pytest.approx(sum(terms[k].item() for k in ("adv_d", "kl_d", "ckl_d")), rel=1e-5)
    _, tg = m.generator_loss(m.discriminator, b.x, b.target, fake, gf)
    assert tg["kl_g"].item() == pytest.approx(
        kl_normal(gf["mu"], gf["logvar"], reduction="none").mean().item(), rel=1e-5
    )
    ckg = cross_kl(d_fake["mu"], d_fake["logvar"], gf["mu"], gf["logvar"]).mean()
    assert tg["ckl_g"].item() == pytest.approx(ckg.item(), rel=1e-4)
    # alpha:beta mixes the real and fake KLs (Eq. 6)
    m.config = dataclasses.replace(m.config, kl_alpha=1.0, kl_beta=3.0)  # Configs are frozen
    kl_fake = kl_normal(d_fake["mu"], d_fake["logvar"], reduction="none").mean()
    _, t2 = m.discriminator_loss(m.discriminator, b.x, b.target, fake, gf)
    assert t2["kl_d"].item() == pytest.approx(0.65 * (kl_real + 3 * kl_fake).item() / 4, rel=1e-5)


def test_cross_kl_couples_g_and_d_posteriors_in_the_model():
    """Unconnected UUVAE-GAN: D's loss reaches G only through the cross-KL — G's encoder and its
    posterior convs, not its decoder; with ckl=0 not at all. G's cross-KL term reaches D's posterior
    (when D is not frozen) and G's."""
    for ckl, expect in ((1.0, ALL_DOWN | {"mu", "logvar"}), (0.0, set())):
        torch.manual_seed(0)
        m = build("uuvae-gan", connect="none", ckl=ckl, dropout=0)
        b = batch()
        fake, gf = m.generate(m.generator, b.x)
        loss_d, _ = m.discriminator_loss(m.discriminator, b.x, b.target, fake, gf)
        assert blocks_with_grad(m.generator, loss_d) == expect
    m = build("uuvae-gan", connect="none", dropout=0)
    fake, gf = m.generate(m.generator, batch().x)
    _, tg = m.generator_loss(m.discriminator, batch().x, batch().target, fake, gf)
    assert {"mu", "logvar"} <= blocks_with_grad(m.generator, tg["ckl_g"])
    d_blocks = blocks_with_grad(m.discriminator.unet, tg["ckl_g"])
    assert {"mu", "logvar"} <= d_blocks and not any(k.startswith("up") for k in d_blocks)


def test_beta_ramp_and_its_state_is_checkpointed():
    m = build("uuvae-gan", kl_fake_ramp=4, kl_beta=2.0)
    assert m.beta() == 0.0
    for _ in range(2):
        m.training_step(batch())
    assert m.beta() == pytest.approx(1.0) and int(m.state_dict()["steps_done"]) == 2
    m.steps_done.fill_(10)
    assert m.beta() == 2.0
    assert build("uuvae-gan", kl_beta=0.5).beta() == 0.5


# ---- data kinds, the loop, eval, CLI ----------------------------------------------------------------


@pytest.mark.parametrize("task", ["edges", "blur", "gray"])
def test_every_paired_photo_task(task):
    data = load_data(f"photo-{task}16?sources=sklearn&limit=8", "train")
    for name in NAMES:
        torch.manual_seed(0)
        m = build(name, info=data.info)
        loss_floats(m.training_step(data.batch(torch.arange(4))))
        out = m.translate(data.x[:5])
        assert out.shape == (5, *data.info.target_shape) and out.abs().max() <= 1
    assert m.translate(data.x[:0]).shape == (0, *data.info.target_shape)
    res = m.evaluate(data, torch.Generator().manual_seed(0))
    assert set(res) == {"mse", "psnr", "ssim"}


def test_train_resume_sample_and_eval(tmp_path):
    from pygan.cli import main
    from pygan.runs import run_paths
    from pygan.train import train

    kw = dict(progress=False, tensorboard=False, log_every=1, ckpt_every=2, sample_every=0, eval_every=2)
    over = ["width=4", "d_width=4", "batch_size=4", "kl_fake_ramp=3", "dropout=1"]
    a = train("uuvae-gan", EDGES, str(tmp_path / "a"), 4, overrides=over, **kw)
    train("uuvae-gan", EDGES, str(tmp_path / "b"), 2, overrides=over, **kw)
    b = train("uuvae-gan", EDGES, str(tmp_path / "b"), 4, overrides=over, resume=True, **kw)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    assert int(b.steps_done) == 4

    def rows(run):
        with open(run_paths(str(run))["metrics"]) as f:
            return [
                {k: v for k, v in json.loads(line).items() if k not in ("time", "img_per_s")} for line in f
            ]

    assert rows(tmp_path / "a") == rows(tmp_path / "b")
    assert any("eval/psnr" in r for r in rows(tmp_path / "a"))
    run = str(tmp_path / "a")
    assert main(["eval", run]) == 0
    with open(run_paths(run)["eval"]) as f:
        res = json.load(f)["metrics"]["translation"]
    assert {"mse", "psnr", "ssim"} <= set(res) and res["mse"] > 0
    out = str(tmp_path / "s.png")
    assert main(["sample", run, "--n", "2", "--out", out]) == 0


def test_cli_train_uunet(tmp_path, capsys):
    from pygan.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "uunet", "--help"])
    assert e.value.code == 0
    run = str(tmp_path / "u")
    args = [
        "train",
        "uunet",
        "--data",
        EDGES,
        "--steps",
        "2",
        "--out",
        run,
        "--no-progress",
        "--no-tensorboard",
    ]
    assert (
        main([*args, "--set", "width=4", "--set", "d_width=4", "--set", "connect=v2", "--set", "tail=false"])
        == 0
    )
    assert main(["train", "uunet", "--data", "digits16", "--steps", "1", "--out", str(tmp_path / "x")]) == 2
    assert "paired" in capsys.readouterr().err


def test_pix2pix_folder_pairs(tmp_path):
    """A local pix2pix-format folder (A|B side by side, train/ and test/), as for Facades."""
    import numpy as np
    from PIL import Image

    from pygan.evaluate import evaluate_run
    from pygan.train import train

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 3)):
        (tmp_path / "facades" / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (24, 48, 3), dtype=np.uint8)).save(
                tmp_path / "facades" / split / f"{i}.png"
            )
    spec = f"pix2pix:{tmp_path / 'facades'}?size=16"
    run = str(tmp_path / "run")
    m = train("uunet", spec, run, 2, overrides=["width=4", "d_width=4", "batch_size=2"], progress=False)
    assert m.info.shape == m.info.target_shape == (3, 16, 16)
    res = evaluate_run(run, metrics=["translation"])["metrics"]["translation"]
    assert res["mse"] > 0 and "ssim" in res
