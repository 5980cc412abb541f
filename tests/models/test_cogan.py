"""CoGAN (the SCoGAN thesis, pygan/models/cogan.py): the thesis' architectures (shapes at the tables' widths),
hard weight sharing as the *same* Parameter objects, the objective (checked against an independent
replay with reference ops), gradient isolation, and the loop/CLI/eval plumbing on tiny runs."""

import copy
import dataclasses
import json

import pytest
import torch
from torch import nn

from pygan.data import DataInfo, load_data
from pygan.models import build_model, get_model
from pygan.models.cogan import CoGAN, discriminator_stages, generator_stages
from pygan.ops import gradient_penalty_ref
from tests.models.helpers import loss_floats, record_updates

TINY = ["g_width=16", "d_width=4", "batch_size=4"]


def _info(size=16, channels=1):
    return DataInfo("two-domain", (channels, size, size), shape_b=(channels, size, size), num_classes=10)


def _sgd(m):
    """SGD on the model's parameter groups (weight decay kept): the replays compare gradients, and
    Adam's first step would turn float noise in near-zero gradients into full-size steps."""
    return {
        k: torch.optim.SGD(
            [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in o.param_groups], lr=0.05
        )
        for k, o in m.configure_optimizers().items()
    }


def _no_dropout(*models):
    """Dropout draws from the global RNG in a different order in the replays: switch it off."""
    for m in models:
        for mod in m.modules():
            if isinstance(mod, nn.Dropout):
                mod.eval()


def _stage_shapes(stages, x):
    out = []
    for s in stages:
        x = s(x)
        out.append(tuple(x.shape[1:]))
    return out


def test_digit_networks_have_table_3_1_and_3_2_shapes():
    """At the thesis' widths (built on the meta device: no memory, no time)."""
    with torch.device("meta"):
        g = generator_stages("digits", 100, 3, 32, 1024)
        d = discriminator_stages("digits", 3, 32, 20, "layer")
        gs = _stage_shapes(g, torch.empty(2, 100))
        ds = _stage_shapes(d, torch.empty(2, 3, 32, 32))
    assert gs == [(1024, 4, 4), (1024, 4, 4), (512, 8, 8), (256, 16, 16), (128, 32, 32), (3, 32, 32)]
    assert ds == [(20, 16, 16), (50, 8, 8), (500,), ()]
    kernels = [
        m.kernel_size for s in g for m in s.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    assert kernels == [(4, 4), (3, 3), (3, 3), (3, 3), (6, 6)]
    assert isinstance(g[-1][-1], nn.Tanh) and not any(isinstance(m, nn.BatchNorm2d) for m in g[-1].modules())
    prelus = [m for s in g for m in s.modules() if isinstance(m, nn.PReLU)]
    assert len(prelus) == 5 and all(p.num_parameters == p.weight.shape[0] > 1 for p in prelus)
    with torch.device("meta"):
        g16 = generator_stages("digits", 100, 1, 16, 1024, first_conv=False)
    assert _stage_shapes(g16, torch.empty(1, 100, device="meta"))[1:] == [
        (512, 8, 8),
        (256, 16, 16),
        (1, 16, 16),
    ]


def test_face_networks_have_table_a1_and_a2_shapes():
    with torch.device("meta"):
        g = generator_stages("faces", 100, 3, 128, 1024)
        d = discriminator_stages("faces", 3, 128, 32, "layer")
        gs = _stage_shapes(g, torch.empty(2, 100))
        ds = _stage_shapes(d, torch.empty(2, 3, 128, 128))
    assert gs == [
        (1024, 4, 4),
        (512, 8, 8),
        (256, 16, 16),
        (128, 32, 32),
        (64, 64, 64),
        (32, 128, 128),
        (3, 128, 128),
    ]
    assert ds == [
        (32, 64, 64),
        (64, 32, 32),
        (128, 16, 16),
        (256, 8, 8),
        (512, 4, 4),
        (1024, 2, 2),
        (2048,),
        (),
    ]
    drops = [m.p for m in nn.Sequential(*d).modules() if isinstance(m, nn.Dropout)]
    assert drops == [0.1, 0.3, 0.3, 0.5, 0.5]
    norms = {type(m) for m in nn.Sequential(*d).modules() if isinstance(m, (nn.LayerNorm, nn.BatchNorm2d))}
    assert norms == {nn.LayerNorm}  # WGAN-GP: LayerNorm instead of BatchNorm
    with torch.device("meta"):
        d_bn = discriminator_stages("faces", 3, 64, 32, "batch")
    assert any(isinstance(m, nn.BatchNorm2d) for m in nn.Sequential(*d_bn).modules())


def test_hard_sharing_is_the_same_parameter_objects():
    for size, arch, g_shared in ((32, "digits", 5), (64, "faces", 4)):
        m = build_model("cogan", _info(size), ["g_width=32", "d_width=2", f"arch={arch}"])
        g1, g2 = m.generators.g1.stages, m.generators.g2.stages
        assert m.generators.shared == list(range(g_shared)) and len(g1) == g_shared + (
            1 if arch == "digits" else 2
        )
        for i in range(len(g1)):
            p1, p2 = list(g1[i].parameters()), list(g2[i].parameters())
            if i < g_shared:
                assert g1[i] is g2[i] and all(a is b for a, b in zip(p1, p2))
            else:
                assert not {id(p) for p in p1} & {id(p) for p in p2}
        d1, d2 = m.discriminators.d1.stages, m.discriminators.d2.stages
        assert d1[0] is not d2[0] and all(d1[i] is d2[i] for i in range(1, len(d1)))
        assert m.discriminators.shared == list(range(1, len(d1)))
        # each shared parameter is optimised once
        m.optimizers = m.configure_optimizers()
        for name, net in (("generators", m.generators), ("discriminators", m.discriminators)):
            params = [p for g in m.optimizers[name].param_groups for p in g["params"]]
            assert len(params) == len({id(p) for p in params}) == len(list(net.parameters()))
    # the thesis' shared-layer ablation: fewer shared generator layers
    m = build_model("cogan", _info(32), ["g_width=32", "d_width=2", "g_unshared=3"])
    assert m.generators.shared == [0, 1, 2]


def test_paper_defaults_resolve_by_architecture_and_loss():
    c = CoGAN.Config()
    assert (c.z_dim, c.gp_weight, c.batch_size, c.loss, c.g_width) == (100, 10.0, 128, "ns", 1024)
    with torch.device("meta"):
        digits = dataclasses.asdict(CoGAN(CoGAN.Config(loss="wgan-gp"), _info(32)).resolved_config)
        faces = dataclasses.asdict(CoGAN(CoGAN.Config(loss="wgan-gp"), _info(64, 3)).resolved_config)
        ns = dataclasses.asdict(CoGAN(CoGAN.Config(), _info(64, 3)).resolved_config)
    assert (digits["arch"], digits["n_critic"], digits["lr"], digits["betas"]) == (
        "digits",
        5,
        2e-4,
        (0.5, 0.999),
    )
    assert (digits["init"], digits["weight_decay"], digits["d_width"], digits["z_dist"]) == (
        "xavier",
        5e-4,
        20,
        "uniform",
    )
    assert (faces["arch"], faces["lr"], faces["betas"], faces["init"], faces["weight_decay"]) == (
        "faces",
        1e-4,
        (0.0, 0.9),
        "normal",
        1e-4,
    )
    assert (ns["n_critic"], ns["lr"], ns["betas"], ns["d_width"]) == (1, 2e-4, (0.5, 0.999), 32)


def test_weight_decay_is_on_kernels_only():
    m = build_model("cogan", _info(), TINY)
    opt = m.configure_optimizers()["generators"]
    decay, rest = opt.param_groups
    assert decay["weight_decay"] == pytest.approx(2 * 5e-4) and rest["weight_decay"] == 0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in rest["params"])


def test_init_and_latent():
    torch.manual_seed(0)
    m = build_model("cogan", _info(32), ["g_width=64", "d_width=8"])
    w = m.generators.g1.stages[2][0].weight  # ConvTranspose 64 -> 32, 3x3
    fan_in, fan_out = w.shape[1] * 9, w.shape[0] * 9
    assert w.std().item() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.1)
    assert all(float(p.weight.detach().mean()) == 0.25 for p in m.modules() if isinstance(p, nn.PReLU))
    z = m.noise(4000)
    assert z.shape == (4000, 100) and -1 <= float(z.min()) < -0.99 and 0.99 < float(z.max()) <= 1
    n = build_model("cogan", _info(64, 3), ["g_width=64", "d_width=4"])
    assert n.generators.g1.stages[1][0].weight.std().item() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("loss", ["ns", "wgan-gp"])
def test_training_step_implements_the_coupled_objective(loss):
    """One iteration equals an independent replay: per-domain losses from the equations with the
    reference penalty, each discriminator's / generator's gradient from its own loss (shared
    parameters get the sum of the two), the same Adam."""
    data = load_data("digits16-edge")
    torch.manual_seed(0)
    m = build_model("cogan", data.info, [*TINY, f"loss={loss}", "n_critic=2"])
    m.optimizers = _sgd(m)
    _no_dropout(m)
    twin = copy.deepcopy(m)
    twin.optimizers = _sgd(twin)
    batch = data.batch(torch.arange(8), torch.arange(8) + 1)
    batch.x_b = data.x[data.domain == 1][:8]
    torch.manual_seed(1)
    logs = m.training_step(batch)
    torch.manual_seed(1)
    expect = _replay(twin, batch, loss)
    for k in ("loss_d1", "loss_d2", "loss_g1", "loss_g2"):
        assert logs[k] == pytest.approx(expect[k], rel=1e-4, abs=1e-5), k
    for (name, p), q in zip(m.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def _apply(opt, grads: dict):
    opt.zero_grad(set_to_none=True)
    for p, g in grads.items():
        p.grad = g if p.grad is None else p.grad + g
    opt.step()


def _own_grads(loss, module, into):
    params = [p for p in module.parameters() if p.requires_grad]
    for p, g in zip(params, torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)):
        if g is not None:
            into[p] = g if p not in into else into[p] + g


def _replay(m, batch, loss):
    G1, G2 = m.generators.g1, m.generators.g2
    D1, D2 = m.discriminators.d1, m.discriminators.d2
    wgan = loss == "wgan-gp"
    out = {"loss_d1": 0.0, "loss_d2": 0.0}
    parts = batch.split(2)
    for part in parts:
        z = torch.empty(4, 100).uniform_(-1, 1)
        with torch.no_grad():
            f1, f2 = G1(z), G2(z)
        if wgan:
            l1 = D1(f1).mean() - D1(part.x).mean()
            l2 = D2(f2).mean() - D2(part.x_b).mean()
            alpha = torch.rand(8)
            l1 = l1 + gradient_penalty_ref(D1, part.x, f1, 10.0, alpha=alpha[:4])
            l2 = l2 + gradient_penalty_ref(D2, part.x_b, f2, 10.0, alpha=alpha[4:])
        else:
            bce = nn.functional.binary_cross_entropy_with_logits
            l1 = bce(D1(part.x), torch.ones(4)) + bce(D1(f1), torch.zeros(4))
            l2 = bce(D2(part.x_b), torch.ones(4)) + bce(D2(f2), torch.zeros(4))
        grads = {}
        _own_grads(l1, D1, grads)
        _own_grads(l2, D2, grads)
        _apply(m.optimizers["discriminators"], grads)
        out["loss_d1"] += l1.item() / 2
        out["loss_d2"] += l2.item() / 2
    z = torch.empty(4, 100).uniform_(-1, 1)
    s1, s2 = D1(G1(z)), D2(G2(z))
    g1 = -s1.mean() if wgan else nn.functional.softplus(-s1).mean()
    g2 = -s2.mean() if wgan else nn.functional.softplus(-s2).mean()
    grads = {}
    _own_grads(g1, G1, grads)
    _own_grads(g2, G2, grads)
    _apply(m.optimizers["generators"], grads)
    out.update(loss_g1=g1.item(), loss_g2=g2.item())
    return out


def test_gradient_isolation():
    """Discriminator steps never touch the generators (fakes detached); the generator step leaves
    the discriminators' weights and gradients alone."""
    data = load_data("digits16-negative")
    torch.manual_seed(0)
    m = build_model("cogan", data.info, [*TINY, "loss=wgan-gp", "n_critic=2"])
    m.optimizers = m.configure_optimizers()
    seen = record_updates(m)
    batch = data.batch(torch.arange(8), torch.nonzero(data.domain == 1).flatten()[:8])
    m.training_step(batch)
    assert [s[0] for s in seen] == ["discriminators", "discriminators", "generators"]
    for name, before, after in seen:
        other = "generators." if name == "discriminators" else "discriminators."
        for n, (w1, g1) in after.items():
            w0, g0 = before[n]
            if n.startswith(other):
                assert torch.equal(w1, w0), f"{name} update changed {n}"
                assert (g1 is None and g0 is None) or torch.equal(g1, g0), f"{name} touched the grad of {n}"
            elif n.endswith("weight") and "stages" in n:
                assert not torch.equal(w1, w0), f"{name} update left {n} unchanged"
    assert all(p.requires_grad for p in m.discriminators.parameters())


def test_sample_is_a_pair_from_the_same_z_in_eval_mode():
    m = build_model("cogan", _info(), TINY)
    bn = copy.deepcopy(dict(m.generators.named_buffers()))
    a1, b1 = m.sample(5, torch.Generator().manual_seed(3))
    a2, b2 = m.sample(5, torch.Generator().manual_seed(3))
    assert a1.shape == b1.shape == (5, 1, 16, 16) and torch.equal(a1, a2) and torch.equal(b1, b2)
    assert a1.abs().max() <= 1 and b1.abs().max() <= 1 and m.generators.training
    for k, v in m.generators.named_buffers():
        assert torch.equal(v, bn[k])
    # the same z: the shared layers make the pair identical up to the per-domain output layer
    z = m.noise(3)
    m.eval()
    (x1, x2), (f1, f2) = m.generators(z, return_features=True)
    assert all(a is b for a, b in zip(f1[:-1], f2[:-1]))
    torch.testing.assert_close(x1, m.generators.g1(z))
    torch.testing.assert_close(x2, m.generators.g2(z))


def test_bad_input():
    with pytest.raises(ValueError, match="two-domain"):
        build_model("cogan", DataInfo("images", (1, 16, 16)), TINY)
    with pytest.raises(ValueError, match="4 \\* 2\\^k"):
        build_model("cogan", _info(28), TINY)
    for bad, msg in (
        ("loss=wgan", "loss must be"),
        ("arch=dcgan", "arch must be"),
        ("init=he", "init must be"),
        ("z_dist=gauss", "z_dist must be"),
        ("n_critic=0", "n_critic must be"),
        ("g_unshared=0", "g_unshared must be"),
    ):
        with pytest.raises(ValueError, match=msg):
            build_model("cogan", _info(), [*TINY, bad])
    with pytest.raises(ValueError, match="too small"):
        build_model("cogan", _info(32), ["g_width=4"])
    with pytest.raises(ValueError, match="x_b"):
        m = build_model("cogan", _info(), TINY)
        m.optimizers = m.configure_optimizers()
        m.discriminator_step(load_data("digits16").batch(torch.arange(4)))


def test_train_resume_sample_and_eval(tmp_path, monkeypatch):
    """A few steps through pygan.train (checkpoint/resume equal to an uninterrupted run), pygan sample
    and pygan eval (semantic agreement and per-domain FID) on a tiny run."""
    from pygan.cli import main
    from pygan.train import train

    monkeypatch.setenv("PYGAN_CACHE", str(tmp_path / "cache"))
    kw = dict(
        overrides=[*TINY, "loss=wgan-gp", "n_critic=2"],
        log_every=1,
        sample_every=0,
        ckpt_every=2,
        progress=False,
        tensorboard=False,
        n_samples=8,
    )
    train("cogan", "digits16-negative", str(tmp_path / "a"), 4, **kw)
    train("cogan", "digits16-negative", str(tmp_path / "b"), 2, **kw)
    train("cogan", "digits16-negative", str(tmp_path / "b"), 4, resume=True, **kw)

    def curve(run):
        return [json.loads(line) for line in open(tmp_path / run / "metrics.jsonl")]

    a, b = curve("a"), curve("b")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b):
        assert {k: v for k, v in ra.items() if k not in ("time", "img_per_s")} == {
            k: v for k, v in rb.items() if k not in ("time", "img_per_s")
        }
    assert (tmp_path / "a" / "samples" / "last.png").is_file()
    assert main(["sample", str(tmp_path / "a"), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["eval", str(tmp_path / "a"), "--option", "n_samples=64", "--option", "batch_size=64"]) == 0
    res = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert res["kind"] == "coupled" and not res["skipped"]
    assert 0 <= res["metrics"]["semantic_agreement"]["agreement"] <= 1
    assert res["metrics"]["semantic_agreement"]["num_pairs"] == 64
    assert set(res["metrics"]["fid_per_domain"]) == {"original", "negative"}


def test_cli_help(capsys):
    from pygan.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "cogan", "--help"])
    assert e.value.code == 0
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert "cogan" in out and "g_unshared" in out
    assert get_model("cogan") is CoGAN


@pytest.mark.parametrize("loss", ["ns", "wgan-gp"])
def test_face_architecture_trains(loss):
    """Tables A.1/A.2 at 64 px (tiny widths): BatchNorm discriminators with the non-saturating loss,
    LayerNorm ones with WGAN-GP; both domains' images come out in [-1, 1]."""
    info = _info(64, 3)
    torch.manual_seed(0)
    m = build_model("cogan", info, ["g_width=32", "d_width=2", "batch_size=2", f"loss={loss}", "n_critic=1"])
    m.optimizers = m.configure_optimizers()
    norm = nn.LayerNorm if loss == "wgan-gp" else nn.BatchNorm2d
    assert any(isinstance(x, norm) for x in m.discriminators.modules())
    g = torch.Generator().manual_seed(0)
    batch = load_data("digits16").batch(torch.arange(2))
    batch.x = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    batch.x_b = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    loss_floats(m.training_step(batch))
    a, b = m.sample(3)
    assert a.shape == b.shape == (3, 3, 64, 64) and a.abs().max() <= 1


def test_eval_describes_edge_runs_at_their_side():
    """pygan eval's data description of a 16 px digits->edge run: domain B's classifier is trained on
    edges made at 16 px (then resized to the classifier's 32 px), cached under its own name."""
    from pygan.data import DataSpec
    from pygan.data import transforms as T
    from pygan.evaluate import run_data

    for size, name in ((16, "edge-16px"), (32, None)):
        info = load_data(f"digits{size}-edge", "test").info
        dom = run_data(DataSpec(f"digits{size}-edge", None, info))["domains"][1]
        assert dom.get("cache_name") == name
        x = load_data("digits32", "test").x[:4]
        expect = T.resize(T.edge(T.resize(x, 16)), 32) if size == 16 else T.edge(x)
        torch.testing.assert_close(dom["transform"](x), expect)
