"""IDVAE (the IDVAE paper) and its baselines: the shared trunk is one set of Parameters, each of the three
updates steps exactly its networks, the losses equal an independent plain-torch re-computation, the
KL/reparameterisation pieces, conditional sampling, reconstruct/sample/evaluate, the loop, the CLI,
``pygan eval`` and DDP."""

import copy
import json
import os

import pytest
import torch
import torch.nn.functional as F

from pygan.data import Batch, DataInfo, load_data
from pygan.models import build_model, get_model, list_models
from pygan.models.idvae import (
    IDVAE,
    IDVAER,
    VAE,
    VAEGAN,
    ConditionalIDVAE,
    IDVAEConfig,
    IDVAERConfig,
    sum_sq,
)
from pygan.models.losses import kl_normal, reparameterize
from tests._ddp_worker import _teardown, free_port, init_env
from tests.models.helpers import loss_floats

TINY = ["width=4", "z_dim=6", "batch_size=4"]
ADVERSARIAL = ("idvae", "idvae-r", "cidvae", "vae-gan")


@pytest.fixture(scope="module")
def digits():
    return load_data("digits16")


def _model(name, info, extra=(), seed=0):
    torch.manual_seed(seed)
    m = build_model(name, info, [*TINY, *extra])
    m.optimizers = m.configure_optimizers()
    return m


def test_registered_with_configs():
    names = set(list_models())
    assert {"idvae", "idvae-r", "cidvae", "vae", "vae-gan"} <= names
    assert get_model("idvae") is IDVAE and get_model("idvae-r") is IDVAER and get_model("vae") is VAE
    assert get_model("cidvae") is ConditionalIDVAE and get_model("vae-gan") is VAEGAN
    c = IDVAEConfig()
    assert (c.alpha, c.beta, c.omega, c.lam, c.gamma, c.order) == (1.0, 1.0, 1.0, 1.0, 0.0, "dis-first")
    assert IDVAERConfig().gamma > 0 and c.trunk_norm == "layer"
    assert get_model("vae-gan").Config().encoder_loss == "feature"


# ---- the shared trunk ------------------------------------------------------------------------------


def test_trunk_is_one_set_of_parameters_for_both_roles(digits):
    m = _model("idvae", digits.info)
    assert m.dis_trunk is m.trunk
    trunk = {id(p) for p in m.trunk.parameters()}
    dis = {id(p) for g in m.optimizers["dis"].param_groups for p in g["params"]}
    enc = {id(p) for g in m.optimizers["enc"].param_groups for p in g["params"]}
    dec = {id(p) for g in m.optimizers["dec"].param_groups for p in g["params"]}
    assert trunk and trunk <= dis and trunk <= enc  # the very same Parameter objects in both steps
    assert dis - trunk == {id(p) for p in m.dis_head.parameters()}
    assert enc - trunk == {id(p) for p in m.enc_head.parameters()}
    assert dec == {id(p) for p in m.decoder.parameters()} and not dec & (dis | enc)
    # no hidden copy: every parameter of the model is trunk, one of the three heads, or the decoder
    assert {id(p) for p in m.parameters()} == dis | enc | dec
    # a change of one trunk weight changes both the encoder's and the discriminator's output
    x = digits.x[:3]
    mu0, d0 = m.encode(x)[0].detach(), m.discriminate(x).detach()
    with torch.no_grad():
        m.trunk.blocks[0][0].weight.add_(0.5)
    assert not torch.equal(m.encode(x)[0], mu0) and not torch.equal(m.discriminate(x), d0)
    # the discriminator reads the encoder's layer l: Dis(x) = dis_head(Enc_l(x))
    torch.testing.assert_close(m.discriminate(x), m.dis_head(m.features(x)))


def test_vae_gan_discriminator_shares_nothing(digits):
    m = _model("vae-gan", digits.info)
    assert m.dis_trunk is m.discriminator and m.discriminator is not m.trunk
    enc = {id(p) for p in [*m.trunk.parameters(), *m.enc_head.parameters()]}
    dis = {id(p) for p in [*m.discriminator.parameters(), *m.dis_head.parameters()]}
    assert not enc & dis
    assert {id(p) for g in m.optimizers["dis"].param_groups for p in g["params"]} == dis
    assert {id(p) for g in m.optimizers["enc"].param_groups for p in g["params"]} == enc


# ---- which update steps which network -------------------------------------------------------------

GROUPS = {
    "idvae": {"dis": {"trunk", "dis_head"}, "enc": {"trunk", "enc_head"}, "dec": {"decoder"}},
    "vae-gan": {"dis": {"discriminator", "dis_head"}, "enc": {"trunk", "enc_head"}, "dec": {"decoder"}},
    "vae": {"vae": {"trunk", "enc_head", "decoder"}},
}
GROUPS["idvae-r"] = GROUPS["cidvae"] = GROUPS["idvae"]


def _snap(m):
    return {
        n: (p.detach().clone(), None if p.grad is None else p.grad.clone()) for n, p in m.named_parameters()
    }


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("idvae", ()),
        ("idvae", ("order=enc-first",)),
        ("idvae-r", ()),
        ("cidvae", ()),
        ("vae-gan", ()),
        ("vae-gan", ("encoder_loss=pixel",)),
        ("vae", ()),
    ],
)
def test_each_step_updates_exactly_its_networks(digits, name, extra):
    """After each update, the networks it must not step have unchanged parameters and unchanged
    gradients (none accumulated), and every weight of the networks it steps moved."""
    m = _model(name, digits.info, extra)
    seen = []
    orig = m.update

    def spy(opt, loss):
        before = _snap(m)
        orig(opt, loss)
        seen.append((opt, before, _snap(m)))

    m.update = spy
    logs = m.training_step(digits.batch(torch.arange(4)))
    expected_order = {"vae": ["vae"]}.get(name, ["dis", "enc", "dec"])
    if "order=enc-first" in extra:
        expected_order = ["enc", "dis", "dec"]
    assert [s[0] for s in seen] == expected_order
    loss_floats(logs)
    for opt, before, after in seen:
        owners = GROUPS[name][opt]
        for n, (w1, g1) in after.items():
            w0, g0 = before[n]
            if n.split(".")[0] in owners:
                if n.endswith("weight"):
                    assert not torch.equal(w1, w0), f"{opt} step left {n} unchanged"
                    assert g1 is not None
            else:
                assert torch.equal(w1, w0), f"{opt} step changed {n}"
                same = (g1 is None and g0 is None) or (
                    g1 is not None and g0 is not None and torch.equal(g1, g0)
                )
                assert same, f"{opt} step touched the gradient of {n}"
    assert all(p.requires_grad for p in m.parameters())  # frozen() restored every flag


def _bce(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _replay(m, x, y=None):
    """Algorithm 1 re-computed with plain torch (no pygan op, losses from their equations), consuming
    the global RNG like the model: eps, then z'."""
    c = m.config
    n = len(x)
    oh = F.one_hot(y, m.num_classes).float() if y is not None else None

    def feats(net, v, cond):
        return net(v, cond=cond)

    def dec(z, cond):
        return m.decoder(z if cond is None else torch.cat([z, cond], 1))

    cat = (lambda *a: None) if oh is None else (lambda *a: torch.cat(a))
    groups = [
        [*m.dis_trunk.parameters(), *m.dis_head.parameters()],
        [*m.trunk.parameters(), *m.enc_head.parameters()],
        list(m.decoder.parameters()),
    ]
    opt_dis, opt_enc, opt_dec = (torch.optim.Adam(g, lr=c.lr, betas=c.betas) for g in groups)
    eps, zp = torch.randn(n, m.z_dim), torch.randn(n, m.z_dim)
    # 1) L_dis, eq. 9
    with torch.no_grad():
        mu, lv = m.enc_head(feats(m.trunk, x, oh))
        z = mu + torch.exp(lv / 2) * eps
        x_rec, x_gen = dec(z, oh), dec(zp, oh)
    D = lambda v: m.dis_head(feats(m.dis_trunk, v, oh))  # noqa: E731
    loss_dis = _bce(D(x), 1.0) + _bce(D(x_rec), 0.0) + _bce(D(x_gen), 0.0)
    opt_dis.zero_grad()
    loss_dis.backward()
    opt_dis.step()
    # 2) L_enc, eq. 8
    mu, lv = m.enc_head(feats(m.trunk, x, oh))
    z = mu + torch.exp(lv / 2) * eps
    if getattr(c, "encoder_loss", "pixel") == "feature":  # Larsen et al.: Dis_l likelihood
        with torch.no_grad():
            target = feats(m.dis_trunk, x, oh)
        rec = 0.5 * ((feats(m.dis_trunk, dec(z, oh), oh) - target) ** 2).sum(1).mean()
    else:
        rec = ((dec(z, oh) - x) ** 2).sum((1, 2, 3)).mean()
    kl = (0.5 * (mu**2 + lv.exp() - lv - 1).sum(1)).mean()
    opt_enc.zero_grad()
    opt_dis.zero_grad()
    opt_dec.zero_grad()
    (c.alpha * rec + c.beta * kl).backward()
    opt_enc.step()
    # 3) L_dec, eqs. 10-13
    with torch.no_grad():
        mu, lv = m.enc_head(feats(m.trunk, x, oh))
        z = mu + torch.exp(lv / 2) * eps
        h_real = feats(m.dis_trunk, x, oh)
    fakes = dec(torch.cat([z, zp]), cat(oh, oh))
    x_rec, x_gen = fakes[:n], fakes[n:]
    h_rec = feats(m.dis_trunk, x_rec, oh)
    gan = _bce(m.dis_head(feats(m.dis_trunk, x_gen, oh)), 1.0) + _bce(m.dis_head(h_rec), 1.0)
    feat = 0.5 * ((h_rec - h_real) ** 2).sum(1).mean()
    loss_dec = c.omega * gan + c.lam * feat + c.gamma * ((x_rec - x) ** 2).sum((1, 2, 3)).mean()
    opt_dec.zero_grad()
    loss_dec.backward()
    opt_dec.step()  # (the frozen trunk/heads got gradients here; no optimiser steps them again)
    return {"loss_dis": loss_dis.item(), "recons": rec.item(), "kl": kl.item(), "loss_dec": loss_dec.item()}


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("idvae", ()),
        ("idvae-r", ("gamma=0.5",)),
        ("cidvae", ()),
        ("vae-gan", ()),
        ("vae-gan", ("encoder_loss=pixel",)),
    ],
)
def test_training_step_is_algorithm_1(digits, name, extra):
    """One training_step equals an independent plain-torch re-computation of eqs. 8-13 in
    Algorithm 1's order (weights, losses), with non-default loss weights."""
    m = _model(name, digits.info, [*extra, "alpha=0.7", "beta=1.3", "omega=0.9", "lam=0.2"])
    m.decoder.eval()  # no BatchNorm batch-statistics coupling: the replay decodes x_rec and x_gen apart
    twin = copy.deepcopy(m)
    b = digits.batch(torch.arange(5))
    torch.manual_seed(3)
    logs = m.training_step(b)
    torch.manual_seed(3)
    ref = _replay(twin, b.x, b.y if m.conditional else None)
    for k, v in ref.items():
        assert logs[k] == pytest.approx(v, rel=1e-5, abs=1e-5), k
    for (n, p), q in zip(m.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=n)


# ---- loss pieces -----------------------------------------------------------------------------------


def test_kl_and_reparameterisation():
    torch.manual_seed(0)
    mu, lv = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(lv / 2))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(1).mean()
    torch.testing.assert_close(kl_normal(mu, lv).double(), expected, rtol=1e-6, atol=1e-7)
    assert kl_normal(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0  # posterior = prior
    eps = torch.randn(7, 5, dtype=torch.float64)
    mu.requires_grad_(True)
    lv.requires_grad_(True)
    z = reparameterize(mu, lv, eps)
    assert z.shape == (7, 5)
    torch.testing.assert_close(z, mu + torch.exp(0.5 * lv) * eps)
    z.sum().backward()  # the gradient reaches both parameters of q
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))
    torch.testing.assert_close(lv.grad, 0.5 * torch.exp(0.5 * lv.detach()) * eps)
    with pytest.raises(ValueError, match="share a shape"):
        reparameterize(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="mu and logvar"):
        kl_normal(torch.zeros(2, 3), torch.zeros(3, 3))


def test_encoder_shapes(digits):
    for name in ("idvae", "vae", "cidvae", "vae-gan"):
        m = _model(name, digits.info)
        b = digits.batch(torch.arange(3))
        mu, lv = m.encode(b.x, b.y if m.conditional else None)
        assert mu.shape == lv.shape == (3, 6)
        assert m.features(b.x, m._onehot(b.y, 3)).shape == (3, m.trunk.feature_dim) == (3, 8 * 4 * 4)
        if name != "vae":
            assert m.discriminate(b.x, b.y if m.conditional else None).shape == (3,)


def test_sum_sq_is_the_squared_distance_with_a_constant_target():
    torch.manual_seed(0)
    a = torch.randn(4, 3, 5, 5, requires_grad=True)
    t = torch.randn(4, 3, 5, 5, requires_grad=True)
    got = sum_sq(a, t, 0.5)
    torch.testing.assert_close(got, 0.5 * ((a - t) ** 2).sum((1, 2, 3)).mean())
    got.backward()
    torch.testing.assert_close(a.grad, (a - t).detach() / 4)
    assert t.grad is None  # the target is a constant
    with pytest.raises(ValueError, match="same shape"):
        sum_sq(a, t[:2])
    low = sum_sq(a.detach().bfloat16(), t.detach())  # bf16 autocast: computed and returned in float32
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, sum_sq(a.detach().bfloat16().float(), t.detach()))


def test_bf16_autocast_step(digits):
    m = _model("idvae", digits.info)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logs = loss_floats(m.training_step(digits.batch(torch.arange(4))))
    assert logs["recons"] != round(logs["recons"])  # a float32 loss, not one rounded to bf16


# ---- sampling, reconstruction, conditional --------------------------------------------------------


def test_sample_and_reconstruct(digits):
    for name in ("idvae", "vae", "vae-gan", "idvae-r"):
        m = _model(name, digits.info)
        state = torch.get_rng_state()
        bn = copy.deepcopy(dict(m.decoder.named_buffers()))
        a = m.sample(5, torch.Generator().manual_seed(1))
        b = m.sample(5, torch.Generator().manual_seed(1))
        assert a.shape == (5, 1, 16, 16) and a.abs().max() <= 1 and torch.equal(a, b)
        r = m.reconstruct(digits.x[:6])
        assert r.shape == (6, 1, 16, 16) and r.abs().max() <= 1
        # reconstruct decodes the posterior mean in eval mode
        m.eval()
        torch.testing.assert_close(r, m.decoder(m.encode(digits.x[:6])[0]).detach())
        m.train()
        assert torch.equal(torch.get_rng_state(), state) and m.training and m.decoder.training
        for k, v in m.decoder.named_buffers():
            assert torch.equal(v, bn[k]), k
        with pytest.raises(ValueError, match="images"):
            m.reconstruct(torch.zeros(2, 3, 16, 16))
        with pytest.raises(ValueError, match="unconditional"):
            m.sample(2, labels=torch.tensor([0, 1]))


def test_conditional_sampling_produces_the_requested_classes(digits):
    m = _model("cidvae", digits.info)
    assert m.num_classes == 10
    # the condition enters the decoder's input and the trunk after its first convolution
    assert m.decoder.fc.in_features == 6 + 10
    assert m.trunk.blocks[1][0].in_channels == 4 + 10 and m.trunk.blocks[0][0].in_channels == 1
    grid = m.sample_per_class(3, torch.Generator().manual_seed(0))
    assert grid.shape == (30, 1, 16, 16) and grid.abs().max() <= 1
    labels = torch.arange(10).repeat_interleave(3)
    z = torch.randn(30, 6, generator=torch.Generator().manual_seed(0))
    m.eval()
    expected = m.decoder(torch.cat([z, F.one_hot(labels, 10).float()], 1))
    m.train()
    torch.testing.assert_close(grid, expected.detach())  # row k was generated as class k
    same_z = m.sample(10, torch.Generator().manual_seed(5), labels=torch.full((10,), 2))
    other = m.sample(10, torch.Generator().manual_seed(5), labels=torch.full((10,), 7))
    assert not torch.allclose(same_z, other)  # the label changes the generation
    b = digits.batch(torch.arange(4))
    from_batch = m.sample(4, torch.Generator().manual_seed(5), batch=b)
    explicit = m.sample(4, torch.Generator().manual_seed(5), labels=b.y)
    assert torch.equal(from_batch, explicit)  # the loop's grid uses the held-out rows' labels
    default = m.sample(12, torch.Generator().manual_seed(5))
    cyc = m.sample(12, torch.Generator().manual_seed(5), labels=torch.arange(12) % 10)
    assert torch.equal(default, cyc)
    # the trunk reads the label: the encoder and discriminator outputs depend on it
    assert not torch.allclose(m.encode(b.x, torch.zeros(4, dtype=torch.long))[0], m.encode(b.x, b.y)[0])
    # reconstruct without labels picks, per image, the class whose reconstruction is closest
    free = m.reconstruct(b.x)
    errs = torch.stack(
        [((m.reconstruct(b.x, torch.full((4,), k)) - b.x) ** 2).flatten(1).sum(1) for k in range(10)]
    )
    torch.testing.assert_close(((free - b.x) ** 2).flatten(1).sum(1), errs.min(0).values)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        m.sample(2, labels=torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        m.sample(2, labels=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="needs labels y"):
        m.training_step(Batch(x=digits.x[:4]))


def test_evaluate_is_cheap_and_side_effect_free(digits):
    test = load_data("digits16", "test")
    m = _model("cidvae", digits.info)
    state = torch.get_rng_state()
    out = m.evaluate(test, torch.Generator().manual_seed(0))
    assert set(out) == {"recon_mse", "kl"} and out["recon_mse"] > 0 and out["kl"] >= 0
    assert torch.equal(torch.get_rng_state(), state) and m.training


def test_bad_inputs(digits):
    info = digits.info
    with pytest.raises(ValueError, match="trunk_norm"):
        build_model("idvae", info, ["trunk_norm=group"])
    with pytest.raises(ValueError, match="decoder_norm"):
        build_model("vae", info, ["decoder_norm=layer"])
    with pytest.raises(ValueError, match="order"):
        build_model("idvae", info, ["order=joint"])
    with pytest.raises(ValueError, match="omega must be a finite number >= 0"):
        build_model("idvae", info, ["omega=-1"])
    with pytest.raises(ValueError, match="encoder_loss"):
        build_model("vae-gan", info, ["encoder_loss=both"])
    with pytest.raises(ValueError, match="z_dim must be an int >= 1"):
        build_model("vae", info, ["z_dim=0"])
    with pytest.raises(ValueError, match="square images"):
        build_model("idvae", DataInfo("images", (1, 16, 32)))
    with pytest.raises(ValueError, match="image side"):
        build_model("idvae", DataInfo("images", (1, 25, 25)))
    with pytest.raises(ValueError, match="needs labelled data"):
        build_model("cidvae", DataInfo("images", (1, 16, 16)))
    with pytest.raises(ValueError, match="trains on images data, got points"):
        build_model("idvae", DataInfo("points", (2,)))
    with pytest.raises(ValueError, match="unconditional; sample_per_class"):
        build_model("idvae", info, TINY).sample_per_class(2)


@pytest.mark.parametrize("size", [16, 28, 32])
def test_shapes_for_sizes_and_channels(size):
    for name in ("idvae", "cidvae", "vae-gan", "vae"):
        m = _model(name, DataInfo("images", (3, size, size), num_classes=4))
        x = torch.rand(4, 3, size, size) * 2 - 1
        y = torch.tensor([0, 1, 2, 3])
        m.training_step(Batch(x=x, y=y))
        assert m.sample(2).shape == (2, 3, size, size)
        assert m.reconstruct(x[:2], y[:2] if m.conditional else None).shape == (2, 3, size, size)


# ---- the loop, the CLI, pygan eval, DDP ------------------------------------------------------------


def test_train_loop_and_pygan_eval(tmp_path):
    from pygan.evaluate import evaluate_run
    from pygan.runs import load_run
    from pygan.train import train

    run = str(tmp_path / "run")
    train("cidvae", "digits16", run, 3, overrides=TINY, progress=False, tensorboard=False, log_every=1)
    lines = [json.loads(s) for s in open(os.path.join(run, "metrics.jsonl"))]
    assert [d["step"] for d in lines if "loss_dis" in d] == [1, 2, 3]
    assert {"loss_dis", "loss_enc", "loss_dec", "recons", "kl", "gan", "feat_recons"} <= set(lines[-1])
    assert os.path.isfile(os.path.join(run, "samples", "last.png"))
    model, _, _ = load_run(run)
    assert isinstance(model, ConditionalIDVAE)
    out = evaluate_run(run, n_samples=200, metrics=["fid", "reconstruction"], kid_subsets=2)
    rec = out["metrics"]["reconstruction"]
    assert out["metrics"]["fid"]["extractor"] == "digits" and out["metrics"]["fid"]["value"] > 0
    assert rec["mse"] > 0 and "psnr" in rec and "ssim" in rec


def test_cli_help_and_train(tmp_path, capsys):
    from pygan.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "idvae", "--help"])
    assert e.value.code == 0
    run = str(tmp_path / "cli")
    args = ["train", "vae-gan", "--data", "digits16", "--steps", "2", "--out", run, "--no-progress"]
    for kv in TINY:
        args += ["--set", kv]
    assert main(args) == 0
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "idvae" in out and "vae-gan" in out and "cidvae" in out


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    init_env(rank, world, port)
    import torch.distributed as dist

    from pygan.train import train

    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = train(
            "idvae",
            "digits16",
            os.path.join(out, "run"),
            2,
            overrides=TINY,
            progress=False,
            sample_every=0,
            tensorboard=False,
        )
        torch.save(model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    finally:
        _teardown(dist)


def test_ddp_shared_trunk_two_processes(tmp_path):
    """Under DDP the trunk is forwarded and reduced twice per iteration (discriminator and encoder
    steps): both ranks end with identical weights."""
    import torch.multiprocessing as mp

    mp.start_processes(
        _ddp_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn"
    )
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for k in w0:
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(w0[k], w1[k]), k


@pytest.mark.slow
def test_compiled_networks_match_eager(digits, monkeypatch):
    """--compile: trunk and decoder compiled in place (the same Parameters, so the sharing holds), and
    two training steps equal eager ones. The networks are compiled with the ``aot_eager`` backend:
    dynamo's capture of the shared trunk under the three steps' grad modes and ``frozen`` Parameters
    (six graphs) and AOTAutograd's forward/backward split are what this model adds; Inductor's code
    generation for these standard conv stacks costs ~40 CPU-seconds cold here, over this file's
    budget, and is exercised by ``bench/train_step.py``'s ``compile`` rows."""
    compile_ = torch.nn.Module.compile
    monkeypatch.setattr(
        torch.nn.Module, "compile", lambda self, *a, **k: compile_(self, *a, **{"backend": "aot_eager", **k})
    )
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    logs = {}
    for mode in ("eager", "compile"):
        m = _model("idvae", digits.info)
        params = [id(p) for p in m.parameters()]
        if mode == "compile":
            assert m.compile_networks() == ["trunk", "decoder"]
            assert [id(p) for p in m.parameters()] == params
        torch.manual_seed(1)
        batches = [digits.batch(torch.arange(4 * i, 4 * i + 4)) for i in range(2)]
        logs[mode] = [loss_floats(m.training_step(b)) for b in batches]
    assert counters["stats"]["unique_graphs"] >= 2  # the steps really ran compiled graphs
    for a, b in zip(logs["eager"], logs["compile"]):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5)
