"""pygan.nn wrappers forward to the ops with their stored settings."""

import pytest
import torch

from pygan import nn as pnn
from pygan import ops


def test_wrappers_match_ops():
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(pnn.ResidualAdd("tanh")(x, y), ops.residual_add(x, y, "tanh"))
    torch.testing.assert_close(
        pnn.FeatureRegularizer(p=1, weights=[0.5])([x], [y]),
        ops.feature_regularizer([x], [y], 1, weights=[0.5]),
    )
    torch.testing.assert_close(pnn.StyleLoss("hw")(x, y), ops.style_loss(x, y, "hw"))
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(75, 1))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    torch.testing.assert_close(
        pnn.GradientPenalty(weight=5.0)(critic, x, y, generator=g1),
        ops.gradient_penalty(critic, x, y, 5.0, generator=g2),
    )


def test_gradient_penalty_lazy_regularisation():
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1))
    x = torch.randn(4, 3, 2, 2)
    gp = pnn.GradientPenalty(kind="r1", weight=2.0, every=4)
    values = [gp(critic, x).item() for _ in range(8)]
    full = ops.gradient_penalty(critic, x, kind="r1", weight=8.0).item()
    assert values[1:4] == [0.0] * 3 and values[5:8] == [0.0] * 3
    assert values[0] == pytest.approx(full) and values[4] == pytest.approx(full)


def test_wrapper_errors():
    with pytest.raises(ValueError, match="activation"):
        pnn.ResidualAdd("relu")
    with pytest.raises(ValueError, match="kind"):
        pnn.GradientPenalty(kind="wgan")
    with pytest.raises(ValueError, match="every"):
        pnn.GradientPenalty(every=0)
