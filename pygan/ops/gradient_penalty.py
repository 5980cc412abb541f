"""``gradient_penalty`` and its fused pieces ``interpolate`` and ``grad_norm_penalty``.

WGAN-GP (Gulrajani et al.; seed 003 §2.5 and Listing 6.9, spec §3.2)::

    x_hat   = real + alpha * (fake - real),        alpha ~ U[0, 1], ONE alpha per sample
    g       = d critic(x_hat).sum() / d x_hat       (create_graph=True)
    n_b     = || g_b ||_2 over ALL non-batch dims   (per-sample norm: the axis bug users hit most)
    penalty = weight * mean_b (n_b - target)^2      (weight = lambda = 10, target = 1)

``kind="one-sided"`` penalises only norms above the target: ``weight * mean_b max(0, n_b - target)^2``.
``kind="r1"`` (Mescheder et al. 2018) is zero-centred on real data, no interpolation:
``weight / 2 * mean_b ||grad D(real_b)||^2`` (``weight`` is R1's gamma; ``target`` is ignored).

The returned scalar backpropagates into the critic's parameters through autograd's double backward,
exactly as the reference. The fused pieces:

* ``interpolate(real, fake, alpha)``: one pass, per-sample alpha (shape ``[B]`` or ``[B, 1, ...]``).
* ``grad_norm_penalty(grads, target, weight, one_sided)``: per-sample norms (float32 accumulation,
  float64 for float64) and the penalty in one pass; its backward ``c_b * g_b`` in one pass with
  ``c_b = 2 * weight * h(n_b - target) / (B * n_b)``, safe at zero norm (``c_b = 0`` where ``n_b = 0``,
  the limit PyTorch's norm backward also takes). The thesis' code adds 1e-8 to the gradients before
  the norm; pygan does not (it is only a guard against that zero-norm case).

Critics that mix samples (BatchNorm in training mode) make the per-sample gradient ill-defined; use
LayerNorm/no norm in the critic, as WGAN-GP prescribes. Keep the critic eager in the penalty step:
``torch.compile`` of a critic does not support double backward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pygan import _ext
from pygan.ops import _backend, _check

__all__ = [
    "KINDS",
    "grad_norm_penalty",
    "grad_norm_penalty_ref",
    "gradient_penalty",
    "gradient_penalty_ref",
    "interpolate",
    "interpolate_ref",
]

KINDS = ("wgan-gp", "one-sided", "r1")


def _check_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    return float(value)


def _alpha_rows(alpha, real: torch.Tensor) -> torch.Tensor:
    """alpha as a [B] tensor (accepts [B] or [B, 1, ..., 1])."""
    _check.tensor("alpha", alpha)
    _check.same("real", real, "alpha", alpha, shape=False)
    b = real.shape[0]
    if alpha.numel() != b or (alpha.dim() > 1 and alpha.shape[0] != b) or (alpha.dim() == 0 and b != 1):
        raise ValueError(
            f"alpha must hold one value per sample: shape [{b}] or [{b}, 1, ...], got {tuple(alpha.shape)}"
        )
    return alpha.reshape(b)


def _validate_pair(real, fake):
    _check.tensor("real", real, min_ndim=1)
    _check.tensor("fake", fake, min_ndim=1)
    _check.same("real", real, "fake", fake)


def interpolate_ref(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch reference of :func:`interpolate`: ``real + alpha * (fake - real)``."""
    _validate_pair(real, fake)
    a = _alpha_rows(alpha, real).reshape((-1,) + (1,) * (real.dim() - 1))
    return real + a * (fake - real)


def interpolate(
    real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor, *, backend: str | None = None
) -> torch.Tensor:
    """``real + alpha_b * (fake - real)`` per sample ``b``, in one pass."""
    _validate_pair(real, fake)
    a = _alpha_rows(alpha, real)
    impl = _backend.select("interpolate", (real, fake), backend)
    if impl == "reference":
        return interpolate_ref(real, fake, a)
    if impl == "triton":
        from pygan.ops._triton import gradient_penalty as _tk

        return _tk.interpolate(real, fake, a)
    return torch.ops.pygan.interpolate(real, fake, a)


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
    """Pure-PyTorch reference of :func:`grad_norm_penalty`."""
    target, weight = _validate_penalty_args(grads, target, weight, one_sided)
    norms = grads.flatten(1).norm(2, dim=1) if grads.dim() > 1 else grads.abs()
    gap = norms - target
    if one_sided:
        gap = gap.clamp_min(0)
    penalty = weight * gap.square().mean()
    return (penalty, norms) if return_norms else penalty


def grad_norm_penalty(
    grads: torch.Tensor,
    target: float = 1.0,
    weight: float = 10.0,
    one_sided: bool = False,
    *,
    return_norms: bool = False,
    backend: str | None = None,
):
    """``weight * mean_b h(||grads_b|| - target)^2`` (h = identity, or max(0, .) if one-sided).

    Returns the 0-dim penalty (grads' dtype), and with ``return_norms=True`` also the per-sample norms
    ``[B]`` (float32; float64 for float64 grads; reference: grads' dtype).
    """
    target, weight = _validate_penalty_args(grads, target, weight, one_sided)
    impl = _backend.select("grad_norm_penalty", (grads,), backend)
    if impl == "reference":
        return grad_norm_penalty_ref(grads, target, weight, one_sided, return_norms=return_norms)
    if impl == "triton":
        from pygan.ops._triton import gradient_penalty as _tk

        penalty, norms = _tk.grad_norm_penalty(grads, target, weight, one_sided)
    else:
        penalty, norms = torch.ops.pygan.grad_norm_penalty(grads, target, weight, one_sided)
    return (penalty, norms) if return_norms else penalty


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
    (grads,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return norm_penalty(grads, target, weight, kind == "one-sided", return_norms=return_norms)


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
):
    """Pure-PyTorch reference of :func:`gradient_penalty`."""
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
    )


def gradient_penalty(
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
    backend: str | None = None,
):
    """The gradient penalty of ``critic``; see the module docstring.

    Args:
        critic: maps a batch ``[B, ...]`` to scores ``[B]`` or ``[B, 1]`` (an ``nn.Module``, possibly
            DDP-wrapped; never ``static_graph=True`` with a penalty).
        real, fake: batches of the same shape (``fake`` unused for ``"r1"``); both are detached.
        weight: lambda (WGAN-GP, default 10) or gamma (R1).
        target: the norm the penalty pulls towards (1 for WGAN-GP).
        kind: ``"wgan-gp"``, ``"one-sided"`` or ``"r1"``.
        alpha: per-sample interpolation weights ``[B]`` (default ``U[0, 1)`` from ``generator``).
        return_norms: also return the per-sample gradient norms ``[B]`` (for logging).
        backend: for the fused pieces; see :mod:`pygan.ops._backend`.
    """

    def interp(r, f, a):
        return interpolate(r, f, a, backend=backend)

    def norm_penalty(g, t, w, one_sided, return_norms):
        return grad_norm_penalty(g, t, w, one_sided, return_norms=return_norms, backend=backend)

    return _penalty(
        critic, real, fake, weight, target, kind, alpha, generator, return_norms, interp, norm_penalty
    )


# ---- registration of the native ops: fake kernels and autograd -------------------------------


def _register() -> None:
    """Fake kernels and autograd for ``pygan::interpolate`` and ``pygan::grad_norm_penalty``
    (and their backward ops)."""


if _ext.native_loaded():
    _register()
