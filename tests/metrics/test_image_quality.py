"""MSE / PSNR / SSIM against hand and closed-form values (and skimage when installed); the
LPIPS-style distance against a hand computation; loading AlexNet/VGG and LPIPS heads."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from pygan.metrics import PerceptualDistance, mse, perceptual_distance, psnr, psnr_from_mse, ssim
from pygan.metrics.image_quality import AlexNetFeatures, VGG16Features, gaussian_window

try:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
except ImportError:  # pragma: no cover - depends on the environment
    structural_similarity = None


def test_mse_and_psnr_hand_values():
    x = torch.zeros(2, 1, 4, 4)
    y = torch.zeros(2, 1, 4, 4)
    y[0] += 0.5  # MSE 0.25
    y[1, 0, 0, 0] = 2.0  # one pixel off by 2: MSE 4/16 = 0.25 too
    y[1, 0, 0, 1] = 1.0  # plus 1/16: 0.3125
    assert mse(x, y, reduction="none").tolist() == [0.25, 0.3125]
    assert float(mse(x, y)) == pytest.approx((0.25 + 0.3125) / 2)
    per = psnr(x, y, reduction="none", data_range=2.0)
    assert per[0].item() == pytest.approx(10 * math.log10(4 / 0.25))
    assert per[1].item() == pytest.approx(10 * math.log10(4 / 0.3125))
    assert float(psnr(x, y, data_range=1.0)) == pytest.approx(
        (10 * math.log10(1 / 0.25) + 10 * math.log10(1 / 0.3125)) / 2
    )
    assert float(psnr_from_mse(0.01, 1.0)) == pytest.approx(20.0)
    assert math.isinf(float(psnr(x, x)))


def test_gaussian_window():
    g = gaussian_window(11, 1.5)
    assert g.sum().item() == pytest.approx(1.0)
    assert g[5] / g[4] == pytest.approx(math.exp(1 / (2 * 1.5**2)))
    torch.testing.assert_close(g, g.flip(0))


def test_ssim_closed_forms():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 16, 20, generator=g, dtype=torch.float64) * 2 - 1
    assert ssim(x, x, reduction="none").tolist() == pytest.approx([1.0, 1.0, 1.0])
    # Constant images a, b: σ = 0, so SSIM = (2ab + C1) / (a² + b² + C1) everywhere.
    r = 2.0
    c1 = (0.01 * r) ** 2
    a, b = 0.3, -0.2
    xa = torch.full((1, 1, 12, 12), a, dtype=torch.float64)
    yb = torch.full((1, 1, 12, 12), b, dtype=torch.float64)
    assert float(ssim(xa, yb, data_range=r)) == pytest.approx(
        (2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9
    )
    # y = x + c: σx = σy = σxy, so the contrast-structure factor is 1 and the SSIM map is the
    # luminance term of the local means: (2 μx (μx + c) + C1) / (μx² + (μx + c)² + C1).
    c = 0.25
    val, smap = ssim(x, x + c, full=True)
    from pygan.metrics.image_quality import _filter

    mu = _filter(x, gaussian_window(11, 1.5))
    lum = (2 * mu * (mu + c) + c1) / (mu * mu + (mu + c) ** 2 + c1)
    torch.testing.assert_close(smap, lum, rtol=1e-10, atol=1e-12)
    assert float(val) == pytest.approx(float(lum.mean()), rel=1e-10)


@pytest.mark.skipif(
    structural_similarity is None, reason="scikit-image is not installed (optional cross-check)"
)
def test_ssim_and_psnr_match_skimage():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 33, 29, generator=g, dtype=torch.float64) * 2 - 1
    y = (x + 0.2 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(-1, 1)
    ours = ssim(x, y, reduction="none")
    ref = [
        structural_similarity(
            x[i].numpy(),
            y[i].numpy(),
            channel_axis=0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=2.0,
        )
        for i in range(3)
    ]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10)
    ref_psnr = [peak_signal_noise_ratio(x[i].numpy(), y[i].numpy(), data_range=2.0) for i in range(3)]
    np.testing.assert_allclose(psnr(x, y, reduction="none").numpy(), ref_psnr, rtol=1e-10)


def test_quality_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        mse(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="4-D"):
        psnr(torch.zeros(4, 4), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="data_range"):
        psnr(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4), data_range=0)
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="reduction"):
        mse(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), reduction="sum")
    with pytest.raises(TypeError, match="x must be"):
        mse(torch.zeros(1, 1, 4, 4, dtype=torch.int64), torch.zeros(1, 1, 4, 4))


# -- LPIPS-style ----------------------------------------------------------------------------------


class _Taps(nn.Module):
    """A backbone whose 'features' are the input itself and its 2x2 average pool."""

    channels = (2, 2)

    def forward(self, x):
        return [x, nn.functional.avg_pool2d(x, 2)]


def _hand_lpips(x, y, weights=None):
    total = np.zeros(x.shape[0])
    feats = [
        (x, y),
        (x.reshape(*x.shape[:2], 2, 2, 2, 2).mean((3, 5)), y.reshape(*y.shape[:2], 2, 2, 2, 2).mean((3, 5))),
    ]
    for layer, (a, b) in enumerate(feats):
        a = a / (np.sqrt((a**2).sum(1, keepdims=True)) + 1e-10)
        b = b / (np.sqrt((b**2).sum(1, keepdims=True)) + 1e-10)
        d = (a - b) ** 2
        if weights is not None:
            d = d * np.asarray(weights[layer]).reshape(1, -1, 1, 1)
        total += d.sum(1).mean((1, 2))
    return total


def test_perceptual_distance_matches_hand_computation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    y = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    metric = PerceptualDistance(_Taps())
    got = metric(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(got, _hand_lpips(x.astype(np.float64), y.astype(np.float64)), rtol=1e-5)
    w = [[0.5, 2.0], [1.0, 0.0]]
    metric_w = PerceptualDistance(_Taps(), head_weights=[torch.tensor(v) for v in w])
    got_w = metric_w(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(got_w, _hand_lpips(x.astype(np.float64), y.astype(np.float64), w), rtol=1e-5)
    # Channel normalisation makes it scale-invariant per position: d(x, 3x) = 0.
    assert metric(torch.from_numpy(x), torch.from_numpy(3 * x)).abs().max() < 1e-6
    with pytest.raises(ValueError, match="head weights"):
        PerceptualDistance(_Taps(), head_weights=[torch.ones(3), torch.ones(2)])


def test_digits_lpips_style_default():
    from pygan.data import load_digits

    x, _ = load_digits(32, "test")
    d_same = perceptual_distance(x[:16], x[:16], reduction="none")
    assert d_same.abs().max() < 1e-6
    near = perceptual_distance(x[:16], (x[:16] + 0.05).clamp(-1, 1))
    far = perceptual_distance(x[:16], x[16:32])
    assert 0 < float(near) < float(far)
    d_ab = perceptual_distance(x[:8], x[8:16], reduction="none")
    d_ba = perceptual_distance(x[8:16], x[:8], reduction="none")
    torch.testing.assert_close(d_ab, d_ba)
    assert PerceptualDistance().kind == "digits"


@pytest.mark.parametrize("kind, cls, taps", [("alex", AlexNetFeatures, 5), ("vgg", VGG16Features, 5)])
def test_lpips_backbone_and_heads_load_from_local_files(tmp_path, kind, cls, taps):
    torch.manual_seed(0)
    net = cls()
    state = {k: v for k, v in net.state_dict().items()}
    state["classifier.6.weight"] = torch.zeros(3, 3)  # full torchvision checkpoints carry these; ignored
    bb = tmp_path / f"{kind}.pth"
    torch.save(state, bb)
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(cls.channels)}
    hp = tmp_path / f"{kind}_lin.pth"
    torch.save(heads, hp)
    metric = PerceptualDistance(kind, backbone_weights=bb, head_weights=hp)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = torch.rand(2, 3, 64, 64) * 2 - 1
    # Hand: LPIPS v0.1 scaling layer, then normalised squared differences weighted by the heads.
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    fx, fy = net((x - shift) / scale), net((y - shift) / scale)
    assert len(fx) == taps
    want = sum(
        (
            (
                a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                - b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            )
            .pow(2)
            .mul(heads[f"lin{i}.model.1.weight"].view(1, -1, 1, 1))
            .sum(1)
            .mean((1, 2))
        )
        for i, (a, b) in enumerate(zip(fx, fy))
    )
    torch.testing.assert_close(metric(x, y), want.detach(), rtol=1e-5, atol=1e-7)
    assert metric(x[:, :1], x[:, :1]).abs().max() < 1e-6  # grey input is repeated to RGB


def test_lpips_needs_local_files():
    with pytest.raises(FileNotFoundError, match="never downloads"):
        PerceptualDistance("alex")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PerceptualDistance("vgg", backbone_weights="/nonexistent/vgg16.pth")
    with pytest.raises(ValueError, match="backbone"):
        PerceptualDistance("resnet", backbone_weights="x")
