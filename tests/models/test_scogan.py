"""SCoGAN (the SCoGAN thesis, pygan/models/scogan.py): no weight sharing (and its switches), the four
regularisers against an independent replay of the thesis' separate gradient tapes, no gradient
crossing between the generators, frozen auxiliary networks, the semantic classifier (training,
caching, files, errors) and the loop/eval plumbing."""

import copy
import json
import os

import pytest
import torch
from torch import nn

from pygan.data import DataInfo, load_data
from pygan.models import build_model, frozen
from pygan.models import scogan as S
from pygan.ops import feature_regularizer_ref, style_loss_ref

TINY = ["g_width=16", "d_width=4", "batch_size=4", "enc_width=4", "sl_epochs=1"]
ALL = "regularizers=fr,sl,cc,pl"


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    old = os.environ.get("PYGAN_CACHE")
    os.environ["PYGAN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("PYGAN_CACHE")
    else:
        os.environ["PYGAN_CACHE"] = old


@pytest.fixture(scope="module")
def edge():
    return load_data("digits16-edge")


def _batch(data, n=8):
    b = data.batch(torch.arange(n))
    b.x_b = data.x[data.domain == 1][:n]
    b.x = data.x[data.domain == 0][:n]
    return b


def _model(data, *extra, seed=0):
    torch.manual_seed(seed)
    m = build_model("scogan", data.info, [*TINY, *extra])
    m.optimizers = m.configure_optimizers()
    return m


def _sgd(m):
    return {
        k: torch.optim.SGD(
            [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in o.param_groups], lr=0.05
        )
        for k, o in m.configure_optimizers().items()
    }


def test_no_weight_sharing_by_default_and_the_switches(edge):
    m = _model(edge)
    g1, g2 = m.generators.g1, m.generators.g2
    d1, d2 = m.discriminators.d1, m.discriminators.d2
    assert not {id(p) for p in g1.parameters()} & {id(p) for p in g2.parameters()}
    assert not {id(p) for p in d1.parameters()} & {id(p) for p in d2.parameters()}
    assert m.generators.shared == [] and m.discriminators.shared == []
    m = _model(edge, "share_fc=true", "share_discriminators=true")
    assert m.generators.shared == [0] and m.generators.g1.stages[0] is m.generators.g2.stages[0]
    assert m.generators.g1.stages[1] is not m.generators.g2.stages[1]
    n = len(m.discriminators.d1.stages)
    assert m.discriminators.shared == list(range(1, n))
    assert S.SCoGAN.Config().loss == "wgan-gp" and S.SCoGAN.Config().regularizers == ("fr",)
    c = S.SCoGAN.Config()
    assert (c.fr_weight, c.fr_layers, c.sl_weight, c.cc_weight) == (10.0, 3, 10.0, 10.0)
    assert (c.pl_content_weight, c.pl_style_weight, c.pl_gram_norm, c.cc_norm) == (1e-3, 1e-11, "hw", "l1")


def test_feature_regulariser_compares_the_first_k_layers_after_the_dense_one(edge):
    m = _model(edge, "regularizers=fr", "fr_layers=2", "fr_weight=1")
    z = m.noise(4)
    _, (f1, _) = m.generators(z, return_features=True)
    assert [t.shape[1:] for t in f1] == [(16, 4, 4), (16, 4, 4), (8, 8, 8), (4, 16, 16), (1, 16, 16)]
    with frozen(m.discriminators):
        torch.manual_seed(3)
        _, _, logs = m.generator_losses(m.noise(4))
    torch.manual_seed(3)
    z = m.noise(4)
    (_, _), (f1, f2) = m.generators(z, return_features=True)
    assert logs["fr"] == pytest.approx(float(feature_regularizer_ref(f1[1:3], f2[1:3]).detach()), rel=1e-5)


@pytest.mark.parametrize("regs", ["fr", "sl", "cc", "pl", "sl,fr", "sl,cc", "fr,cc", "fr,sl,cc,pl"])
def test_no_gradient_crosses_between_the_generators(edge, regs):
    """L_G1 reaches G1 only (G2's outputs are constants in it), L_G2 G2 only; neither reaches the
    discriminators, the classifier, the encoder or the feature network."""
    m = _model(edge, f"regularizers={regs}")
    m.prepare()
    b = _batch(edge, 4)
    for i in (0, 1):
        m.zero_grad(set_to_none=True)
        with frozen(m.discriminators):
            losses = m.generator_losses(m.noise(4), (b.x, b.x_b))
        losses[i].backward()
        own, other = (m.generators.g1, m.generators.g2) if i == 0 else (m.generators.g2, m.generators.g1)
        assert all(p.grad is None for p in other.parameters()), f"L_G{i + 1} reached the other generator"
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in own.parameters())
        for net in ("discriminators", "classifier", "encoder"):
            if hasattr(m, net):
                assert all(p.grad is None for p in getattr(m, net).parameters()), f"L_G{i + 1} reached {net}"
        if m.perceptual() is not None:
            assert all(p.grad is None for p in m.perceptual().parameters())


def test_training_step_replays_the_thesis_separate_tapes(edge):
    """One iteration with all four regularisers equals the thesis' formulation: L_G1 and L_G2 from
    the equations with reference ops and *no* detaching, each differentiated w.r.t. its own
    generator only (Listing 6.15's tapes), the encoder w.r.t. the unweighted L_cyc."""
    extra = [ALL, "n_critic=2", "pl_content_weight=0.5", "pl_style_weight=2", "fr_weight=3", "sl_weight=4"]
    m = _model(edge, *extra, "cc_weight=2")
    m.prepare()
    m.optimizers = _sgd(m)
    for mod in m.modules():
        if isinstance(mod, nn.Dropout):
            mod.eval()
    twin = copy.deepcopy(m)
    twin.optimizers = _sgd(twin)
    batch = _batch(edge)
    torch.manual_seed(1)
    logs = m.training_step(batch)
    torch.manual_seed(1)
    expect = _replay(twin, batch)
    for k, v in expect.items():
        assert logs[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
    for (name, p), q in zip(m.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def _grads(loss, module, into):
    params = [p for p in module.parameters() if p.requires_grad]
    for p, g in zip(params, torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)):
        if g is not None:
            into[p] = into[p] + g if p in into else g


def _step(opt, grads):
    opt.zero_grad(set_to_none=True)
    for p, g in grads.items():
        p.grad = g
    opt.step()


def _replay(m, batch):
    from pygan.ops import gradient_penalty_ref

    c = m.config
    G1, G2, D1, D2 = m.generators.g1, m.generators.g2, m.discriminators.d1, m.discriminators.d2
    for part in batch.split(2):
        z = torch.empty(4, 100).uniform_(-1, 1)
        with torch.no_grad():
            f1, f2 = G1(z), G2(z)
        alpha = torch.rand(8)
        l1 = D1(f1).mean() - D1(part.x).mean() + gradient_penalty_ref(D1, part.x, f1, alpha=alpha[:4])
        l2 = D2(f2).mean() - D2(part.x_b).mean() + gradient_penalty_ref(D2, part.x_b, f2, alpha=alpha[4:])
        grads = {}
        _grads(l1, D1, grads)
        _grads(l2, D2, grads)
        _step(m.optimizers["discriminators"], grads)
    real1, real2 = part.x, part.x_b
    z = torch.empty(4, 100).uniform_(-1, 1)
    x1, h1 = G1(z, return_features=True)
    x2, h2 = G2(z, return_features=True)
    clf, enc, net = m.classifier, m.encoder, m.perceptual().net.net
    fr = feature_regularizer_ref(h1[1:4], h2[1:4])
    sl = (torch.softmax(clf(x1), 1) - torch.softmax(clf(x2), 1)).square().mean()
    cyc = (enc(x1) - z).abs().mean() + (enc(x2) - z).abs().mean()
    m1, m2, r1, r2 = (net.feature_maps(x) for x in (x1, x2, real1, real2))
    content = c.pl_content_weight * (m1[2] - m2[2]).square().mean()
    style1 = c.pl_style_weight * sum(style_loss_ref(a, b.detach(), "hw") for a, b in zip(m1, r1)) / 3
    style2 = c.pl_style_weight * sum(style_loss_ref(a, b.detach(), "hw") for a, b in zip(m2, r2)) / 3
    coupling = c.fr_weight * fr + c.sl_weight * sl + c.cc_weight * cyc + content
    L1 = -D1(x1).mean() + coupling + style1
    L2 = -D2(x2).mean() + coupling + style2
    g = {}
    _grads(L1, G1, g)
    _grads(L2, G2, g)
    ge = {}
    _grads(cyc, enc, ge)
    _step(m.optimizers["generators"], g)
    _step(m.optimizers["encoder"], ge)
    return {
        "loss_g1": L1.item(),
        "loss_g2": L2.item(),
        "fr": fr.item(),
        "sl": sl.item(),
        "cyc": cyc.item(),
        "content": content.item(),
        "style1": style1.item(),
        "style2": style2.item(),
        "loss_enc": cyc.item(),
    }


def test_frozen_networks_stay_frozen_and_the_classifier_is_saved_with_the_model(edge, monkeypatch):
    m = _model(edge, ALL, "n_critic=1")
    batch = _batch(edge)
    m.train()
    m.training_step(batch[:4])
    clf = copy.deepcopy(m.classifier.state_dict())
    pl = copy.deepcopy(m.perceptual().state_dict())
    assert bool(m.classifier_ready) and not m.classifier.training and not m.perceptual().net.training
    for _ in range(2):
        m.train()
        m.training_step(batch[:4])
    for k, v in m.classifier.state_dict().items():
        assert torch.equal(v, clf[k]), k
    for k, v in m.perceptual().state_dict().items():
        assert torch.equal(v, pl[k]), k
    assert all(not p.requires_grad and p.grad is None for p in m.classifier.parameters())
    assert all(not p.requires_grad and p.grad is None for p in m.perceptual().parameters())
    assert "classifier.net.0.weight" in m.state_dict() and not any(
        k.startswith("_pl") for k in m.state_dict()
    )
    # a reloaded model has the trained classifier from its state dict: nothing is retrained
    fresh = build_model("scogan", edge.info, [*TINY, ALL, "n_critic=1"])
    fresh.load_state_dict(m.state_dict())
    monkeypatch.setattr(S, "_cached_semantic_classifier", lambda *a: pytest.fail("retrained"))
    fresh.optimizers = fresh.configure_optimizers()
    fresh.training_step(batch[:4])


def test_semantic_classifier_training_cache_and_files(edge, tmp_path, monkeypatch):
    state = torch.get_rng_state()
    clf = S._cached_semantic_classifier(edge.info, "both", 1)
    assert torch.equal(torch.get_rng_state(), state)  # the run's RNG stream does not depend on the cache
    cfg = clf.train_config
    assert cfg["data"] == "digits16-edge" and cfg["train_on"] == "both" and cfg["epochs"] == 1
    assert isinstance(clf, S.SemanticClassifier) and not any(p.requires_grad for p in clf.parameters())
    # cached: a second request does not train
    monkeypatch.setattr(S, "train_semantic_classifier", lambda *a, **k: pytest.fail("not cached"))
    again = S._cached_semantic_classifier(edge.info, "both", 1)
    for a, b in zip(clf.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    path = S.save_semantic_classifier(clf, tmp_path / "clf.pt")
    m = build_model("scogan", edge.info, [*TINY, "regularizers=sl", f"sl_classifier={path}"])
    assert bool(m.classifier_ready)
    for a, b in zip(clf.state_dict().values(), m.classifier.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="takes 1x16px"):
        build_model(
            "scogan", load_data("digits32-edge").info, [*TINY, "regularizers=sl", f"sl_classifier={path}"]
        )
    with pytest.raises(FileNotFoundError, match=r"python -m pygan\.models\.scogan classifier"):
        S.load_semantic_classifier(tmp_path / "missing.pt")
    torch.save({"state_dict": {}, "meta": {"arch": "other"}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a SCoGAN semantic classifier"):
        S.load_semantic_classifier(tmp_path / "bad.pt")


def test_semantic_classifier_learns_both_domains():
    """Table B.1 trained with pygan's loop on both domains of digits16-negative classifies both."""
    model = S.train_semantic_classifier("digits16-negative", epochs=3)
    acc = model.train_config
    assert acc["test_accuracy_a"] > 0.8 and acc["test_accuracy_b"] > 0.8, acc
    probs = model.probabilities(torch.zeros(2, 1, 16, 16))
    torch.testing.assert_close(probs.sum(1), torch.ones(2))


def test_classifier_cli(tmp_path, capsys):
    out = tmp_path / "c.pt"
    assert S.main(["classifier", "--data", "digits16-negative", "--out", str(out), "--epochs", "1"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert S.load_semantic_classifier(out).meta["size"] == 16


def test_bad_input(edge):
    for bad, msg in (
        ("regularizers=fr,xx", "regularizers must be"),
        ("regularizers=fr,fr", "regularizers must be"),
        ("fr_layers=9", "fr_layers must be"),
        ("fr_weight=-1", "fr_weight must be"),
        ("sl_train_on=b", "sl_train_on must be"),
        ("cc_norm=l2", "cc_norm must be"),
        ("pl_extractor=alexnet", "pl_extractor must be"),
        ("pl_gram_norm=c", "pl_gram_norm must be"),
    ):
        with pytest.raises(ValueError, match=msg):
            build_model("scogan", edge.info, [*TINY, bad])
    with pytest.raises(ValueError, match="pl_weights"):
        build_model("scogan", edge.info, [*TINY, "regularizers=pl", "pl_extractor=vgg19"])
    celeba = DataInfo(
        "two-domain", (3, 16, 16), shape_b=(3, 16, 16), meta={"attr": "Smiling", "domains": ["a", "b"]}
    )
    with pytest.raises(ValueError, match="sl_classifier=PATH"):
        build_model("scogan", celeba, [*TINY, "regularizers=sl"])
    build_model("scogan", celeba, [*TINY, "regularizers=fr,cc,pl"])  # no labels needed


def test_perceptual_loss_with_local_vgg19_weights(edge, tmp_path):
    from pygan.nn import VGG19

    torch.manual_seed(0)
    path = tmp_path / "vgg19.pth"
    torch.save(VGG19(include_classifier=True).state_dict(), path)
    m = _model(
        edge,
        "regularizers=pl",
        f"pl_weights={path}",
        "pl_content_weight=1",
        "pl_style_weight=1",
        "n_critic=1",
    )
    assert m.pl_kind == "vgg19" and m.perceptual().kind == "vgg19"
    logs = m.training_step(_batch(edge)[:4])
    assert logs["content"] > 0 and logs["style1"] > 0 and logs["style2"] > 0
    assert "_pl" not in str(list(m.state_dict()))


def test_train_resume_and_eval(tmp_path):
    """All four regularisers through pygan.train: resuming from the step-2 checkpoint continues the
    uninterrupted loss curve; pygan eval gives agreement and per-domain FID."""
    from pygan.cli import main
    from pygan.train import train

    kw = dict(
        overrides=[*TINY, ALL, "n_critic=2"],
        log_every=1,
        sample_every=0,
        ckpt_every=2,
        progress=False,
        tensorboard=False,
        n_samples=8,
    )
    data = "digits16-negative"  # (its evaluation needs no domain classifier: negatives are undone)
    train("scogan", data, str(tmp_path / "a"), 4, **kw)
    train("scogan", data, str(tmp_path / "b"), 2, **kw)
    train("scogan", data, str(tmp_path / "b"), 4, resume=True, **kw)

    def curve(run):
        return [
            {k: v for k, v in json.loads(line).items() if k not in ("time", "img_per_s")}
            for line in open(tmp_path / run / "metrics.jsonl")
        ]

    assert curve("a") == curve("b") and len(curve("a")) == 4 and "cyc" in curve("a")[0]
    assert main(["eval", str(tmp_path / "a"), "--option", "n_samples=32", "--option", "batch_size=32"]) == 0
    res = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert set(res["metrics"]) == {"semantic_agreement", "fid_per_domain"}
    assert set(res["metrics"]["fid_per_domain"]) == {"original", "negative"}


def test_cli_help():
    from pygan.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "scogan", "--help"])
    assert e.value.code == 0
