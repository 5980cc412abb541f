"""pygan.nn.PerceptualLoss and its VGG19: torchvision state-dict compatibility, local weights only,
named taps, the content/style values and gradients, frozen feature networks."""

import pytest
import torch
from torch import nn

from pygan.nn import VGG19, DigitsFeatures, PerceptualLoss, load_vgg19
from pygan.nn.perceptual import VGG19_LAYERS
from pygan.ops import style_loss_ref

# torchvision.models.vgg19's parameters (torchvision cannot be installed beside this torch; this is its
# documented layout: cfg "E", features indices of the convs, classifier Linear layers 0, 3, 6)
_CONVS = [
    (0, 3, 64),
    (2, 64, 64),
    (5, 64, 128),
    (7, 128, 128),
    (10, 128, 256),
    (12, 256, 256),
    (14, 256, 256),
    (16, 256, 256),
    (19, 256, 512),
    (21, 512, 512),
    (23, 512, 512),
    (25, 512, 512),
    (28, 512, 512),
    (30, 512, 512),
    (32, 512, 512),
    (34, 512, 512),
]
TORCHVISION_VGG19 = {}
for i, cin, cout in _CONVS:
    TORCHVISION_VGG19[f"features.{i}.weight"] = (cout, cin, 3, 3)
    TORCHVISION_VGG19[f"features.{i}.bias"] = (cout,)
for i, (o, n) in zip((0, 3, 6), ((4096, 25088), (4096, 4096), (1000, 4096))):
    TORCHVISION_VGG19[f"classifier.{i}.weight"] = (o, n)
    TORCHVISION_VGG19[f"classifier.{i}.bias"] = (o,)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A torchvision-format file with random features (and stand-in classifier entries: the real ones
    are 120M parameters; a features-only load must skip whatever is there)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    sd = VGG19().state_dict()
    sd["classifier.0.weight"] = torch.zeros(1)
    torch.save(sd, path)
    return path


def test_vgg19_state_dict_is_torchvisions():
    with torch.device("meta"):
        full = VGG19(include_classifier=True)
        feats = VGG19()
    assert {k: tuple(v.shape) for k, v in full.state_dict().items()} == TORCHVISION_VGG19
    assert set(feats.state_dict()) == {k for k in TORCHVISION_VGG19 if k.startswith("features.")}
    assert len(full.features) == 37 and isinstance(full.avgpool, nn.AdaptiveAvgPool2d)
    assert VGG19_LAYERS["block1_conv1"] == 1 and VGG19_LAYERS["block3_conv4"] == 17
    assert VGG19_LAYERS["block5_conv2"] == 31 and VGG19_LAYERS["block5_pool"] == 36
    assert all(isinstance(full.features[i], nn.ReLU) for n, i in VGG19_LAYERS.items() if "conv" in n)


def test_load_local_weights_only(vgg_file, tmp_path):
    net = load_vgg19(vgg_file)
    ref = torch.load(vgg_file, weights_only=True)
    assert torch.equal(net.features[0].weight, ref["features.0.weight"])
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="not a torchvision vgg19"):
        load_vgg19(vgg_file, include_classifier=True)  # its classifier entries are stand-ins
    torch.save({"state_dict": {k: v for k, v in ref.items() if k.startswith("features.")}}, tmp_path / "w.pt")
    assert torch.equal(load_vgg19(tmp_path / "w.pt").features[34].bias, ref["features.34.bias"])
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_vgg19(tmp_path / "missing.pth")
    torch.save({"features.0.weight": ref["features.0.weight"]}, tmp_path / "part.pt")
    with pytest.raises(ValueError, match="missing keys"):
        load_vgg19(tmp_path / "part.pt")
    with pytest.raises(RuntimeError, match="no classifier"):
        net(torch.zeros(1, 3, 32, 32))


def test_vgg_taps_preprocess_and_stop_early(vgg_file):
    net = load_vgg19(vgg_file)
    calls = []
    for i, layer in enumerate(net.features):
        layer.register_forward_hook(lambda *a, i=i: calls.append(i))
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    taps = net.taps(x, ["block2_conv1", "block1_conv1"])
    assert taps["block1_conv1"].shape == (2, 64, 32, 32) and taps["block2_conv1"].shape == (2, 128, 16, 16)
    assert max(calls) == VGG19_LAYERS["block2_conv1"]
    torch.testing.assert_close(
        net.taps(x, ["block1_conv1"])["block1_conv1"],
        net.taps(x.expand(-1, 3, -1, -1), ["block1_conv1"])["block1_conv1"],
    )
    u = (x.expand(-1, 3, -1, -1) + 1) / 2
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(net.preprocess(x), (u - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    assert net.taps(x, ["block5_conv1"])["block5_conv1"].shape == (2, 512, 2, 2)
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        net.taps(x, ["conv1"])
    with pytest.raises(ValueError, match="images"):
        net.taps(torch.zeros(2, 2, 32, 32), ["block1_conv1"])


@pytest.mark.parametrize("backend", [None, "reference"])
def test_content_and_style_values_and_gradients(backend):
    torch.manual_seed(0)
    pl = PerceptualLoss("digits", content_weight=0.5, style_weight=3.0, backend=backend)
    assert pl.content_layers == ("conv3",) and pl.style_layers == ("conv1", "conv2", "conv3")
    x = (torch.rand(3, 1, 16, 16) * 2 - 1).requires_grad_(True)
    y = (torch.rand(3, 1, 16, 16) * 2 - 1).requires_grad_(True)
    r = (torch.rand(3, 1, 16, 16) * 2 - 1).requires_grad_(True)
    content, style = pl(x, y, r)
    net = pl.net.net
    mx, my, mr = net.feature_maps(x), net.feature_maps(y), net.feature_maps(r)
    torch.testing.assert_close(content, 0.5 * (mx[2] - my[2].detach()).square().mean())
    expect = 3.0 * sum(style_loss_ref(a, b.detach(), "hw") for a, b in zip(mx, mr)) / 3
    torch.testing.assert_close(style, expect, rtol=1e-5, atol=1e-7)
    (content + style).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert y.grad is None and r.grad is None  # the targets are constants
    assert all(p.grad is None and not p.requires_grad for p in pl.parameters())
    pl.train()
    assert not pl.net.training and not pl.net.net.training
    chw = PerceptualLoss("digits", style_layers=["conv1"], content_layers=[], gram_normalize="chw")
    _, s = chw(x, None, r)
    torch.testing.assert_close(s, style_loss_ref(mx[0], mr[0].detach(), "chw"), rtol=1e-5, atol=1e-7)


def test_vgg19_perceptual_loss(vgg_file):
    pl = PerceptualLoss("vgg19", weights=vgg_file)
    assert pl.content_layers == ("block5_conv2",) and len(pl.style_layers) == 5
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    content, style = pl(x, torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    (content + style).backward()
    assert content > 0 and style > 0 and x.grad.abs().sum() > 0


def test_custom_extractor_and_errors(vgg_file):
    class Taps(nn.Module):
        layer_names = ("a", "b")

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)

        def taps(self, x, names):
            h = self.conv(x)
            return {n: {"a": h, "b": h.relu()}[n] for n in names}

    pl = PerceptualLoss(Taps(), content_layers=["b"], style_layers=["a"])
    c, s = pl(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8))
    assert c.dim() == s.dim() == 0
    with pytest.raises(ValueError, match="content_layers and style_layers"):
        PerceptualLoss(Taps())
    with pytest.raises(ValueError, match="weights="):
        PerceptualLoss("vgg19")
    with pytest.raises(ValueError, match="extractor must be"):
        PerceptualLoss("alexnet")
    with pytest.raises(TypeError, match="extractor must be"):
        PerceptualLoss(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="unknown layer"):
        PerceptualLoss("digits", content_layers=["conv9"])
    with pytest.raises(ValueError, match="unknown layer"):
        PerceptualLoss("vgg19", weights=vgg_file, style_layers=["relu1_1"])
    with pytest.raises(ValueError, match="gram_normalize"):
        PerceptualLoss("digits", gram_normalize="c")
    with pytest.raises(TypeError, match="sequence of layer names"):
        PerceptualLoss("digits", content_layers="conv3")
    assert isinstance(PerceptualLoss("digits").net, DigitsFeatures)
