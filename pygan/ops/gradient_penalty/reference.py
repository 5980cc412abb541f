"""Pure-PyTorch references of ``interpolate``, ``grad_norm_penalty`` and ``gradient_penalty`` (the
ground truth every kernel matches), the argument checks every backend shares, and the penalty's
driver (interpolate, critic, inner gradient, norm penalty), which the public op runs with the fused
pieces and the reference with these."""

from __future__ import annotations

from collections.abc import Callable

import torch

from pygan.ops import _check

__all__ = ["KINDS", "grad_norm_penalty_ref", "gradient_penalty_ref", "interpolate_ref"]

KINDS = ("wgan-gp", "one-sided", "r1")


def _check_float(name: str, value) -> float:
    if isinstance(value, float):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    return float(value)


def _alpha_rows(alpha, real: torch.Tensor) -> torch.Tensor:
    """alpha as a [B] tensor (accepts [B] or [B, 1, ..., 1])."""
    if not (isinstance(alpha, torch.Tensor) and alpha.dtype is real.dtype and alpha.device == real.device):
        _check.tensor("alpha", alpha)
        _check.same("real", real, "alpha", alpha, shape=False)
    b = real.shape[0]
    dim = alpha.dim()
    if alpha.numel() != b or (dim > 1 and alpha.shape[0] != b) or (dim == 0 and b != 1):
        raise ValueError(
            f"alpha must hold one value per sample: shape [{b}] or [{b}, 1, ...], got {tuple(alpha.shape)}"
        )
    return alpha if dim == 1 else alpha.reshape(b)


def _validate_pair(real, fake):
    _check.pair("real", real, "fake", fake, min_ndim=1)


def interpolate_ref(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch reference of :func:`pygan.ops.interpolate`: ``real + alpha * (fake - real)``."""
    _validate_pair(real, fake)
    return _interpolate(real, fake, _alpha_rows(alpha, real))


def _interpolate(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The reference of the ``pygan::interpolate`` schema (``alpha`` [B]), on arguments already
    checked: the registered ``reference`` backend (the public op has validated them)."""
    a = alpha.reshape((-1,) + (1,) * (real.dim() - 1))
    return real + a * (fake - real)


def _validate_penalty_args(grads, target, weight, one_sided):
    _check.tensor("grads", grads, min_ndim=1)
    target = _check_float("target", target)
    weight = _check_float("weight", weight)
    if not isinstance(one_sided, bool):
        raise TypeError(f"one_sided must be a bool, got {type(one_sided).__name__}")
    return target, weight


def grad_norm_penalty_ref(
    grads: torch.Tensor,
    target: float = 1.0,
    weight: float = 10.0,
    one_sided: bool = False,
    *,
    return_norms: bool = False,
):
    """Pure-PyTorch reference of :func:`pygan.ops.grad_norm_penalty`."""
    target, weight = _validate_penalty_args(grads, target, weight, one_sided)
    penalty, norms = _grad_norm_penalty(grads, target, weight, one_sided)
    return (penalty, norms) if return_norms else penalty


def _grad_norm_penalty(grads: torch.Tensor, target: float, weight: float, one_sided: bool):
    """The reference of the ``pygan::grad_norm_penalty`` schema, ``(penalty, norms)``, on arguments
    already checked: the registered ``reference`` backend (the public op has validated them)."""
    norms = grads.flatten(1).norm(2, dim=1) if grads.dim() > 1 else grads.abs()
    gap = norms - target
    if one_sided:
        gap = gap.clamp_min(0)
    return weight * gap.square().mean(), norms


def _penalty(
    critic: Callable,
    real: torch.Tensor,
    fake: torch.Tensor | None,
    weight: float,
    target: float,
    kind: str,
    alpha,
    generator,
    return_norms: bool,
    interp: Callable,
    norm_penalty: Callable,
    grad_scale=None,
):
    _check.choice("kind", kind, KINDS)
    if not callable(critic):
        raise TypeError(f"critic must be callable (an nn.Module or function), got {type(critic).__name__}")
    _check.tensor("real", real, min_ndim=1)
    weight = _check_float("weight", weight)
    target = _check_float("target", target)
    real = real.detach()
    if kind == "r1":
        x = real.requires_grad_(True)
        target, weight = 0.0, weight / 2
    else:
        if fake is None:
            raise ValueError(f"fake is required for kind={kind!r} (only 'r1' uses real samples alone)")
        _validate_pair(real, fake)
        fake = fake.detach()
        if alpha is None:
            alpha = torch.rand(real.shape[0], generator=generator, dtype=real.dtype, device=real.device)
        x = interp(real, fake, alpha).detach().requires_grad_(True)
    out = critic(x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"critic must return a tensor, got {type(out).__name__}")
    if out.dim() == 0 or out.shape[0] != x.shape[0]:
        raise ValueError(
            f"critic must return one score per sample (shape [{x.shape[0]}, ...]), got {tuple(out.shape)}"
        )
    grads = _inner_grad(out, x, grad_scale)
    return norm_penalty(grads, target, weight, kind == "one-sided", return_norms=return_norms)


def _inner_grad(out: torch.Tensor, x: torch.Tensor, grad_scale) -> torch.Tensor:
    """``d out.sum() / d x`` with ``create_graph=True``. Under float16 autocast with a gradient scaler
    (``grad_scale``: a float or 0-dim tensor; ``None`` reads :func:`pygan.amp.penalty_grad_scale`,
    set by the training loop for ``--amp fp16``) the backward pass starts from ``grad_scale *
    mean(out)`` — each score's gradient is ``grad_scale / B``, so that small gradients survive float16
    while the seed itself stays below float16's maximum (``grad_scale * sum(out)`` would seed 65536,
    which is inf in float16) — and the gradient is multiplied back by ``B / grad_scale`` in float32
    before the norm (PyTorch's AMP recipe for gradient penalties)."""
    if grad_scale is None:
        from pygan.amp import penalty_grad_scale

        grad_scale = penalty_grad_scale(x.device)
    if grad_scale is None:
        (grads,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        return grads
    if not isinstance(grad_scale, torch.Tensor):
        grad_scale = torch.tensor(_check_float("grad_scale", grad_scale), device=x.device)
    grad_scale = grad_scale.to(device=x.device, dtype=torch.float32)
    (grads,) = torch.autograd.grad(out.float().mean() * grad_scale, x, create_graph=True)
    return (grads.float() * (out.shape[0] / grad_scale)).to(grads.dtype)


def gradient_penalty_ref(
    critic: Callable,
    real: torch.Tensor,
    fake: torch.Tensor | None = None,
    weight: float = 10.0,
    target: float = 1.0,
    kind: str = "wgan-gp",
    *,
    alpha: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    return_norms: bool = False,
    grad_scale=None,
):
    """Pure-PyTorch reference of :func:`pygan.ops.gradient_penalty`."""
    return _penalty(
        critic,
        real,
        fake,
        weight,
        target,
        kind,
        alpha,
        generator,
        return_norms,
        interpolate_ref,
        grad_norm_penalty_ref,
        grad_scale,
    )
