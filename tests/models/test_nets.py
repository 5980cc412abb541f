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


def test_unet_defaults_unchanged_by_the_options():
    """The UU-Net options are off by default: same parameters and outputs as the plain U-Net."""
    torch.manual_seed(0)
    a = UNet(1, 3, 16, width=4)
    torch.manual_seed(0)
    b = UNet(1, 3, 16, width=4, out_act="tanh", extra_down=(), extra_up=(), vae=False)
    assert [k for k, _ in a.named_parameters()] == [k for k, _ in b.named_parameters()]
    x = torch.randn(2, 1, 16, 16)
    a.eval(), b.eval()
    ya, fa = a(x, return_features=True)
    assert torch.equal(ya, b(x)) and fa["latent"] is fa["down"][-1]


def test_unet_extra_inputs_join_at_their_levels():
    """extra_down[i] joins down block i's input, extra_up[j] up stage j's (the last: the output layer);
    each changes the output, and only through the levels it joins."""
    d = 4
    net = UNet(2, 5, 16, width=4, depth=d, out_act="none", extra_down=(0, 4, 0, 16), extra_up=(32, 0, 8, 3))
    net.eval()
    x = torch.randn(3, 2, 16, 16)
    ed = [
        None,
        torch.randn(3, 4, 8, 8, requires_grad=True),
        None,
        torch.randn(3, 16, 2, 2, requires_grad=True),
    ]
    eu = [torch.randn(3, 32, 1, 1, requires_grad=True), None, torch.randn(3, 8, 4, 4, requires_grad=True)]
    eu.append(torch.randn(3, 3, 8, 8, requires_grad=True))
    y, feats = net(x, return_features=True, extra_down=ed, extra_up=eu)
    assert y.shape == (3, 5, 16, 16) and len(net.out) == 1  # out_act="none": the transposed conv only
    assert feats["up"][0].shape[-2:] == (2, 2)
    y.square().sum().backward()
    for t in [*ed, *eu]:
        if t is not None:
            assert t.grad is not None and t.grad.abs().sum() > 0
    # the extra at the output layer cannot change the decoder's maps
    eu2 = [eu[0], None, eu[2], torch.zeros(3, 3, 8, 8)]
    y2, f2 = net(x, return_features=True, extra_down=ed, extra_up=eu2)
    for u, v in zip(feats["up"], f2["up"]):
        assert torch.equal(u, v)
    assert not torch.equal(y, y2)


def test_unet_extra_input_errors():
    net = UNet(1, 1, 16, width=4, depth=3, extra_down=(0, 4))
    x = torch.randn(2, 1, 16, 16)
    with pytest.raises(ValueError, match=r"extra_down\[1\]: this UNet expects a map of 4 channels"):
        net(x)
    with pytest.raises(ValueError, match=r"extra_down\[1\] must be \[B, 4, H, W\]"):
        net(x, extra_down=[None, torch.randn(2, 3, 8, 8), None])
    with pytest.raises(ValueError, match="cannot join"):
        net(x, extra_down=[None, torch.randn(2, 4, 4, 4), None])
    with pytest.raises(ValueError, match=r"extra_up\[0\]: this UNet was built without"):
        net(
            x,
            extra_down=[None, torch.randn(2, 4, 8, 8), None],
            extra_up=[torch.randn(2, 1, 2, 2), None, None],
        )
    with pytest.raises(ValueError, match="3 entries"):
        net(x, extra_down=[None, torch.randn(2, 4, 8, 8)])
    with pytest.raises(ValueError, match="non-negative channel counts"):
        UNet(1, 1, 16, depth=2, extra_up=(1, 2, 3))
    with pytest.raises(ValueError, match="out_act"):
        UNet(1, 1, 16, out_act="sigmoid")
    with pytest.raises(ValueError, match="latent_channels needs vae=True"):
        UNet(1, 1, 16, latent_channels=3)


def test_unet_vae_bottleneck():
    torch.manual_seed(0)
    net = UNet(1, 2, 16, width=4, depth=3, vae=True, latent_channels=6, dropout=0)
    x = torch.randn(4, 1, 16, 16)
    y, f = net(x, return_features=True)
    assert f["mu"].shape == f["logvar"].shape == f["latent"].shape == (4, 6, 2, 2)
    assert not torch.equal(f["latent"], f["mu"])  # training: z = mu + sigma * eps
    torch.manual_seed(1)
    z1 = net(x, return_features=True)[1]["latent"]
    torch.manual_seed(1)
    z2 = net(x, return_features=True)[1]["latent"]
    assert torch.equal(z1, z2)  # the noise is torch's global RNG
    net.eval()
    _, fe = net(x, return_features=True)
    assert torch.equal(fe["latent"], fe["mu"])  # eval: the posterior mean
    assert y.shape == (4, 2, 16, 16)


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
