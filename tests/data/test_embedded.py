"""Embedded and synthetic data: digits and its SCoGAN domains, Gaussian mixtures, faces, photos."""

import sys

import pytest
import torch

from pygan.data import list_datasets, load_data, load_digits, mixture_centers, sample_mixture
from pygan.data import transforms as T
from pygan.metrics.modes import mode_log


@pytest.mark.parametrize("size", [16, 28])
def test_digits_sizes(size):
    d = load_data(f"digits{size}")
    assert d.kind == "images" and d.x.shape == (1438, 1, size, size) and d.num_classes == 10
    x, y = load_digits(size, "train")
    assert torch.equal(d.x, x) and torch.equal(d.y, y)
    assert len(load_data("digits", "test")) == 359 and load_data("digits").shape == (1, 32, 32)


@pytest.mark.parametrize("transform", ["edge", "negative"])
def test_digits_two_domains_follow_seed_003(transform):
    d = load_data(f"digits16-{transform}")
    x, _ = load_digits(16, "train")
    a, b = T.half_split(len(x), 0)
    assert d.kind == "two-domain" and d.domain[a].eq(0).all() and d.domain[b].eq(1).all()
    assert torch.equal(d.x[a], x[a])  # domain A: unaltered
    fn = T.edge if transform == "edge" else T.negative
    assert torch.equal(d.x[b], fn(x[b]))  # domain B: the *other* half, transformed
    assert d.meta["domains"] == ["original", transform]
    e = load_data(f"digits16?domain={transform}&seed=3")
    assert not torch.equal(e.domain, d.domain)


def test_mixtures_and_their_mode_coverage():
    # the one mode metric (pygan.metrics.modes) on the mixtures' own data and meta
    c = mixture_centers("ring8")
    assert c.shape == (8, 2) and torch.allclose(c.norm(dim=1), torch.full((8,), 2.0))
    g = mixture_centers("grid25")
    assert g.shape == (25, 2) and set(g[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    d = load_data("grid25")
    assert d.kind == "points" and d.x.shape == (20000, 2) and len(load_data("grid25", "test")) == 5000
    s = mode_log(d.x, d.meta["centers"], d.meta["std"])
    assert s["modes"] == 25 and s["high_quality"] > 0.98
    # a collapsed generator: everything on one mode
    one = torch.tensor([[2.0, 0.0]]) + 0.01 * torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    s = mode_log(one, c, 0.02)
    assert s["modes"] == 1 and s["high_quality"] > 0.9
    s = mode_log(torch.zeros(10, 2), c, 0.02)
    assert s == {"modes": 0.0, "modes_total": 8.0, "high_quality": 0.0}
    pts, k = sample_mixture("ring8", 4, torch.Generator().manual_seed(1))
    assert torch.allclose(pts, c[k], atol=0.2)
    with pytest.raises(ValueError, match="centres must be"):
        mode_log(one, torch.zeros(3, 3), 0.1)


def test_faces_are_the_100_real_faces():
    pytest.importorskip("skimage")
    tr, te = load_data("faces"), load_data("faces32", "test")
    assert tr.x.shape == (80, 1, 25, 25) and te.x.shape == (20, 1, 32, 32)
    assert tr.x.min() >= -1 and tr.x.max() <= 1


def test_photo_pairs_are_consistent():
    d = load_data("photo-gray16?sources=sklearn")
    assert d.kind == "paired" and d.x.shape == (2000, 1, 16, 16) and d.target.shape == (2000, 3, 16, 16)
    assert torch.allclose(d.x, T.rgb_to_gray(d.target))
    b = load_data("photo-blur16?sources=sklearn", "test")
    assert len(b) == 256 and torch.allclose(b.x, T.gaussian_blur(b.target, 0.75).clamp(-1, 1))
    e = load_data("photo-edges16?sources=sklearn", "test")
    u = T.to_unit(T.rgb_to_gray(e.target))
    assert torch.allclose(T.to_unit(e.x), 1 - ((T.dilate(u) - u) * 4).clamp(0, 1), atol=1e-6)
    assert torch.equal(load_data("photos16?sources=sklearn", "test").x, b.target)  # same patches
    assert not torch.equal(d.target[:256], b.target)  # train and test patches differ


def test_photos_need_scikit_image_unless_sklearn_only(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'pygan\[images\]'"):
        load_data("photos16")
    with pytest.raises(ImportError, match=r"pygan\[images\]"):
        load_data("faces")
    assert load_data("photos16?sources=sklearn", "test").x.shape == (256, 3, 16, 16)
    names = {d["name"]: d for d in list_datasets()}
    assert not names["faces<N>"]["available"] and "pygan[images]" in names["faces<N>"]["note"]


def test_photos_with_scikit_image():
    pytest.importorskip("skimage")
    d = load_data("photos16", "test")
    assert d.meta["sources"][:2] == ["china.jpg", "flower.jpg"] and len(d.meta["sources"]) == 7
