"""NRDS: the area/normalisation path against closed forms (a D that cannot learn), the authors'
training protocol, the sources (tensors, folders, models), the plot, and the toy ranking."""

import numpy as np
import pytest
import torch
from torch import nn

from pygan.metrics import nrds, plot_curves, trapezoid


def test_trapezoid_unit_spacing():
    assert trapezoid([1.0, 1.0, 1.0]) == 2.0  # T points span T - 1
    assert trapezoid([0.0, 1.0, 0.5]) == pytest.approx(0.5 + 0.75)
    assert trapezoid([0.3]) == 0.0
    ys = np.random.default_rng(0).random(17)
    assert trapezoid(ys) == pytest.approx(float(((ys[1:] + ys[:-1]) / 2).sum()))


class FrozenLogit(nn.Module):
    """D(x) = k * x[:, 0]; its only parameter never receives a gradient, so it never changes.
    Counts training-mode calls and the batch sizes it sees."""

    def __init__(self, k=2.0):
        super().__init__()
        self.k = k
        self.dummy = nn.Parameter(torch.zeros(1))
        self.train_batches = []

    def forward(self, x):
        if self.training:
            self.train_batches.append(x.shape[0])
        return self.k * x[:, :1] + 0.0 * self.dummy  # zero gradient: Adam never moves it


def test_scores_match_closed_form_for_a_fixed_classifier(one_thread):
    g = torch.Generator().manual_seed(0)
    real = torch.randn(100, 2, generator=g)
    fakes = {"a": torch.randn(70, 2, generator=g) + 1, "b": torch.randn(50, 2, generator=g) - 2}
    d = FrozenLogit()
    r = nrds(real, fakes, classifier=d, epochs=5, batch_size=16)
    mean = {k: float(torch.sigmoid(2.0 * v[:, 0].double()).mean()) for k, v in fakes.items()}
    for k in fakes:
        assert r.curves[k] == pytest.approx([mean[k]] * 5, rel=1e-6)
        assert r.areas[k] == pytest.approx(4 * mean[k], rel=1e-6)
    assert r.scores["a"] == pytest.approx(mean["a"] / (mean["a"] + mean["b"]), rel=1e-6)
    assert sum(r.scores.values()) == pytest.approx(1.0)
    assert r.real_curve == pytest.approx(
        [float(torch.sigmoid(2.0 * real[:, 0].double()).mean())] * 5, rel=1e-6
    )
    assert r.ranking() == ["a", "b"]
    # The authors' loop: per epoch min(#real, #pooled) // batch steps, one real + one fake batch each.
    steps = min(100, 120) // 16
    assert r.config["steps_per_epoch"] == steps
    assert d.train_batches == [16] * (2 * steps * 5)


def test_toy_ranking_and_determinism(one_thread):
    g = torch.Generator().manual_seed(1)
    real = torch.randn(400, 2, generator=g)
    fakes = {
        "close": torch.randn(400, 2, generator=g) + torch.tensor([0.5, 0.0]),
        "far": torch.randn(400, 2, generator=g) + torch.tensor([1.5, 0.0]),
    }
    r1 = nrds(real, fakes, epochs=15, batch_size=32, lr=2e-3, seed=3)
    assert r1.scores["close"] > 0.55 > r1.scores["far"]
    short = [nrds(real, fakes, epochs=2, batch_size=32, seed=3) for _ in range(2)]
    assert short[0].scores == short[1].scores and short[0].curves == short[1].curves
    # Curves: real rises above 0.5, the far fakes fall below the close ones.
    assert r1.real_curve[-1] > 0.5 and r1.curves["far"][-1] < r1.curves["close"][-1]


def test_sources_folder_and_model_and_plot(tmp_path):
    from PIL import Image

    from pygan.data import load_digits

    x, _ = load_digits(16, "all")
    real = x[:96]
    close = (x[96:192] + 0.1 * torch.randn(96, 1, 16, 16, generator=torch.Generator().manual_seed(0))).clamp(
        -1, 1
    )
    folder = tmp_path / "close"
    folder.mkdir()
    for i, img in enumerate(close):
        arr = ((img[0].numpy() + 1) * 127.5).round().astype(np.uint8)
        Image.fromarray(arr, mode="L").save(folder / f"{i:04d}.png")

    class Noise:
        def sample(self, n, generator=None):
            return torch.rand(n, 1, 16, 16, generator=generator) * 2 - 1

    png = tmp_path / "curves.png"
    r = nrds(real, {"close": str(folder), "noise": Noise()}, epochs=3, batch_size=32, plot=png)
    assert r.config["num_fake"] == {"close": 96, "noise": 96}
    assert r.scores["close"] > r.scores["noise"]
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (800, 500)
        # Something other than white and black was drawn (the coloured curves).
        colours = {c for _, c in im.getcolors(maxcolors=1 << 16)}
        assert len(colours - {(255, 255, 255), (0, 0, 0)}) > 2
    assert r.plot_path == str(png)


def test_sampler_conventions():
    from pygan.metrics._util import resolve_samples

    calls = []

    def plain(n):  # a callable without a generator argument
        calls.append(n)
        return torch.zeros(n, 2)

    assert resolve_samples(plain, "f", n=600, batch_size=256).shape == (600, 2)
    assert calls == [256, 256, 88]

    class Broken:
        def sample(self, n, generator=None):
            raise TypeError("bug inside the model")

    with pytest.raises(TypeError, match="bug inside the model"):  # not masked by a retry
        resolve_samples(Broken(), "m", n=4)
    with pytest.raises(ValueError, match="number of samples"):
        resolve_samples(Broken(), "m")


def test_plot_curves_single_point(tmp_path):
    out = plot_curves({"m": [0.3]}, tmp_path / "p.png", scores={"m": 1.0}, title="one epoch")
    assert out.is_file()


def test_bad_inputs():
    real = torch.randn(10, 2)
    with pytest.raises(ValueError, match="non-empty"):
        nrds(real, {})
    with pytest.raises(TypeError, match="names"):
        nrds(real, {1: real})
    with pytest.raises(ValueError, match="shape"):
        nrds(real, {"a": torch.randn(10, 3)})
    with pytest.raises(ValueError, match="batch_size"):
        nrds(real, {"a": torch.randn(10, 2)}, batch_size=64)
    with pytest.raises(ValueError, match="epochs"):
        nrds(real, {"a": torch.randn(10, 2)}, epochs=0)
    with pytest.raises(TypeError, match="fakes"):
        nrds(real, {"a": 3})
    with pytest.raises(ValueError, match="folder"):
        nrds(real, {"a": "/nonexistent/folder"})
