"""ACL (the ACL paper): the module on its own and attached to a user's encoder/decoder, the four models'
defaults and shapes, which network each step of Algorithm 1 updates (the others unchanged, with no
gradient), one ACL-GAN / ACL-GAN-GP iteration replayed with plain torch, the square4 toy data, the
training loop, pygan eval and the CLI."""

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pygan.data import DataInfo, load_data
from pygan.data.core import Batch
from pygan.models import build_model, get_model
from pygan.models.acl import (
    ACL,
    ACLAE,
    ACLGAN,
    ACLGANGP,
    ACLSGAN,
    ACLAEConfig,
    ACLGANConfig,
    ACLGANGPConfig,
    MixturePrior,
    NormalPrior,
)
from pygan.models.dcgan import DCGANConfig
from pygan.models.wgan_gp import WGANGPConfig
from pygan.ops import gradient_penalty_ref
from tests.models.helpers import loss_floats

IMG = DataInfo("images", (1, 16, 16), num_classes=10)
PTS = DataInfo("points", (2,), meta={"centers": [[-2, -2], [-2, 2], [2, -2], [2, 2]], "std": 0.1})
TINY = ["width=4", "batch_size=6", "acl_hidden=8"]


@pytest.fixture(scope="module")
def digits():
    return load_data("digits16")


def _model(name, info=IMG, extra=(), seed=0):
    torch.manual_seed(seed)
    m = build_model(name, info, [*TINY, *extra] if info is IMG else list(extra))
    m.optimizers = m.configure_optimizers()
    return m


# ---- snapshots: which networks a step changed / gave a gradient ----------------------------------


def _groups(m):
    if isinstance(m, ACLAE):
        nets = {"encoder": m.encoder, "decoder": m.decoder}
    else:
        nets = {m.inference_net: getattr(m, m.inference_net), "generator": m.generator}
        nets["discriminator"] = m.discriminator
    nets["code_generator"] = m.acl.code_generator
    nets["code_discriminator"] = m.acl.code_discriminator
    return nets


def _clear_grads(m):
    for p in m.parameters():
        p.grad = None


def _snapshot(m):
    return {k: [p.detach().clone() for p in net.parameters()] for k, net in _groups(m).items()}


def _changed(m, before):
    """Names of the networks whose parameters changed, and of those holding any gradient."""
    changed, with_grad = set(), set()
    for k, net in _groups(m).items():
        ps = list(net.parameters())
        if any(not torch.equal(p, q) for p, q in zip(ps, before[k])):
            changed.add(k)
        if any(p.grad is not None for p in ps):
            with_grad.add(k)
    return changed, with_grad


def _run(m, fn):
    _clear_grads(m)
    before = _snapshot(m)
    out = fn()
    return _changed(m, before), out


def _backward_counts(m, fn):
    """How many backward passes reached each network's parameters while ``fn`` ran (parameter
    hooks; the most over the network's parameters)."""
    counts = {k: {} for k in _groups(m)}
    handles = []
    for k, net in _groups(m).items():
        for i, p in enumerate(net.parameters()):

            def hook(g, k=k, i=i):
                counts[k][i] = counts[k].get(i, 0) + 1

            handles.append(p.register_hook(hook))
    try:
        fn()
    finally:
        for h in handles:
            h.remove()
    return {k: max(v.values(), default=0) for k, v in counts.items()}


# ---- the module ------------------------------------------------------------------------------------


def test_module_is_two_2_layer_mlps_and_a_prior():
    acl = ACL(code_dim=5, hidden=7)
    linear = [x for x in acl.code_generator.modules() if isinstance(x, nn.Linear)]
    assert [(x.in_features, x.out_features) for x in linear] == [(5, 7), (7, 5)]  # d_z = d_c
    linear = [x for x in acl.code_discriminator.modules() if isinstance(x, nn.Linear)]
    assert [(x.in_features, x.out_features) for x in linear] == [(5, 7), (7, 1)]
    assert any(isinstance(x, nn.LeakyReLU) and x.negative_slope == 0.2 for x in acl.code_discriminator)
    assert isinstance(acl.prior, NormalPrior) and acl.z_dim == 5
    assert acl.generate(4).shape == (4, 5) and acl.score(torch.zeros(3, 5)).shape == (3,)
    assert ACL(code_dim=5, z_dim=3).code_generator[0].in_features == 3


def test_module_bad_arguments():
    with pytest.raises(ValueError, match="code_dim must be a positive int"):
        ACL(code_dim=0)
    with pytest.raises(ValueError, match="prior must be 'normal'"):
        ACL(code_dim=2, prior="uniform")
    with pytest.raises(TypeError, match=r"prior must be 'normal' or an nn\.Module"):
        ACL(code_dim=2, prior=object())
    with pytest.raises(ValueError, match="does not match the prior's dim 2"):
        ACL(code_dim=2, z_dim=3, prior=MixturePrior([[0.0, 1.0]], 0.1))
    acl = ACL(code_dim=3, hidden=4)
    opts = acl.configure_optimizers()
    with pytest.raises(ValueError, match=r"real_codes must be \[B, 3\] codes, got shape \(4, 2\)"):
        acl.step(torch.zeros(4, 2), opts)
    with pytest.raises(TypeError, match="real_codes must be a floating tensor"):
        acl.step(torch.zeros(4, 3, dtype=torch.long), opts)
    with pytest.raises(ValueError, match=r"optimizers lacks \['code_discriminator'\]"):
        acl.step(torch.zeros(4, 3), {"code_generator": opts["code_generator"]})
    with pytest.raises(ValueError, match="g_steps must be a positive int"):
        acl.step(torch.zeros(4, 3), opts, g_steps=0)
    with pytest.raises(ValueError, match="centres must be"):
        MixturePrior([1.0, 2.0], 0.1)
    with pytest.raises(ValueError, match="std must be a positive number"):
        MixturePrior([[1.0, 2.0]], 0.0)


def test_mixture_prior_draws_around_its_centres():
    centres = torch.tensor([[-2.0, -2.0], [2.0, 2.0], [2.0, -2.0]])
    p = MixturePrior(centres, 0.05)
    z = p.sample(3000, torch.Generator().manual_seed(0))
    d, k = torch.cdist(z, centres).min(1)
    assert z.shape == (3000, 2) and bool((d < 0.3).all())
    assert torch.bincount(k, minlength=3).min() > 900  # equal weights
    assert torch.equal(z, p.sample(3000, torch.Generator().manual_seed(0)))


def test_step_updates_only_the_code_networks():
    acl = ACL(code_dim=3, hidden=8)
    opts = acl.configure_optimizers()
    gz0 = [p.clone() for p in acl.code_generator.parameters()]
    dc0 = [p.clone() for p in acl.code_discriminator.parameters()]
    real = torch.randn(16, 3, requires_grad=True)  # a code with a graph behind it: must get no grad
    calls = {"gz": 0, "dc": 0}
    for p in acl.code_generator.parameters():
        p.register_hook(lambda g: calls.__setitem__("gz", calls["gz"] + 1))
    for p in acl.code_discriminator.parameters():
        p.register_hook(lambda g: calls.__setitem__("dc", calls["dc"] + 1))
    logs = acl.step(real, opts, g_steps=2)
    n_gz, n_dc = len(list(acl.code_generator.parameters())), len(list(acl.code_discriminator.parameters()))
    assert calls == {"gz": 2 * n_gz, "dc": n_dc}  # D_c: its own loss only (frozen for G_z's two steps)
    assert real.grad is None
    assert set(logs) == {"loss_dc", "loss_gz", "dc_real", "dc_fake"}
    assert all(not torch.equal(a, b) for a, b in zip(gz0, acl.code_generator.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(dc0, acl.code_discriminator.parameters()))
    assert all(p.requires_grad for p in acl.code_discriminator.parameters())  # unfrozen again


class UserEncoder(nn.Module):
    """A user's own inference net: R^6 -> R^2 (nothing from pygan)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, x):
        return self.net(x)


class UserDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 6))

    def forward(self, c):
        return self.net(c)


def test_attaches_to_a_user_defined_encoder_decoder_and_learns_their_codes():
    """The docstring's recipe on a user's pair: the code generator learns the encoder's (fixed)
    code distribution from N(0, I) noise, the encoder is never touched, samples are decoder(G_z(z))."""
    from pygan.metrics.frechet import frechet_distance, gaussian_stats

    torch.manual_seed(0)
    enc, dec = UserEncoder(), UserDecoder()
    data = torch.randn(4096, 6) * 0.3 + torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, -1.0])
    acl = ACL(code_dim=2, hidden=32)
    pair = acl.attach(enc, dec)
    opts = acl.configure_optimizers(lr=2e-3)
    enc0 = copy.deepcopy(enc.state_dict())
    target = pair.codes(data[:2048])

    def fd():
        with torch.no_grad():
            return frechet_distance(
                *gaussian_stats(target.double()), *gaussian_stats(acl.generate(2048).double())
            )

    start = fd()
    for i in range(300):
        logs = pair.step(data[(i * 128) % 4096 :][:128], opts)
    end = fd()
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in enc0.items())  # E fixed
    assert all(p.grad is None for p in enc.parameters())
    assert end < 0.1 * start and end < 0.05, (start, end, logs)
    x = pair.sample(7, torch.Generator().manual_seed(1))
    assert x.shape == (7, 6) and enc.training and dec.training  # modes restored
    assert not any(k.startswith(("encoder", "decoder", "net")) for k in acl.state_dict())
    with pytest.raises(ValueError, match=r"encoder\(x\) must be \[B, 2\] codes"):
        ACL(code_dim=2).attach(lambda x: x, dec).codes(data[:3])
    with pytest.raises(TypeError, match="decoder must be callable"):
        acl.attach(enc, 3)


# ---- the models: defaults, shapes, bad input ---------------------------------------------------------


def test_registered_with_the_papers_and_baselines_defaults():
    assert get_model("acl-ae") is ACLAE and get_model("acl-gan") is ACLGAN
    assert get_model("acl-gan-gp") is ACLGANGP and get_model("acl-sgan") is ACLSGAN
    g, d = ACLGANConfig(), DCGANConfig()
    assert (g.lr, g.betas, g.batch_size, g.width) == (d.lr, d.betas, d.batch_size, d.width)  # "unchanged"
    assert (g.lambda_rec, g.lambda_gan, g.lambda_z) == (1.0, 1.0, 1.0)  # Eq. 6
    assert g.rec_updates == "encoder" and g.gan_loss == "gan"  # Algorithm 1 line 11
    gp, w = ACLGANGPConfig(), WGANGPConfig()
    assert (gp.lr, gp.betas, gp.batch_size, gp.n_critic, gp.gp_weight) == (
        w.lr,
        w.betas,
        w.batch_size,
        w.n_critic,
        w.gp_weight,
    )
    assert gp.critic_norm == "none" and gp.gan_loss == "wgan-gp"
    assert ACLAEConfig().lambda_z == 1.0  # Eq. 3
    assert build_model("acl-gan", IMG, TINY).code_dim == 100  # the DCGAN baseline's z
    assert build_model("acl-gan-gp", IMG, TINY).code_dim == 128  # WGAN-GP's z
    assert build_model("acl-ae", IMG).code_dim == 10  # the paper's MNIST latent size
    assert build_model("acl-ae", PTS).code_dim == 2


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("acl-gan", ()),
        ("acl-gan-gp", ()),
        ("acl-sgan", ()),
        ("acl-sgan", ("sgan_code=logits",)),
        ("acl-ae", ("arch=conv",)),
        ("acl-ae", ("ae_hidden=8",)),
    ],
)
def test_image_shapes_and_code_shapes(name, extra, digits):
    m = _model(name, extra=extra)
    x = digits.x[:5]
    real_codes = m.codes(x)
    fake_codes = m.acl.generate(5)
    assert fake_codes.shape == real_codes.shape == (5, m.code_dim)  # G_z(z) lives in E's code space
    s = m.sample(5, torch.Generator().manual_seed(0))
    assert s.shape == (5, 1, 16, 16) and s.abs().max() <= 1 and s.dtype == torch.float32
    assert torch.equal(s, m.sample(5, torch.Generator().manual_seed(0)))
    assert m.reconstruct(x).shape == x.shape
    assert m.training  # sample/codes restore the mode


def test_sgan_code_choices():
    m = _model("acl-sgan", extra=("code_dim=12",))
    assert m.code_dim == 12 and m.classifier.head.out_features == 10
    m = _model("acl-sgan", extra=("sgan_code=logits",))
    assert m.code_dim == 10 and m.classifier.head is None
    assert torch.equal(m.classifier.logits(torch.ones(2, 10)), torch.ones(2, 10))


def test_points_toy_shapes_and_priors():
    m = _model("acl-ae", PTS, ("prior=mixture",))
    assert isinstance(m.acl.prior, MixturePrior) and m.acl.z_dim == 2
    assert torch.equal(m.acl.prior.centres, torch.tensor(PTS.meta["centers"], dtype=torch.float32))
    assert m.sample(9).shape == (9, 2)
    assert not any(isinstance(x, nn.Dropout) for x in m.modules())  # points: no dropout
    assert any(isinstance(x, nn.Dropout) for x in build_model("acl-ae", IMG, ["ae_hidden=4"]).modules())
    assert isinstance(_model("acl-ae", PTS).acl.prior, NormalPrior)


@pytest.mark.parametrize(
    ("name", "info", "extra", "err"),
    [
        ("acl-gan", PTS, [], "trains on images data, got points"),
        ("acl-gan", DataInfo("paired", (1, 16, 16), (1, 16, 16)), [], "trains on images data, got paired"),
        ("acl-ae", DataInfo("two-domain", (1, 16, 16)), [], "trains on images or points data"),
        ("acl-gan", DataInfo("images", (1, 25, 25)), TINY, "need an image side"),
        ("acl-gan", IMG, [*TINY, "rec_updates=all"], "rec_updates must be"),
        ("acl-gan", IMG, [*TINY, "gan_loss=hinge"], "gan_loss must be"),
        ("acl-gan", IMG, [*TINY, "n_critic=2"], "applies to gan_loss='wgan-gp'"),
        ("acl-gan-gp", IMG, [*TINY, "critic_norm=batch"], "breaks the per-sample gradient penalty"),
        ("acl-gan", IMG, [*TINY, "code_dim=0"], "code_dim must be an int >= 1"),
        ("acl-sgan", DataInfo("images", (1, 16, 16)), TINY, "needs labelled images"),
        ("acl-sgan", IMG, [*TINY, "sgan_code=pool"], "sgan_code must be"),
        ("acl-sgan", IMG, [*TINY, "sgan_code=logits", "code_dim=7"], "code_dim=7 does not match"),
        ("acl-ae", IMG, ["prior=mixture"], "has none"),
        ("acl-ae", PTS, ["prior=mixture", "z_dim=3"], "z_dim=3 does not match"),
        ("acl-ae", PTS, ["arch=conv"], "arch='conv' needs image data"),
        ("acl-ae", IMG, ["arch=resnet"], "arch must be"),
        ("acl-ae", IMG, ["dropout=1.0"], r"dropout must be a finite number in \[0, 1\)"),
    ],
)
def test_bad_data_and_settings(name, info, extra, err):
    with pytest.raises(ValueError, match=err):
        build_model(name, info, extra)


def test_sgan_step_without_labels_is_an_error(digits):
    m = _model("acl-sgan")
    with pytest.raises(ValueError, match=r"needs labels \(batch.y\)"):
        m.step_encoder(digits.x[:6], None)


# ---- which step updates which network (Algorithm 1) -------------------------------------------------


def _acl_gan_steps(m, digits):
    batch = digits.fixed(6 * m.batches_per_step)
    parts = batch.split(m.batches_per_step)
    x_r = parts[0].x
    c_f = m.acl.generate(len(x_r))
    out = {}
    (out["line 11"], (codes, _)) = _run(m, lambda: m.step_encoder(x_r, parts[0].y))
    (out["line 12"], _) = _run(m, lambda: m.step_image_gan([p.x for p in parts], c_f))
    (out["line 13"], _) = _run(m, lambda: m.step_code_gan(codes, c_f))
    return out


@pytest.mark.parametrize(
    ("name", "extra", "enc", "line11"),
    [
        ("acl-gan", (), "encoder", {"encoder"}),
        ("acl-gan-gp", ("n_critic=2",), "encoder", {"encoder"}),
        ("acl-sgan", (), "classifier", {"classifier"}),
        ("acl-gan", ("rec_updates=encoder+generator",), "encoder", {"encoder", "generator"}),
    ],
)
def test_each_line_of_algorithm_1_updates_exactly_its_networks(name, extra, enc, line11, digits):
    """Line 11 steps E_x only (Eq. 4's reading: E_x and G_x), line 12 G_x and D_x, line 13 G_z and
    D_c; every other network keeps its parameters and receives no gradient — in particular E_x is
    fixed for the code game (p_c "fixed to the code learner")."""
    m = _model(name, extra=extra)
    got = _acl_gan_steps(m, digits)
    assert got["line 11"] == (line11, line11)
    assert got["line 12"] == ({"generator", "discriminator"},) * 2
    assert got["line 13"] == ({"code_generator", "code_discriminator"},) * 2
    assert enc in _groups(m)
    # and each network's own loss is the only one that reached it: D_x gets n_critic backward passes
    # (not G_x's loss), D_c one (not G_z's), E_x one (line 11 only), nobody else's
    counts = _backward_counts(m, lambda: m.training_step(digits.fixed(6 * m.batches_per_step)))
    want = {"generator": 1 + (enc in line11 and "generator" in line11), "discriminator": m.batches_per_step}
    want.update({enc: 1, "code_generator": 1, "code_discriminator": 1})
    assert counts == want


def test_sgan_classifier_head_is_trained_by_line_11(digits):
    m = _model("acl-sgan")
    head = m.classifier.head.weight.detach().clone()
    _, logs = m.step_encoder(digits.x[:6], digits.y[:6])
    assert not torch.equal(head, m.classifier.head.weight) and {"loss_cls", "acc", "loss_r"} <= set(logs)


def test_acl_ae_steps_update_exactly_their_networks(digits):
    m = _model("acl-ae", extra=("ae_hidden=8",))
    ((changed, grads), (codes, _)) = _run(m, lambda: m.step_autoencoder(digits.x[:6]))
    assert changed == grads == {"encoder", "decoder"}
    assert not codes.requires_grad and codes.shape == (6, 10)
    fake = m.acl.generate(6)
    ((changed, grads), _) = _run(m, lambda: m._code_step(codes, fake, 1.0, 2))
    assert changed == grads == {"code_generator", "code_discriminator"}  # the encoder stays fixed


@pytest.mark.parametrize(
    ("name", "info"), [("acl-gan", IMG), ("acl-gan-gp", IMG), ("acl-sgan", IMG), ("acl-ae", PTS)]
)
def test_a_whole_iteration_updates_every_network_and_restores_flags(name, info, digits):
    m = _model(name, info, ("n_critic=2",) if name == "acl-gan-gp" else ())
    data = digits if info is IMG else load_data("square4")
    n = (6 if info is IMG else m.batch_size) * m.batches_per_step
    ((changed, _), logs) = _run(m, lambda: m.training_step(data.fixed(n)))
    assert changed == set(_groups(m))
    loss_floats(logs, finite=False)
    assert all(p.requires_grad for p in m.parameters())


# ---- one iteration replayed with plain torch -------------------------------------------------------


def _apply_grads(loss, params, opt):
    params = list(params)
    for p, g in zip(params, torch.autograd.grad(loss, params, retain_graph=True)):
        p.grad = g
    opt.step()


@pytest.mark.parametrize("gp", [False, True])
def test_one_iteration_replays_algorithm_1(gp, digits):
    """An independent re-computation of one ACL-GAN (and ACL-GAN-GP, 2 critic steps) iteration:
    Algorithm 1 written out with plain torch ops (the feature loss as a mean of squares, the
    cross-entropies as log-sigmoids, the reference penalty), consuming the RNG in the same order;
    the model's parameters after its training_step must equal the replay's."""
    torch.set_default_dtype(torch.float64)  # E_x's head bias has a zero true gradient (G_x's first
    try:  # layer is followed by BatchNorm), so float32 rounding noise would make Adam's steps differ
        _replay(gp, digits)
    finally:
        torch.set_default_dtype(torch.float32)


def _replay(gp, digits):
    m = _model("acl-gan-gp" if gp else "acl-gan", extra=("n_critic=2",) if gp else ())
    ref = copy.deepcopy(m)
    c = ref.config
    E, G, D, Gz, Dc = (
        ref.encoder,
        ref.generator,
        ref.discriminator,
        ref.acl.code_generator,
        ref.acl.code_discriminator,
    )
    opt = {
        k: torch.optim.Adam(n.parameters(), lr=c.lr, betas=c.betas)
        for k, n in zip("EGDzc", (E, G, D, Gz, Dc))
    }
    n = 6 * m.batches_per_step
    for it in range(2):  # two iterations: Adam's first step only sees gradient signs, its second more
        batch = Batch(x=digits.x[it * n : (it + 1) * n].double(), y=digits.y[it * n : (it + 1) * n])
        torch.manual_seed(11 + it)
        logs = m.training_step(batch)

        torch.manual_seed(11 + it)
        reals = batch.x.split(6)
        x_r = reals[0]
        z = torch.randn(6, ref.code_dim)  # line 5
        c_f = Gz(z)  # line 6
        # line 11: E_x <- ||Φ(x_r) - Φ(G_x(E_x(x_r)))||^2
        codes = E(x_r)
        phi_r = D(x_r, return_features=True)[1][-1].detach()
        loss_r = (D(G(codes), return_features=True)[1][-1] - phi_r).square().mean()
        _apply_grads(loss_r, E.parameters(), opt["E"])
        # line 12: D_x then G_x on x_ff = G_x(c_f)
        for k, real in enumerate(reals):
            with torch.no_grad():
                fake = G(c_f if k == 0 else Gz(torch.randn(6, ref.code_dim)))
            if gp:
                pen = gradient_penalty_ref(D, real, fake, weight=10.0)
                loss_d = D(fake).mean() - D(real).mean() + pen
            else:
                loss_d = -(F.logsigmoid(D(real)).mean() + F.logsigmoid(-D(fake)).mean())
            _apply_grads(loss_d, D.parameters(), opt["D"])
        score = D(G(c_f.detach()))
        loss_g = -score.mean() if gp else -F.logsigmoid(score).mean()
        _apply_grads(loss_g, G.parameters(), opt["G"])
        # line 13: D_c then G_z on c = E_x(x_r) (line 3, detached) vs c_f
        loss_dc = -(F.logsigmoid(Dc(codes.detach())).mean() + F.logsigmoid(-Dc(c_f.detach())).mean())
        _apply_grads(loss_dc, Dc.parameters(), opt["c"])
        loss_gz = -F.logsigmoid(Dc(c_f)).mean()
        _apply_grads(loss_gz, Gz.parameters(), opt["z"])

        for key, v in (("loss_r", loss_r), ("loss_g", loss_g), ("loss_dc", loss_dc), ("loss_gz", loss_gz)):
            assert logs[key] == pytest.approx(v.item(), rel=1e-9, abs=1e-12), (it, key)
        for (name, a), b in zip(m.named_parameters(), ref.parameters()):
            assert a.dtype == torch.float64
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=f"iteration {it}: {name}")


# ---- data, loop, eval, CLI -------------------------------------------------------------------------


def test_square4_is_the_four_mode_toy_target():
    from pygan.metrics.modes import mode_coverage

    d = load_data("square4", "test")
    assert d.kind == "points" and d.x.shape == (5000, 2) and d.meta["std"] == 0.1
    assert sorted(map(tuple, d.meta["centers"])) == [(-2, -2), (-2, 2), (2, -2), (2, 2)]
    mc = mode_coverage(d.x, torch.tensor(d.meta["centers"]), d.meta["std"])
    assert mc.modes_covered == 4 and mc.high_quality_fraction > 0.98


def test_train_resume_and_eval_through_the_loop(tmp_path):
    from pygan.evaluate import evaluate_run
    from pygan.runs import load_run
    from pygan.train import train

    opts = dict(log_every=1, ckpt_every=2, sample_every=0, eval_every=2, progress=False, tensorboard=False)
    ov = ["width=4", "batch_size=4", "acl_hidden=8"]
    a = train("acl-gan", "digits16", str(tmp_path / "a"), 4, overrides=ov, **opts)
    train("acl-gan", "digits16", str(tmp_path / "b"), 2, overrides=ov, **opts)
    b = train("acl-gan", "digits16", str(tmp_path / "b"), 4, overrides=ov, resume=True, **opts)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval/code_fd" in r] == [2, 4]
    model, config, _ = load_run(str(tmp_path / "a"))
    assert isinstance(model, ACLGAN) and config.width == 4
    out = evaluate_run(str(tmp_path / "a"), n_samples=200, metrics=["fid", "reconstruction"])
    assert out["metrics"]["fid"]["value"] > 0 and out["metrics"]["reconstruction"]["mse"] > 0


def test_points_run_gets_mode_coverage(tmp_path):
    from pygan.evaluate import evaluate_run
    from pygan.train import train

    train(
        "acl-ae",
        "square4",
        str(tmp_path / "t"),
        3,
        overrides=["prior=mixture", "ae_hidden=8", "acl_hidden=8", "batch_size=16"],
        sample_every=0,
        progress=False,
        tensorboard=False,
    )
    out = evaluate_run(str(tmp_path / "t"), n_samples=400)
    assert out["metrics"]["mode_coverage"]["num_modes"] == 4


def test_cli_train_and_list(tmp_path, capsys):
    from pygan.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in ("acl-ae", "acl-gan", "acl-gan-gp", "acl-sgan", "dcgan", "rec_updates"))
    run = str(tmp_path / "r")
    args = ["train", "acl-sgan", "--data", "digits16", "--steps", "2", "--out", run, "--threads", "1"]
    assert main([*args, "--set", "width=4", "--set", "batch_size=4", "--set", "acl_hidden=8"]) == 0
    assert (tmp_path / "r" / "samples" / "last.png").is_file()


class _CountingWrapper(nn.Module):
    """Stands in for DistributedDataParallel: forwards to the module and counts the calls."""

    def __init__(self, module):
        super().__init__()
        self.module = module
        self.calls = 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        return self.module(*args, **kwargs)


@pytest.mark.parametrize(("name", "info"), [("acl-gan", IMG), ("acl-sgan", IMG), ("acl-ae", PTS)])
def test_ddp_plumbing_wraps_and_runs_every_updated_network(name, info, digits):
    """Under DDP the loop wraps ``ddp_networks()``; the ACL models name the module's two networks by
    dotted path and run each updated network through its wrapper (checkpoint keys unchanged)."""
    m = _model(name, info)
    keys = list(m.state_dict())
    m.distribute(_CountingWrapper)
    want = {"decoder", "encoder"} if name == "acl-ae" else {"generator", "discriminator", m.inference_net}
    assert set(m._wrapped) == want | {"acl.code_generator", "acl.code_discriminator"}
    data = digits if info is IMG else load_data("square4")
    m.training_step(data.fixed((6 if info is IMG else m.batch_size) * m.batches_per_step))
    assert all(w.calls >= 1 for w in m._wrapped.values()), {k: w.calls for k, w in m._wrapped.items()}
    assert list(m.state_dict()) == keys
