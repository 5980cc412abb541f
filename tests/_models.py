"""Small models used by the loop/CLI tests: they follow the model contract for the data kinds the
baseline does not cover (paired, two-domain) and fail on purpose (non-finite or huge losses)."""

from dataclasses import dataclass

import torch
from torch import nn

from pygan.models import MODELS, Model, register


@dataclass
class TinyConfig:
    batch_size: int = 4
    lr: float = 0.01
    nan_at: int = 0  # return a NaN loss at this step (0: never)
    huge_at: int = 0  # return a finite but huge loss (1e38) from this step on (0: never)


class _Base(Model):
    Config = TinyConfig

    def configure_optimizers(self):
        return {"net": torch.optim.SGD(self.parameters(), lr=self.config.lr)}


class PairedTiny(_Base):
    """A 1x1 conv regressing ``batch.target`` from ``batch.x`` (L1)."""

    data_kinds = ("paired",)
    default_data = "photo-gray16?sources=sklearn"

    def __init__(self, config, info):
        super().__init__(config, info)
        self.net = nn.Conv2d(info.shape[0], info.target_shape[0], 1)
        self.steps = 0

    def training_step(self, batch):
        self.steps += 1
        loss = (self.net(batch.x) - batch.target).abs().mean()
        self.update("net", loss)
        if self.config.nan_at and self.steps == self.config.nan_at:
            return {"l1": float("nan")}
        if self.config.huge_at and self.steps >= self.config.huge_at:
            return {"l1": 1e38}
        return {"l1": loss.item()}

    @torch.no_grad()
    def sample(self, n, generator=None, batch=None):
        return torch.tanh(self.net(batch.x[:n]))


class TwoDomainTiny(_Base):
    """Two per-domain biases on a shared noise image; samples a pair (A, B) from the same noise."""

    data_kinds = ("two-domain",)
    default_data = "digits16-edge"

    def __init__(self, config, info):
        super().__init__(config, info)
        self.a = nn.Parameter(torch.zeros(info.shape))
        self.b = nn.Parameter(torch.zeros(info.shape))

    def training_step(self, batch):
        loss = (self.a - batch.x).pow(2).mean() + (self.b - batch.x_b).pow(2).mean()
        self.update("net", loss)
        return {"mse": loss.item()}

    @torch.no_grad()
    def sample(self, n, generator=None, batch=None):
        z = 0.1 * torch.randn((n, *self.a.shape), generator=generator)
        return torch.tanh(self.a + z), torch.tanh(self.b + z)


def install():
    for name, cls in (("test-paired", PairedTiny), ("test-two-domain", TwoDomainTiny)):
        if name not in MODELS:
            register(name)(cls)


def uninstall():
    for name in ("test-paired", "test-two-domain"):
        MODELS.pop(name, None)
