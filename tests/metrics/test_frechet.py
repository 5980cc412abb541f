"""Fréchet distance, KID and the FID Inception: closed forms, hand computations, loading rules."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from pygan.backbones.inception import FID_WEIGHTS_FILE, FIDInceptionV3, load_fid_inception
from pygan.metrics import FeatureStats, fid, frechet_distance, gaussian_stats, kid, mmd2_unbiased
from pygan.metrics.frechet import extract_features, resolve_extractor, trace_sqrt_product


def _random_spd(d, rng, scale=1.0):
    a = rng.standard_normal((d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def test_frechet_commuting_closed_form():
    # Diagonal covariances commute: d² = |Δμ|² + Σ_i (sqrt(a_i) - sqrt(b_i))².
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = 1.0 + 0.0 + 6.25 + (1 - 3) ** 2 + (2 - 1) ** 2 + 0.0
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, abs=1e-12)


def test_frechet_non_commuting_2x2_closed_form():
    # For 2x2 M with real non-negative eigenvalues: Tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)).
    s1 = np.array([[2.0, 0.7], [0.7, 1.0]])
    s2 = np.array([[0.5, -0.3], [-0.3, 3.0]])
    assert not np.allclose(s1 @ s2, s2 @ s1)
    m = s1 @ s2
    tr_sqrt = math.sqrt(np.trace(m) + 2 * math.sqrt(np.linalg.det(m)))
    assert trace_sqrt_product(s1, s2) == pytest.approx(tr_sqrt, rel=1e-12)
    mu1, mu2 = np.array([0.3, -1.0]), np.array([1.0, 2.0])
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-12)


def test_trace_sqrt_matches_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    for d in (1, 5, 32):
        s1, s2 = _random_spd(d, rng), _random_spd(d, rng, 3.0)
        ref = np.trace(scipy_linalg.sqrtm(s1 @ s2)).real
        assert trace_sqrt_product(s1, s2) == pytest.approx(ref, rel=1e-9)


def test_frechet_singular_covariances_stay_real_and_finite():
    # Rank-deficient covariances (fewer samples than dimensions), where sqrtm(Σ1Σ2) can go complex.
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 20)), rng.standard_normal((6, 20))
    (m1, s1), (m2, s2) = gaussian_stats(x), gaussian_stats(y)
    v = frechet_distance(m1, s1, m2, s2)
    assert math.isfinite(v) and v > 0
    # Null-space eigenvalues come out as ~1e-15 instead of 0 and their square roots (~3e-8) add up:
    # the error for singular covariances is ~sqrt(machine eps) relative to Tr Σ (scipy's sqrtm too).
    assert abs(frechet_distance(m1, s1, m1, s1)) < 1e-6 * np.trace(s1)


def test_fid_x_x_is_zero_and_sample_fid_approaches_closed_form():
    g = torch.Generator().manual_seed(0)
    d = 4
    feats = torch.randn(400, d, generator=g, dtype=torch.float64)
    ident = nn.Identity()
    x = feats.view(400, d, 1, 1)
    assert fid(x, x, extractor=ident) == pytest.approx(0.0, abs=1e-9)
    # Gaussians with known parameters: sample FID -> closed form as N grows.
    rng = np.random.default_rng(2)
    s1, s2 = _random_spd(d, rng), _random_spd(d, rng, 2.0)
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    n = 200_000
    a = rng.multivariate_normal(mu1, s1, size=n)
    b = rng.multivariate_normal(mu2, s2, size=n)
    exact = frechet_distance(mu1, s1, mu2, s2)
    est = fid(torch.from_numpy(a).view(n, d, 1, 1), torch.from_numpy(b).view(n, d, 1, 1), extractor=ident)
    assert est == pytest.approx(exact, rel=0.02)


def test_feature_stats_streaming_equals_numpy_cov():
    rng = np.random.default_rng(3)
    f = rng.standard_normal((101, 7)) * 3 + 1
    st = FeatureStats()
    for i in range(0, 101, 17):
        st.update(torch.from_numpy(f[i : i + 17]))
    mu, cov = st.mean_cov()
    np.testing.assert_allclose(mu, f.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(f, rowvar=False), rtol=1e-10)
    # Precomputed stats are accepted on either side.
    assert fid((mu, cov), st) == pytest.approx(0.0, abs=1e-9)


def test_mmd2_unbiased_matches_hand_loop():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)) + 0.5

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    sxx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    syy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    sxy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
    assert mmd2_unbiased(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(
        sxx + syy - 2 * sxy, rel=1e-12
    )


def test_kid_is_unbiased_near_zero_for_same_distribution_and_positive_otherwise():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(600, 8, generator=g), torch.randn(600, 8, generator=g)
    m, s = kid(a, b, features=True, subsets=20, subset_size=200)
    assert abs(m) < 3 * s / math.sqrt(20) + 1e-3
    m2, _ = kid(a, b + 1.0, features=True, subsets=20, subset_size=200)
    assert m2 > 0.1
    # Subsets as large as the sets: every subset is the full set, so KID = MMD² exactly.
    m3, s3 = kid(a[:40], b[:40], features=True, subsets=3, subset_size=1000)
    assert m3 == pytest.approx(mmd2_unbiased(a[:40], b[:40]), rel=1e-9) and s3 == pytest.approx(
        0.0, abs=1e-12
    )


def test_extractor_kinds():
    lin = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = torch.randn(5, 3, 2, 2)
    f = extract_features(x, resolve_extractor(lin), batch_size=2)
    torch.testing.assert_close(f, lin(x).detach())
    assert resolve_extractor(lambda t: t.mean((2, 3)))(x).shape == (5, 3)
    digits = resolve_extractor("digits")
    assert digits(torch.zeros(2, 1, 32, 32)).shape == (2, 128)
    with pytest.raises(ValueError, match="extractor"):
        resolve_extractor("alexnet")
    with pytest.raises(TypeError, match="extractor"):
        resolve_extractor(3)


def test_digits_fid_separates_real_from_noise():
    from pygan.data import load_digits

    train, _ = load_digits(32, "train")
    test, _ = load_digits(32, "test")
    real_vs_real = fid(train, test)
    noise = torch.rand(359, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert real_vs_real < 0.1 * fid(train, noise)


def test_bad_inputs():
    with pytest.raises(ValueError, match="mu1 and mu2"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="sigma1"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_stats(torch.zeros(1, 3))
    with pytest.raises(TypeError, match="images"):
        fid([1, 2], torch.zeros(2, 1, 4, 4), extractor=nn.Identity())
    with pytest.raises(ValueError, match="4-D"):
        fid(torch.zeros(3, 4), torch.zeros(3, 4), extractor=nn.Identity())
    with pytest.raises(ValueError, match="subsets"):
        kid(torch.zeros(3, 2), torch.zeros(3, 2), features=True, subsets=0)


# -- FID Inception ---------------------------------------------------------------------------------


def test_inception_without_weights_fails_closed_and_names_the_file(monkeypatch):
    monkeypatch.delenv("PYGAN_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(FileNotFoundError) as e:
        load_fid_inception()
    msg = str(e.value)
    assert FID_WEIGHTS_FILE in msg and "weights_path=" in msg and "PYGAN_INCEPTION_WEIGHTS" in msg
    assert "never downloads" in msg
    with pytest.raises(FileNotFoundError, match=FID_WEIGHTS_FILE):
        fid(torch.zeros(2, 3, 80, 80), torch.zeros(2, 3, 80, 80), extractor="inception")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_fid_inception("/nonexistent/" + FID_WEIGHTS_FILE)


def test_inception_state_dict_layout():
    sd = FIDInceptionV3().state_dict()
    # torchvision Inception3(num_classes=1008, aux_logits=False) layout, as the FID weights file has it.
    assert len(sd) == 566
    assert sd["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert sd["Mixed_5b.branch_pool.conv.weight"].shape == (32, 192, 1, 1)
    assert sd["Mixed_6e.branch7x7dbl_5.conv.weight"].shape == (192, 192, 1, 7)
    assert sd["Mixed_7c.branch3x3dbl_3b.bn.running_var"].shape == (384,)
    assert sd["fc.weight"].shape == (1008, 2048)
    n_params = sum(
        v.numel() for k, v in sd.items() if not k.endswith(("running_mean", "running_var", "tracked"))
    )
    assert n_params == 23_850_960


def test_inception_random_weights_roundtrip(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = FIDInceptionV3()
    for m in net.modules():  # non-trivial BN statistics so that a wrong load would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    sd = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / FID_WEIGHTS_FILE
    torch.save(sd, path)
    loaded = load_fid_inception(path)
    x = torch.rand(2, 1, 80, 80) * 2 - 1
    net.resize_input = loaded.resize_input = False  # compare at 80 x 80: 14x cheaper than 299
    with torch.no_grad():
        ref = net(x)
        got = loaded(x)
    assert got.shape == (2, 2048)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    assert not any(p.requires_grad for p in loaded.parameters())
    # Via the environment variable, as fid(..., extractor="inception") resolves it.
    monkeypatch.setenv("PYGAN_INCEPTION_WEIGHTS", str(path))
    via_env = resolve_extractor("inception")
    assert isinstance(via_env, FIDInceptionV3) and via_env.resize_input
    for k, v in via_env.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    # A state dict with other keys is rejected with a clear message.
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not an FID Inception state dict"):
        load_fid_inception(bad)


def test_inception_rejects_bad_input():
    net = FIDInceptionV3(resize_input=False)
    with pytest.raises(ValueError, match="1 or 3"):
        net(torch.zeros(1, 2, 80, 80))
    with pytest.raises(ValueError, match="75"):
        net(torch.zeros(1, 3, 40, 40))
