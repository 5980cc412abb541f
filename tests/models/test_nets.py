"""Shared network blocks: shapes, feature lists, options and errors."""

import pytest
import torch

from pygan.models.nets import ConvDecoder, ConvEncoder, PatchDiscriminator, UNet, conv_plan, init_dcgan, mlp


@pytest.mark.parametrize("size,plan", [(16, (4, 2)), (28, (7, 2)), (32, (4, 3)), (64, (4, 4)), (48, (3, 4))])
def test_conv_plan(size, plan):
    assert conv_plan(size) == plan


def test_conv_plan_rejects_small_or_odd_sides():
    for size in (8, 10, 7):
        with pytest.raises(ValueError, match="resize the data"):
            conv_plan(size)


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_decoder_shapes_and_features(norm):
    g = ConvDecoder(10, 3, 32, width=8, norm=norm)
    g.apply(init_dcgan)
    x, feats = g(torch.randn(5, 10), return_features=True)
    assert x.shape == (5, 3, 32, 32) and x.abs().max() <= 1
    assert [f.shape[1:] for f in feats] == [(32, 4, 4), (16, 8, 8), (8, 16, 16), (3, 32, 32)]
    assert feats[-1] is x


@pytest.mark.parametrize("norm", ["none", "layer", "batch", "instance"])
def test_encoder_shapes_and_features(norm):
    d = ConvEncoder(1, 28, width=4, out_dim=1, norm=norm)
    s, feats = d(torch.randn(3, 1, 28, 28), return_features=True)
    assert s.shape == (3,) and [f.shape[1:] for f in feats] == [(4, 14, 14), (8, 7, 7)]
    e = ConvEncoder(1, 16, width=4, out_dim=7)
    assert e(torch.randn(2, 1, 16, 16)).shape == (2, 7)
    f = ConvEncoder(1, 16, width=4, out_dim=0)
    assert f(torch.randn(2, 1, 16, 16)).shape == (2, f.feature_dim) == (2, 8 * 4 * 4)


@pytest.mark.parametrize("size,depth", [(32, None), (32, 3), (64, 4), (16, 1)])
def test_unet_shapes_and_skips(size, depth):
    net = UNet(1, 3, size, width=4, depth=depth)
    y, feats = net(torch.randn(2, 1, size, size), return_features=True)
    d = depth or size.bit_length() - 1
    assert y.shape == (2, 3, size, size) and y.abs().max() <= 1
    assert len(feats["down"]) == d and len(feats["up"]) == d - 1
    for j, u in enumerate(feats["up"]):  # each up output matches the skip it is concatenated with
        assert u.shape[-2:] == feats["down"][d - 2 - j].shape[-2:]


def test_unet_skip_connections_carry_information():
    """Zeroing the bottleneck path still leaves the outermost skip: the output depends on the input
    through it (the U in U-Net)."""
    net = UNet(1, 1, 16, width=4, dropout=0).eval()
    x = torch.randn(1, 1, 16, 16, requires_grad=True)
    net(x).sum().backward()
    assert x.grad.abs().sum() > 0


def test_patch_discriminator():
    d = PatchDiscriminator(6, width=8, n_layers=3)
    y, feats = d(torch.randn(2, 6, 32, 32), return_features=True)
    assert y.shape == (2, 1, 2, 2) and len(feats) == 4
    assert PatchDiscriminator(6, width=8)(torch.randn(1, 6, 256, 256)).shape == (
        1,
        1,
        30,
        30,
    )  # 70x70 patches


def test_mlp_and_errors():
    assert mlp(2, 3, 8, 2)(torch.randn(4, 2)).shape == (4, 3)
    with pytest.raises(ValueError, match="norm"):
        ConvEncoder(1, 16, norm="group")
    with pytest.raises(ValueError, match="out_act"):
        ConvDecoder(4, 1, 16, out_act="sigmoid")
    with pytest.raises(ValueError, match="divisible"):
        UNet(1, 1, 24, depth=4)


def test_encoder_condition_after_the_first_conv():
    """cond_dim: the condition is tiled and concatenated after the first conv stage (IcGAN/C-IDVAE)."""
    torch.manual_seed(0)
    e = ConvEncoder(1, 16, width=4, out_dim=0, norm="layer", cond_dim=3)
    assert e.blocks[0][0].in_channels == 1 and e.blocks[1][0].in_channels == 4 + 3
    assert e.feature_dim == ConvEncoder(1, 16, width=4, out_dim=0).feature_dim
    x = torch.randn(2, 1, 16, 16)
    a = torch.tensor([[1.0, 0, 0], [0, 1, 0]])
    b = torch.tensor([[0.0, 0, 1], [0, 1, 0]])
    fa, feats = e(x, return_features=True, cond=a)
    fb = e(x, cond=b)
    assert feats[0].shape[1:] == (4, 8, 8)  # the first stage's output is reported before the concat
    assert not torch.allclose(fa[0], fb[0]) and torch.allclose(fa[1], fb[1])  # only row 0's cond differs
    with pytest.raises(ValueError, match=r"cond must be \[2, 3\]"):
        e(x)
    with pytest.raises(ValueError, match="unconditional ConvEncoder"):
        ConvEncoder(1, 16, width=4)(x, cond=a)
    with pytest.raises(ValueError, match="cond_dim must be an int"):
        ConvEncoder(1, 16, cond_dim=-1)
