"""The loss terms the models share, each defined once and named as the papers write it.

Adversarial losses take the networks' raw outputs (logits for the cross-entropy GAN, scores for the
Wasserstein critic) and return 0-dim tensors. The cross-entropy ones are written with ``softplus``
(``softplus(-l) = -log sigmoid(l)``, ``softplus(l) = -log(1 - sigmoid(l))``) on at least float32 logits, so
that they are computed in float32 under bf16 autocast::

    bce_real(l) = mean softplus(-l)       -mean log D         (target "real")
    bce_fake(l) = mean softplus(l)        -mean log(1 - D)    (target "fake")
    d_loss_bce  = bce_real(D(x)) + bce_fake(D(G(z)))          (Goodfellow et al. 2014)
    g_loss_bce  = bce_real(D(G(z)))                           (non-saturating)
    d_loss_wgan = mean D(G(z)) - mean D(x)                    (Arjovsky et al. 2017)
    g_loss_wgan = -mean D(G(z))

The VAE terms (Kingma & Welling 2014) and the reconstruction distances keep the reduction each
model's paper states as an explicit argument or name (per-sample sums vs element means).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = [
    "at_least_f32",
    "bce_fake",
    "bce_real",
    "d_loss_bce",
    "d_loss_wgan",
    "g_loss_bce",
    "g_loss_saturating",
    "g_loss_wgan",
    "half_sq_sum",
    "kl_normal",
    "l1",
    "mse",
    "reparameterize",
]


# ---- adversarial -----------------------------------------------------------------------------------


def bce_real(logits: torch.Tensor) -> torch.Tensor:
    """``-mean log sigmoid(l)``: binary cross-entropy of logits ``l`` against the target "real"."""
    return F.softplus(-at_least_f32(logits)).mean()


def bce_fake(logits: torch.Tensor) -> torch.Tensor:
    """``-mean log(1 - sigmoid(l))``: binary cross-entropy of logits ``l`` against "fake"."""
    return F.softplus(at_least_f32(logits)).mean()


def d_loss_bce(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's cross-entropy ``-(log D(real) + log(1 - D(fake)))`` from logits, each
    term averaged over its batch."""
    return bce_real(d_real) + bce_fake(d_fake)


def g_loss_bce(d_fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss ``-log D(fake)`` from logits, averaged over the batch."""
    return bce_real(d_fake)


def g_loss_saturating(d_fake: torch.Tensor) -> torch.Tensor:
    """The minimax generator loss ``log(1 - D(fake))`` from logits (Goodfellow et al.'s original)."""
    return -bce_fake(d_fake)


def d_loss_wgan(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The Wasserstein critic's loss ``mean D(fake) - mean D(real)`` (no penalty)."""
    return d_fake.mean() - d_real.mean()


def g_loss_wgan(d_fake: torch.Tensor) -> torch.Tensor:
    """The Wasserstein generator loss ``-mean D(fake)``."""
    return -d_fake.mean()


# ---- variational -----------------------------------------------------------------------------------


def kl_normal(
    mu: torch.Tensor, logvar: torch.Tensor, reduction: Literal["mean", "none"] = "mean"
) -> torch.Tensor:
    """``KL(N(mu, diag exp(logvar)) || N(0, I))`` in closed form, summed over every non-batch
    dimension: the batch mean (``reduction="mean"``) or ``[B]`` per sample (``"none"``).
    bfloat16/float16 inputs are upcast to float32 first."""
    if mu.shape != logvar.shape or mu.dim() < 1:
        raise ValueError(
            f"mu and logvar must have the same shape [B, ...], got {tuple(mu.shape)} "
            f"and {tuple(logvar.shape)}"
        )
    if reduction not in ("none", "mean"):
        raise ValueError(f"reduction must be 'none' or 'mean', got {reduction!r}")
    mu, logvar = at_least_f32(mu), at_least_f32(logvar)
    per = 0.5 * (mu.square() + logvar.exp() - logvar - 1.0).flatten(1).sum(1)
    return per.mean() if reduction == "mean" else per


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``z = mu + exp(logvar / 2) * eps`` (Kingma & Welling's reparameterisation)."""
    if not (mu.shape == logvar.shape == eps.shape):
        raise ValueError(
            f"mu, logvar and eps must share a shape, got {tuple(mu.shape)}, {tuple(logvar.shape)}, "
            f"{tuple(eps.shape)}"
        )
    return mu + torch.exp(0.5 * logvar) * eps.to(mu.dtype)


# ---- reconstruction --------------------------------------------------------------------------------


def l1(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean |out - target|`` over every element."""
    return (out - target).abs().mean()


def mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean (out - target)^2`` over every element."""
    return (out - target).square().mean()


def half_sq_sum(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1/2 sum_j (out_j - target_j)^2`` per sample, averaged over the batch."""
    return 0.5 * (out - target).square().flatten(1).sum(1).mean()


def at_least_f32(t: torch.Tensor) -> torch.Tensor:
    """At least float32 (the loss terms under bf16 autocast)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
