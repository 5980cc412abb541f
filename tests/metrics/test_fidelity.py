"""Inception Score, precision/recall, density/coverage against independent formulas (scipy's KL
divergence, scikit-learn's nearest neighbours and plain loops), uint8 quantization against PNG files,
and the Inception weights' lookup in the torch hub cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.stats import entropy
from sklearn.neighbors import NearestNeighbors

from pygan.backbones.inception import FID_WEIGHTS_FILE, hub_weights_path
from pygan.metrics import (
    FIDInceptionV3,
    classifier_logits,
    density_coverage,
    find_inception_weights,
    inception_score,
    knn_radii,
    load_digits_classifier,
    load_fid_inception,
    precision_recall,
    quantize_uint8,
)
from pygan.metrics._util import load_image_folder

# ---- Inception Score ------------------------------------------------------------------------------


def _is_reference(logits: np.ndarray, splits: int, perm: np.ndarray | None) -> tuple[float, float]:
    """Salimans et al.: per split, exp(mean over samples of KL(p(y|x) || p(y))), via scipy's entropy
    (which computes KL in float64 from probabilities)."""
    x = logits[perm] if perm is not None else logits
    z = x - x.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    n = len(p)
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        py = part.mean(0)
        scores.append(np.exp(np.mean([entropy(row, py) for row in part])))
    return float(np.mean(scores)), float(np.std(scores))


@pytest.mark.parametrize("n, c, splits", [(100, 10, 10), (103, 7, 4), (50, 1008, 1)])
def test_inception_score_against_scipy(n, c, splits):
    rng = np.random.default_rng(n)
    logits = rng.normal(size=(n, c)) * 3
    perm = np.random.RandomState(2020).permutation(n)  # torch-fidelity's shuffle
    got = inception_score(torch.from_numpy(logits), splits=splits)
    want = _is_reference(logits, splits, perm)
    assert got == pytest.approx(want, rel=1e-10, abs=1e-12)
    got_ordered = inception_score(torch.from_numpy(logits), splits=splits, shuffle=False)
    assert got_ordered == pytest.approx(_is_reference(logits, splits, None), rel=1e-10, abs=1e-12)


def test_inception_score_limits():
    # confident and balanced over C classes: IS = C; uninformative: IS = 1
    c = 8
    confident = torch.eye(c).repeat(10, 1) * 50.0
    assert inception_score(confident, splits=2, shuffle=False)[0] == pytest.approx(c, rel=1e-9)
    assert inception_score(torch.zeros(40, c), splits=4) == pytest.approx((1.0, 0.0))
    # confident but always the same class: IS = 1 (no diversity)
    same = torch.zeros(40, c)
    same[:, 3] = 50.0
    assert inception_score(same, splits=4)[0] == pytest.approx(1.0, abs=1e-9)


def test_inception_score_bad_input():
    with pytest.raises(ValueError, match="at least splits"):
        inception_score(torch.zeros(5, 3), splits=10)
    with pytest.raises(ValueError, match=r"\[N, d\]"):
        inception_score(torch.zeros(5))
    with pytest.raises(ValueError, match="splits"):
        inception_score(torch.zeros(5, 3), splits=0)
    with pytest.raises(ValueError, match="non-finite"):
        inception_score(torch.full((5, 3), float("nan")), splits=1)


def test_digits_classifier_logits_and_is():
    from pygan.data import load_digits

    x, _ = load_digits(32, "test")
    clf = load_digits_classifier()
    logits = classifier_logits(x[:64], "digits", batch_size=20)
    with torch.no_grad():
        torch.testing.assert_close(logits, clf(x[:64]))
    m, s = inception_score(classifier_logits(x, "digits"), splits=5)
    assert 8 < m <= 10 and s >= 0  # confident and balanced over the 10 digits


def test_unbiased_logits_drop_the_classifier_bias():
    torch.manual_seed(0)
    net = FIDInceptionV3()
    with torch.no_grad():
        net.fc.bias.normal_()
        feats = torch.randn(3, 2048)
        torch.testing.assert_close(net.head_unbiased(feats), net.fc(feats) - net.fc.bias)
        x = torch.rand(2, 3, 75, 75) * 2 - 1
        torch.testing.assert_close(net.logits_unbiased(x), net.logits(x) - net.fc.bias, rtol=1e-5, atol=1e-5)


# ---- precision / recall, density / coverage -------------------------------------------------------


def _radii_sklearn(x: np.ndarray, k: int) -> np.ndarray:
    nn_ = NearestNeighbors(n_neighbors=k + 1).fit(x)
    d, _ = nn_.kneighbors(x)  # includes the point itself at distance 0
    return d[:, k]


def _pr_reference(real, fake, k):
    rr, rf = _radii_sklearn(real, k), _radii_sklearn(fake, k)
    d = cdist(real, fake)
    precision = np.mean([any(d[i, j] <= rr[i] for i in range(len(real))) for j in range(len(fake))])
    recall = np.mean([any(d[i, j] <= rf[j] for j in range(len(fake))) for i in range(len(real))])
    return precision, recall


def _dc_reference(real, fake, k):
    rr = _radii_sklearn(real, k)
    d = cdist(real, fake)
    density = sum(int(d[i, j] < rr[i]) for i in range(len(real)) for j in range(len(fake))) / (k * len(fake))
    coverage = np.mean([d[i].min() < rr[i] for i in range(len(real))])
    return density, coverage


@pytest.mark.parametrize(
    "seed, n, m, d, shift", [(0, 60, 80, 5, 0.5), (1, 90, 40, 16, 1.5), (2, 50, 50, 2, 0.0)]
)
def test_precision_recall_and_density_coverage_against_brute_force(seed, n, m, d, shift):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, d))
    fake = rng.normal(size=(m, d)) * 1.3 + shift
    pr = precision_recall(real, fake)
    assert (pr["precision"], pr["recall"]) == pytest.approx(_pr_reference(real, fake, 3))
    assert pr["k"] == 3 and (pr["num_real"], pr["num_fake"]) == (n, m)
    dc = density_coverage(real, fake)
    assert (dc["density"], dc["coverage"]) == pytest.approx(_dc_reference(real, fake, 5))
    for k in (1, 7):
        assert tuple(precision_recall(real, fake, k=k).values())[:2] == pytest.approx(
            _pr_reference(real, fake, k)
        )
        assert tuple(density_coverage(real, fake, k=k).values())[:2] == pytest.approx(
            _dc_reference(real, fake, k)
        )
    torch.testing.assert_close(knn_radii(real, 3), torch.from_numpy(_radii_sklearn(real, 3)))


def test_blocks_do_not_change_the_result(monkeypatch):
    import pygan.metrics.fidelity as fid_mod

    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(70, 4)), rng.normal(size=(55, 4)) + 0.3
    whole = precision_recall(real, fake), density_coverage(real, fake)
    monkeypatch.setattr(fid_mod, "_BLOCK", 16)  # several blocks of rows
    assert (precision_recall(real, fake), density_coverage(real, fake)) == whole


def test_identical_and_disjoint_sets():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 3))
    pr = precision_recall(x, x)
    assert pr["precision"] == pr["recall"] == 1.0
    assert density_coverage(x, x)["coverage"] == 1.0
    far = x + 100.0
    assert precision_recall(x, far)["precision"] == precision_recall(x, far)["recall"] == 0.0
    dc = density_coverage(x, far)
    assert dc["density"] == dc["coverage"] == 0.0


def test_pr_dc_bad_input():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="differ in dimension"):
        precision_recall(x, torch.randn(10, 4))
    with pytest.raises(ValueError, match="more than k = 3"):
        precision_recall(x[:3], x)
    with pytest.raises(ValueError, match="k must be"):
        density_coverage(x, x, k=0)
    with pytest.raises(TypeError, match="real"):
        precision_recall([1, 2], x)


# ---- quantization ---------------------------------------------------------------------------------


def test_quantize_uint8_equals_the_png_round_trip(tmp_path):
    from PIL import Image

    from pygan.data.grid import to_uint8

    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 9, 7, generator=g) * 2.4 - 1.2  # also outside [-1, 1]
    for i, img in enumerate(x):
        Image.fromarray(to_uint8(img)).save(tmp_path / f"{i}.png")
    back = load_image_folder(tmp_path)
    assert torch.equal(back, quantize_uint8(x))
    assert quantize_uint8(x).unique().numel() <= 256
    assert torch.equal(quantize_uint8(quantize_uint8(x)), quantize_uint8(x))


# ---- Inception weights ----------------------------------------------------------------------------


def test_inception_weights_are_found_in_the_torch_hub_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("PYGAN_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    hub = hub_weights_path()
    assert hub == tmp_path / "th" / "hub" / "checkpoints" / FID_WEIGHTS_FILE
    assert find_inception_weights() is None
    with pytest.raises(FileNotFoundError) as exc:
        load_fid_inception()
    assert str(hub) in str(exc.value) and "never downloads" in str(exc.value)
    hub.parent.mkdir(parents=True)
    torch.save({"not": torch.zeros(1)}, hub)
    assert find_inception_weights() == hub
    with pytest.raises(ValueError, match="not an FID Inception state dict"):
        load_fid_inception()  # it was found (and read): the file is just not the right one
    # an explicit path or the environment variable comes first
    monkeypatch.setenv("PYGAN_INCEPTION_WEIGHTS", str(tmp_path / "env.pth"))
    assert find_inception_weights() == tmp_path / "env.pth"
    assert find_inception_weights(tmp_path / "arg.pth") == tmp_path / "arg.pth"
