"""Domain transforms (Soft-Coupled GANs paper, Sec. 5) and image helpers against hand-computed values."""

import numpy as np
import pytest
import torch

from pygan.data import transforms as T


def _unit(a):
    """[0, 1] nested lists -> [1, 1, H, W] in [-1, 1]."""
    return T.from_unit(torch.tensor(a, dtype=torch.float32)).view(1, 1, len(a), len(a[0]))


def test_dilate_hand_computed():
    u = torch.zeros(1, 1, 4, 5)
    u[0, 0, 1, 1] = 1.0
    u[0, 0, 3, 4] = 0.5
    expected = torch.tensor(
        [
            [1, 1, 1, 0, 0],
            [1, 1, 1, 0, 0],
            [1, 1, 1, 0.5, 0.5],
            [0, 0, 0, 0.5, 0.5],
        ]
    )
    assert torch.equal(T.dilate(u)[0, 0], expected)
    # borders only see in-image neighbours: a negative image stays negative at the border
    assert torch.equal(T.dilate(-torch.ones(1, 1, 3, 3)), -torch.ones(1, 1, 3, 3))
    with pytest.raises(ValueError, match="positive odd int"):
        T.dilate(u, 2)


def test_edge_is_dilation_minus_image_on_unit_intensities():
    x = _unit([[0, 0, 0], [0, 1, 0], [0, 0, 0]])
    # dilate = all ones; minus the image = ring of ones with a zero centre -> [-1, 1]: 1 ring, -1 centre
    expected = torch.tensor([[1, 1, 1], [1, -1, 1], [1, 1, 1]], dtype=torch.float32)
    assert torch.equal(T.edge(x)[0, 0], expected)
    x = _unit([[0.25, 0.5], [0.75, 0.0]])
    # every 3x3 window covers the whole 2x2 image -> dilate = 0.75 everywhere
    e = T.to_unit(T.edge(x))[0, 0]
    assert torch.allclose(e, torch.tensor([[0.5, 0.25], [0.0, 0.75]]))
    # a flat image has no edges
    assert torch.equal(T.edge(torch.full((2, 1, 5, 5), 0.3)), torch.full((2, 1, 5, 5), -1.0))


def test_negative():
    x = _unit([[0.0, 0.25], [1.0, 0.5]])
    assert torch.allclose(T.to_unit(T.negative(x))[0, 0], torch.tensor([[1.0, 0.75], [0.0, 0.5]]))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        T.negative(torch.zeros(3, 3))


@pytest.mark.parametrize("n", [2, 7, 10])
def test_half_split_partitions_rows(n):
    a, b = T.half_split(n, seed=4)
    assert len(a) == (n + 1) // 2 and len(b) == n // 2
    assert torch.equal(torch.cat([a, b]).sort().values, torch.arange(n))
    a2, b2 = T.half_split(n, seed=4)
    assert torch.equal(a, a2) and torch.equal(b, b2)


def test_half_split_depends_on_seed_and_checks_n():
    assert not torch.equal(T.half_split(100, 0)[0], T.half_split(100, 1)[0])
    with pytest.raises(ValueError, match="n must be an int >= 2"):
        T.half_split(1)


def test_resize_and_channels():
    x = torch.full((2, 1, 8, 8), 0.5)
    assert torch.allclose(T.resize(x, 3), torch.full((2, 1, 3, 3), 0.5))
    assert T.resize(x, 8) is x
    assert T.resize(torch.ones(1, 1, 4, 4) * 5, 2).max() == 1.0  # clamped
    rgb = torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1)
    assert torch.allclose(T.rgb_to_gray(rgb), torch.tensor(0.299 - 0.587).view(1, 1, 1, 1))
    assert T.set_channels(torch.zeros(2, 1, 2, 2), 3).shape == (2, 3, 2, 2)
    assert T.set_channels(torch.zeros(2, 4, 2, 2), 3).shape == (2, 3, 2, 2)
    with pytest.raises(ValueError, match="cannot convert 2 channels"):
        T.set_channels(torch.zeros(1, 2, 2, 2), 3)
    with pytest.raises(ValueError, match="3 channels"):
        T.rgb_to_gray(torch.zeros(1, 1, 2, 2))


def test_gaussian_blur_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 12, 11, generator=g, dtype=torch.float64)
    for sigma in (0.7, 1.0, 1.5):
        ours = T.gaussian_blur(x, sigma).numpy()
        r = int(np.ceil(3 * sigma))
        # torch's "reflect" padding is scipy's "mirror"; truncate so that scipy's radius is ours
        ref = ndimage.gaussian_filter(
            x.numpy(), sigma=(0, 0, sigma, sigma), mode="mirror", truncate=r / sigma
        )
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
    flat = torch.full((1, 1, 9, 9), 0.25)
    assert torch.allclose(T.gaussian_blur(flat, 1.0), flat)
    with pytest.raises(ValueError, match="too large"):
        T.gaussian_blur(flat, 4.0)
    with pytest.raises(ValueError, match="sigma must be a positive number"):
        T.gaussian_blur(flat, 0)
