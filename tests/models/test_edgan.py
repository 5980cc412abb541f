"""ED//GAN (the ED//GAN paper) and its coupled ED+GAN baselines: shapes for every data kind, the decoupled
update paths (which loss reaches which network), the coupled baseline's shared decoder, the fused
residual op, training through the loop (grids with the residual, resume) and ``pygan eval``."""

import json

import pytest
import torch
import torch.nn.functional as F

import pygan.models.edgan as edgan_mod
from pygan.cli import main
from pygan.data import DataInfo, load_data
from pygan.data.core import Batch
from pygan.models import build_model, get_model, list_models
from pygan.models.losses import g_loss_bce, g_loss_saturating
from pygan.ops import _backend, residual_add_ref
from pygan.runs import load_run, run_paths
from pygan.train import train
from tests.models.helpers import loss_floats

NAMES = [
    "edgan",
    "edgan-coupled",
    "edgan-pix2pix",
    "edgan-pix2pix-coupled",
    "edgan-caae",
    "edgan-caae-coupled",
]
DECOUPLED = ["edgan", "edgan-pix2pix", "edgan-caae"]
TINY = {
    "edgan": ["width=4", "z_dim=6", "batch_size=4"],
    "edgan-coupled": ["width=4", "z_dim=6", "batch_size=4"],
    "edgan-pix2pix": ["width=4", "d_width=4", "batch_size=4"],
    "edgan-pix2pix-coupled": ["width=4", "d_width=4", "batch_size=4"],
    "edgan-caae": ["width=4", "z_dim=10", "batch_size=4"],
    "edgan-caae-coupled": ["width=4", "z_dim=10", "batch_size=4"],
}
DIGITS = DataInfo("images", (1, 16, 16), num_classes=10)
PAIRED = DataInfo("paired", (3, 16, 16), (3, 16, 16))
GRAY2RGB = DataInfo("paired", (1, 16, 16), (3, 16, 16))
PHOTO = "photo-blur16?sources=sklearn"


def _info(name):
    return DIGITS if "caae" in name else PAIRED if "pix2pix" in name else DIGITS


def _batch(info, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *info.shape), generator=g) * 2 - 1
    y = torch.randint(0, info.num_classes, (n,), generator=g) if info.num_classes else None
    target = torch.rand((n, *info.target_shape), generator=g) * 2 - 1 if info.target_shape else None
    return Batch(x=x, y=y, target=target)


def _model(name, info=None, extra=()):
    torch.manual_seed(0)
    m = build_model(name, info or _info(name), [*TINY[name], *extra])
    m.optimizers = m.configure_optimizers()
    return m


def _groups(m):
    """Parameter groups by network: {"encoder": [...], "decoder": [...], ...}."""
    return {n: list(c.parameters()) for n, c in m.named_children()}


def _snapshot(m):
    return {n: [p.detach().clone() for p in ps] for n, ps in _groups(m).items()}


def _clear_grads(m):
    for p in m.parameters():
        p.grad = None


def _check_touched(m, before, touched):
    """Networks in ``touched`` changed and hold gradients; every other network is unchanged and
    received no gradient."""
    for net, params in _groups(m).items():
        changed = any(not torch.equal(p, q) for p, q in zip(params, before[net]))
        grads = [p.grad for p in params]
        if net in touched:
            assert changed, f"{net} was not updated"
            assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{net} got no gradient"
        else:
            assert not changed, f"{net} changed"
            assert all(g is None for g in grads), f"{net} received a gradient"


# ---- registry, configs, shapes -------------------------------------------------------------------------


def test_registered_with_paper_defaults():
    assert set(NAMES) <= set(list_models())
    c = get_model("edgan").Config()
    assert (c.batch_size, c.z_dim, c.width, c.adv_weight, c.ed_batchnorm) == (25, 50, 64, 1.0, True)
    assert (c.lr, c.betas, c.output_act) == (2e-4, (0.5, 0.999), "none")
    assert get_model("edgan-coupled").Config().adv_weight == 1e-2
    assert get_model("edgan-pix2pix").Config().batch_size == 1
    assert get_model("edgan-pix2pix-coupled").Config().adv_weight == 1e-2  # pix2pix's 100:1
    assert get_model("edgan-caae-coupled").Config().adv_weight == 1e-4  # CAAE's 1:1e-4
    assert get_model("edgan-caae").Config().ed_batchnorm is False


def test_table1_networks_at_128px():
    """At 128 px with width 64 the shared blocks give Table 1's sizes exactly."""
    m = build_model("edgan", DataInfo("images", (3, 128, 128)), ["batch_size=2"])
    x = torch.randn(2, 3, 128, 128)
    _z, feats = m.encoder(x, return_features=True)
    assert [tuple(f.shape[1:]) for f in feats] == [
        (64, 64, 64),
        (128, 32, 32),
        (256, 16, 16),
        (512, 8, 8),
        (1024, 4, 4),
    ]
    assert m.encode(x).shape == (2, 50) and m.encode(x).abs().max() < 1  # tanh
    _img, dfeats = m.generator(torch.zeros(2, 50), return_features=True)
    assert [tuple(f.shape[1:]) for f in dfeats] == [
        (1024, 4, 4), (512, 8, 8), (256, 16, 16), (128, 32, 32), (64, 64, 64), (3, 128, 128)
    ]  # fmt: skip
    assert m.discriminator(x).shape == (2,)
    g, d = m.generator, m.decoder
    assert type(g) is type(d) and not {id(p) for p in g.parameters()} & {id(p) for p in d.parameters()}
    nobn = build_model("edgan", DataInfo("images", (3, 32, 32)), ["ed_batchnorm=false", "width=4"])
    bn = torch.nn.BatchNorm1d, torch.nn.BatchNorm2d
    assert not any(isinstance(mod, bn) for net in (nobn.encoder, nobn.decoder) for mod in net.modules())
    assert all(
        any(isinstance(mod, bn) for mod in net.modules()) for net in (nobn.generator, nobn.discriminator)
    )


@pytest.mark.parametrize(
    "name,info",
    [
        ("edgan", DIGITS),
        ("edgan", PAIRED),
        ("edgan", GRAY2RGB),
        ("edgan-coupled", DataInfo("images", (3, 28, 28))),
        ("edgan-pix2pix", PAIRED),
        ("edgan-pix2pix", DataInfo("paired", (1, 32, 32), (3, 32, 32))),
        ("edgan-pix2pix-coupled", GRAY2RGB),
        ("edgan-caae", DIGITS),
        ("edgan-caae-coupled", DataInfo("images", (3, 32, 32), num_classes=3)),
    ],
)
def test_shapes_sample_and_step(name, info):
    m = _model(name, info)
    b = _batch(info)
    out_shape = (4, *(info.target_shape or info.shape))
    i_ed, i_g, out = m.decompose(b.x, b.y)
    assert i_ed.shape == i_g.shape == out.shape == out_shape
    assert out.abs().max() <= 1 and i_g.abs().max() <= 1
    s = m.sample(3, batch=b)
    if info.kind == "paired":
        parts = [s] if m.coupled else list(s)
        assert len(parts) == (1 if m.coupled else 3)
    else:
        parts = list(s)
        assert len(parts) == (2 if m.coupled else 4) and torch.equal(parts[0], b.x[:3])
    assert all(p.shape == (3, *out_shape[1:]) or p is parts[0] for p in parts)
    if m.coupled:
        assert torch.equal(i_g, torch.zeros_like(i_g))
    logs = loss_floats(m.training_step(b))
    expected = {"l1", "loss_d", "d_real", "d_fake", "loss_g"} | ({"residual"} if not m.coupled else set())
    if "caae" in name:
        expected |= {"loss_ez", "loss_dz"}
    assert set(logs) == expected


def test_sample_without_batch():
    torch.manual_seed(0)
    m = _model("edgan")
    g = torch.Generator().manual_seed(1)
    a = m.sample(5, g)
    assert a.shape == (5, 1, 16, 16) and a.abs().max() <= 1
    assert torch.equal(a, m.sample(5, torch.Generator().manual_seed(1)))
    c = _model("edgan-caae")
    s = c.sample(12, torch.Generator().manual_seed(0))
    assert s.shape == (12, 1, 16, 16) and s.abs().max() <= 1
    # labels cycle 0..9: rows 0 and 10 share the class, and generate() with explicit labels agrees
    z = torch.rand(12, 10, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.equal(c.generate(z, torch.arange(12) % 10), s)
    p = _model("edgan-pix2pix")
    with pytest.raises(ValueError, match="needs batch="):
        p.sample(2)


@pytest.mark.parametrize("name", DECOUPLED)
def test_zero_residual_init_starts_from_the_reconstruction(name):
    """residual_init=zero: I_G = 0 at the start, so Î = I_ED; G still learns (its last layer gets a
    gradient)."""
    m = _model(name, extra=["residual_init=zero"])
    b = _batch(_info(name))
    i_ed, i_g, out = m.decompose(b.x, b.y)
    assert torch.equal(i_g, torch.zeros_like(i_g)) and torch.equal(out, i_ed.clamp(-1, 1))
    default = _model(name)
    assert default.decompose(b.x, b.y)[1].abs().sum() > 0
    m.training_step(b)
    assert m.decompose(b.x, b.y)[1].abs().sum() > 0


def test_reconstruct_and_translate_only_where_they_apply():
    assert hasattr(_model("edgan"), "reconstruct") and not hasattr(_model("edgan"), "translate")
    assert hasattr(_model("edgan", PAIRED), "translate") and not hasattr(
        _model("edgan", PAIRED), "reconstruct"
    )
    assert hasattr(_model("edgan-pix2pix"), "translate")
    assert not hasattr(_model("edgan-caae"), "reconstruct")  # it needs labels
    m = _model("edgan-pix2pix")
    b = _batch(PAIRED)
    assert torch.equal(m.translate(b.x), m.decompose(b.x)[2])


def test_bad_data_and_config():
    with pytest.raises(ValueError, match="paired"):
        build_model("edgan-pix2pix", DIGITS)
    with pytest.raises(ValueError, match="labelled images"):
        build_model("edgan-caae", DataInfo("images", (1, 16, 16)))
    with pytest.raises(ValueError, match="images"):
        build_model("edgan", DataInfo("points", (2,)))
    with pytest.raises(ValueError, match="square"):
        build_model("edgan", DataInfo("images", (1, 16, 32)))
    with pytest.raises(ValueError, match="resize the data"):
        build_model("edgan", DataInfo("images", (1, 10, 10)))
    with pytest.raises(ValueError, match="same size"):
        build_model("edgan", DataInfo("paired", (1, 16, 16), (3, 32, 32)))
    with pytest.raises(ValueError, match="gan_loss"):
        build_model("edgan", DIGITS, ["gan_loss=wgan"])
    with pytest.raises(ValueError, match="output_act"):
        build_model("edgan", DIGITS, ["output_act=relu"])
    with pytest.raises(ValueError, match="adv_weight"):
        build_model("edgan-coupled", DIGITS, ["adv_weight=-1"])
    with pytest.raises(ValueError, match="z_dim"):
        build_model("edgan", DIGITS, ["z_dim=0"])
    with pytest.raises(ValueError, match="d_layers"):
        build_model("edgan-pix2pix", PAIRED, ["d_layers=3"])
    with pytest.raises(ValueError, match="norm"):
        build_model("edgan-pix2pix", PAIRED, ["norm=layer"])
    with pytest.raises(ValueError, match="residual_init"):
        build_model("edgan", DIGITS, ["residual_init=ones"])
    with pytest.raises(ValueError, match="z_adv_weight"):
        build_model("edgan-caae", DIGITS, ["z_adv_weight=-1"])
    with pytest.raises(ValueError, match="labels"):
        _model("edgan-caae").training_step(Batch(x=torch.zeros(4, 1, 16, 16)))


# ---- the decoupled update paths ------------------------------------------------------------------------


def _gan_inputs(m, b):
    inp, target, y = m._io(b)
    i_ed, code = m._ed(inp, y)
    return inp, target, y, i_ed.detach(), edgan_mod._detach(code)


@pytest.mark.parametrize("name", DECOUPLED)
def test_reconstruction_step_updates_enc_and_dec_only(name):
    m = _model(name)
    b = _batch(_info(name))
    inp, target, y = m._io(b)
    _clear_grads(m)
    before = _snapshot(m)
    logs, i_ed, _code = m.reconstruction_step(inp, target, y)
    ed = {"decoder"} if "pix2pix" in name else {"encoder", "decoder"}
    _check_touched(m, before, ed)
    assert not i_ed.requires_grad and logs["l1"] > 0


@pytest.mark.parametrize("name", DECOUPLED)
def test_discriminator_step_updates_d_only(name):
    m = _model(name)
    inp, target, y, i_ed, code = _gan_inputs(m, _batch(_info(name)))
    fake = m.output(i_ed, m._residual(code))
    _clear_grads(m)
    before = _snapshot(m)
    m.discriminator_step(target, fake, inp, y)
    _check_touched(m, before, {"discriminator"})


@pytest.mark.parametrize("name", DECOUPLED)
def test_generator_step_updates_g_only_and_matches_eq8(name):
    """After the adversarial (G) step Enc, Dec and D are unchanged and received no gradient; G's
    gradient is that of BCE(D(I_ED + G(z)), 1) with I_ED and z constants (reference add)."""
    m = _model(name)
    inp, _target, y, i_ed, code = _gan_inputs(m, _batch(_info(name)))
    # expected gradient of G, by the pure-PyTorch reference of the residual add (same dropout draw)
    torch.manual_seed(5)
    ref = m._disc(m.discriminator, residual_add_ref(i_ed, m._residual(code)), inp, y)
    want = torch.autograd.grad(
        F.binary_cross_entropy_with_logits(ref, torch.ones_like(ref)), list(m.generator.parameters())
    )
    torch.manual_seed(5)
    fake = m.output(i_ed, m._residual(code))
    _clear_grads(m)
    before = _snapshot(m)
    m.generator_step(fake, inp, y)
    _check_touched(m, before, {"generator"})
    for p, g in zip(m.generator.parameters(), want):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)


def test_enc_gets_no_adversarial_gradient_even_with_z_attached():
    """The fused op's detach_base keeps I_ED's graph out of G's loss: built from a *non-detached*
    I_ED, G's loss still sends nothing to Dec (z detached keeps it from Enc)."""
    m = _model("edgan")
    b = _batch(DIGITS)
    z = m.encode(b.x)
    i_ed = m.decoder(z)
    fake = m.output(i_ed, m.generator(z.detach()))
    _clear_grads(m)
    m.generator_step(fake, b.x, None)
    assert all(p.grad is None for net in (m.encoder, m.decoder) for p in net.parameters())


def test_training_step_order_and_fused_op(monkeypatch):
    """One iteration = ED step, (CAAE: D_z step), D step, G step; Î comes from the fused
    residual_add with detach_base=True and the paper's plain sum."""
    calls = []
    real = edgan_mod.residual_add

    def spy(base, residual, activation=None, detach_base=True, **kw):
        calls.append((activation, detach_base, _backend.select("residual_add", (base, residual))))
        return real(base, residual, activation, detach_base, **kw)

    monkeypatch.setattr(edgan_mod, "residual_add", spy)
    for name, order in [
        ("edgan", ["ed", "discriminator", "generator"]),
        ("edgan-caae", ["ed", "z_discriminator", "discriminator", "generator"]),
        ("edgan-coupled", ["discriminator", "ed"]),
        ("edgan-caae-coupled", ["discriminator", "ed", "z_discriminator"]),
    ]:
        m = _model(name)
        seen = []
        orig = m.update
        m.update = lambda opt, loss, orig=orig, seen=seen: (seen.append(opt), orig(opt, loss))
        m.training_step(_batch(_info(name)))
        assert seen == order, name
    assert calls and all(c == ("none", True, "cpp") for c in calls)  # the native kernel on CPU


def test_optimizers_own_disjoint_parameters():
    for name in NAMES:
        m = _model(name)
        ids = [{id(p) for g in o.param_groups for p in g["params"]} for o in m.optimizers.values()]
        assert sum(map(len, ids)) == len(set().union(*ids)) == sum(1 for _ in m.parameters()), name
        assert ("generator" in m.optimizers) == (not m.coupled)


def test_caae_z_discriminator_paths():
    """CAAE: D_z's step touches D_z only; Enc's E_z term reaches Enc (not D_z) in the ED step."""
    m = _model("edgan-caae")
    b = _batch(DIGITS)
    inp, target, y = m._io(b)
    _, _, code = m.reconstruction_step(inp, target, y)
    _clear_grads(m)
    before = _snapshot(m)
    m._extra_steps(code)
    _check_touched(m, before, {"z_discriminator"})
    # the E_z term alone: gradient into Enc only
    _clear_grads(m)
    loss, _ = m._ed_extra(m._ed(inp, y)[1])
    loss.backward()
    assert any(p.grad is not None for p in m.encoder.parameters())
    assert all(p.grad is None for p in m.z_discriminator.parameters())


# ---- the coupled baseline ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["edgan-coupled", "edgan-pix2pix-coupled", "edgan-caae-coupled"])
def test_coupled_puts_both_losses_into_dec(name):
    """ED+GAN: Dec's gradient is grad L_const + lambda grad L_adv(G) (Eq. 1), the adversarial part is
    non-zero, and D receives nothing from that step."""
    m = _model(name, extra=["adv_weight=0.5"] + (["z_adv_weight=0"] if "caae" in name else []))
    inp, target, y = m._io(_batch(_info(name)))
    i_ed, code = m._ed(inp, y)
    dec = list(m.decoder.parameters())
    l1 = (target - i_ed).abs().mean()
    logits = m._disc(m.discriminator, i_ed, inp, y)
    adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    g_l1 = torch.autograd.grad(l1, dec, retain_graph=True)
    g_adv = torch.autograd.grad(adv, dec, retain_graph=True)
    assert sum(g.abs().sum() for g in g_adv) > 0
    m.optimizers["ed"] = torch.optim.SGD(
        [p for n in m.ed_networks for p in getattr(m, n).parameters()], lr=0.0
    )
    _clear_grads(m)
    m.coupled_ed_step(inp, target, y, i_ed, code)
    for p, a, b in zip(dec, g_l1, g_adv):
        torch.testing.assert_close(p.grad, a + 0.5 * b, rtol=1e-4, atol=1e-7)
    assert all(p.grad is None for p in m.discriminator.parameters())
    if "pix2pix" not in name:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.encoder.parameters())


def test_coupled_lambda_changes_dec_update_but_decoupled_weight_does_not_reach_dec():
    """The weight matters for ED+GAN's Dec and cannot matter for ED//GAN's Dec (it only scales G's
    loss): ED//GAN's Enc/Dec after a step are the same for every adv_weight."""
    dec = {}
    for w in (1.0, 1e-3):
        m = _model("edgan", extra=[f"adv_weight={w}"])
        m.training_step(_batch(DIGITS))
        dec[w] = [p.detach().clone() for p in [*m.encoder.parameters(), *m.decoder.parameters()]]
    assert all(torch.equal(a, b) for a, b in zip(dec[1.0], dec[1e-3]))
    cdec = {}
    for w in (1.0, 1e-3):
        m = _model("edgan-coupled", extra=[f"adv_weight={w}"])
        m.training_step(_batch(DIGITS))
        cdec[w] = [p.detach().clone() for p in m.decoder.parameters()]
    assert not all(torch.equal(a, b) for a, b in zip(cdec[1.0], cdec[1e-3]))


def test_gan_loss_forms():
    logits = torch.tensor([-2.0, 0.5, 3.0])
    d = torch.sigmoid(logits)
    torch.testing.assert_close(g_loss_bce(logits), -torch.log(d).mean())  # gan_loss="nonsaturating"
    torch.testing.assert_close(g_loss_saturating(logits), torch.log(1 - d).mean())  # Eq. 8 as printed
    for form, loss in (("nonsaturating", g_loss_bce), ("saturating", g_loss_saturating)):
        m = _model("edgan", extra=(f"gan_loss={form}",))
        torch.testing.assert_close(m._adv_g(logits), loss(logits))  # the model's G loss follows gan_loss


def test_evaluate_keys_and_no_side_effects():
    data = load_data("digits16", "test")
    m = _model("edgan")
    bn = {k: v.clone() for k, v in m.named_buffers()}
    state = torch.get_rng_state()
    out = m.evaluate(data, torch.Generator().manual_seed(0))
    assert set(out) == {"l1", "l1_ed", "psnr", "residual"} and out["residual"] > 0
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(v, bn[k]) for k, v in m.named_buffers())
    assert all(net.training for net in m.children())


def test_bf16_autocast_step():
    m = _model("edgan")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logs = m.training_step(_batch(DIGITS))
    assert all(v == v for v in logs.values())


# ---- through the loop, eval, CLI -----------------------------------------------------------------------


def test_train_grid_with_residual_resume_and_eval(tmp_path):
    """edgan on digits: sample grids are (input, I_ED, I_G, Î) quadruples; resume reproduces the
    loss curve; pygan eval computes reconstruction metrics and FID (digits features)."""
    from PIL import Image

    kw = dict(overrides=TINY["edgan"], n_samples=4, progress=False, tensorboard=False, log_every=1)
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    train("edgan", "digits16", full, 4, **kw)
    train("edgan", "digits16", part, 2, **kw)
    train("edgan", "digits16", part, 4, resume=True, **kw)

    def rows(r):
        with open(run_paths(r)["metrics"]) as f:
            return [
                {k: v for k, v in json.loads(line).items() if k not in ("time", "img_per_s")} for line in f
            ]

    assert rows(full) == rows(part) and len(rows(full)) == 4
    # 4 samples as (x, I_ED, I_G, Î), 2 per row: 2 rows of 8 tiles of 16 px (+2 pad), x4 enlarged
    assert Image.open(run_paths(full)["samples"] + "/last.png").size == (584, 152)
    from pygan.evaluate import evaluate_run

    res = evaluate_run(full, n_samples=64)
    assert {"reconstruction", "fid", "kid"} <= set(res["metrics"])
    assert 0 < res["metrics"]["reconstruction"]["psnr"] < 100


def test_train_pix2pix_paired_grid_and_translation_eval(tmp_path):
    from PIL import Image

    run = str(tmp_path / "p")
    m = train(
        "edgan-pix2pix",
        PHOTO,
        run,
        2,
        overrides=TINY["edgan-pix2pix"],
        n_samples=2,
        progress=False,
        tensorboard=False,
    )
    # one row per sample: (input, I_ED, I_G, Î, target), 16 px tiles + 2 px padding, x4 enlarged
    assert Image.open(run_paths(run)["samples"] + "/last.png").size == ((5 * 18 + 2) * 4, (2 * 18 + 2) * 4)
    assert m.generator is not m.decoder
    from pygan.evaluate import evaluate_run

    res = evaluate_run(run, n_samples=16)
    assert "translation" in res["metrics"] and "fid" in res["skipped"]
    loaded, _, _ = load_run(run)
    assert type(loaded).__name__ == "EDGANPix2Pix"


def test_cli_train_caae_and_help(tmp_path, capsys):
    run = str(tmp_path / "c")
    args = [
        "train",
        "edgan-caae",
        "--data",
        "digits16",
        "--steps",
        "2",
        "--out",
        run,
        "--no-progress",
        "--no-tensorboard",
    ]
    assert main([*args, *[a for s in TINY["edgan-caae"] for a in ("--set", s)]]) == 0
    assert main(["sample", run, "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in NAMES)


@pytest.mark.slow
def test_compiled_networks_match_eager():
    logs = {}
    for mode in ("eager", "compile"):
        m = _model("edgan")
        if mode == "compile":
            assert set(m.compile_networks()) == {"encoder", "decoder", "generator", "discriminator"}
        logs[mode] = [loss_floats(m.training_step(_batch(DIGITS, seed=i))) for i in range(2)]
    for a, b in zip(logs["eager"], logs["compile"]):
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-3, abs=1e-4), k
