"""Mode coverage against hand-counted examples."""

import math

import pytest
import torch

from pygan.metrics import mode_coverage


def ring8(radius=2.0):
    a = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return torch.stack([radius * torch.cos(a), radius * torch.sin(a)], 1)


def test_hand_counted_example():
    c = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    std = 0.5  # high-quality radius 1.5
    s = torch.tensor(
        [
            [0.0, 0.0], [1.4, 0.0], [0.0, -1.49],  # mode 0: 3 within 1.5
            [0.0, 1.6],  # nearest mode 0 but 1.6 > 1.5: low quality
            [10.0, 1.0],  # mode 1
            [5.0, 5.0],  # nowhere
        ]
    )  # fmt: skip
    r = mode_coverage(s, c, std, min_count=1)
    assert r.counts == [3, 1, 0]
    assert r.modes_covered == 2 and r.num_modes == 3
    assert r.high_quality_fraction == pytest.approx(4 / 6)
    assert r.high_quality_percent == pytest.approx(400 / 6)
    assert mode_coverage(s, c, std, min_count=2).modes_covered == 1
    # Default threshold: ceil(0.2 * 6 / 3) = 1.
    assert mode_coverage(s, c, std).min_count == 1
    # Per-mode std: mode 0 twice as wide (radius 3) now also takes [0, 1.6].
    assert mode_coverage(s, c, [1.0, 0.5, 0.5], min_count=1).counts == [4, 1, 0]


def test_ring_collapsed_generator():
    g = torch.Generator().manual_seed(0)
    centres, std = ring8(), 0.02
    full = centres[torch.arange(2500) % 8] + std * torch.randn(2500, 2, generator=g, dtype=torch.float64)
    r = mode_coverage(full, centres, std)
    assert r.modes_covered == 8 and r.high_quality_fraction > 0.98  # 3 std covers 98.9 % in 2-D
    assert r.min_count == math.ceil(0.2 * 2500 / 8)
    collapsed = centres[torch.arange(2500) % 3] + std * torch.randn(2500, 2, generator=g, dtype=torch.float64)
    # A few stragglers at another mode do not count as covering it.
    collapsed[:5] = centres[5]
    assert mode_coverage(collapsed, centres, std).modes_covered == 3
    assert mode_coverage(collapsed, centres, std, min_count=1).modes_covered == 4


def test_bad_inputs():
    c = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="samples"):
        mode_coverage(torch.zeros(3), c, 1.0)
    with pytest.raises(ValueError, match="centres"):
        mode_coverage(torch.zeros(3, 2), torch.zeros(2, 3), 1.0)
    with pytest.raises(ValueError, match="std"):
        mode_coverage(torch.zeros(3, 2), c, -1.0)
    with pytest.raises(ValueError, match="std"):
        mode_coverage(torch.zeros(3, 2), c, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="min_count"):
        mode_coverage(torch.zeros(3, 2), c, 1.0, min_count=0)


def test_mode_log_is_mode_coverage_with_its_defaults():
    """What dcgan, wgan-gp and acl-ae log for points: the documented metric (20 % of a uniform share
    covers a mode), centres given as a list (the data's meta) or a tensor."""
    from pygan.metrics.modes import mode_log

    centres = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]
    # 100 samples: 60 on mode 0, 6 on mode 1 (>= ceil(0.2 * 100 / 4) = 5), 4 on mode 2, 30 far away
    on = [
        torch.zeros(60, 2),
        torch.tensor([[10.0, 0.0]]).repeat(6, 1),
        torch.tensor([[0.0, 10.0]]).repeat(4, 1),
    ]
    pts = torch.cat([*on, torch.full((30, 2), 5.0)])
    out = mode_log(pts, centres, 0.1)
    mc = mode_coverage(pts, torch.tensor(centres), 0.1)
    assert out == {"modes": 2.0, "modes_total": 4.0, "high_quality": pytest.approx(0.7)}
    assert out["modes"] == mc.modes_covered and out["high_quality"] == mc.high_quality_fraction


def test_models_log_the_same_mode_metric():
    from pygan.data import load_data
    from pygan.models import build_model

    data = load_data("ring8", "test")
    keys = {"modes", "modes_total", "high_quality"}
    for name in ("wgan-gp", "dcgan"):
        m = build_model(name, data.info, ["mlp_hidden=16", "mlp_layers=2"])
        out = m.evaluate(data, torch.Generator().manual_seed(0))
        assert keys <= set(out) and out["modes_total"] == 8, name
        samples = m.sample(2500, torch.Generator().manual_seed(0))
        mc = mode_coverage(samples, torch.tensor(data.meta["centers"]), data.meta["std"])
        assert out["modes"] == mc.modes_covered and out["high_quality"] == mc.high_quality_fraction, name
