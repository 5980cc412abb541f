"""``gradient_penalty`` and its fused pieces ``interpolate`` and ``grad_norm_penalty``.

WGAN-GP (Gulrajani et al.; as the SCoGAN paper uses it, Sec. 2.5 and Listing 6.9)::

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

Kernel details (C++ CPU; the GPU kernels follow the same contract):

* Rows: dim 0 is the batch ``B``, ``D = numel / B`` elements per sample. Dense layouts (contiguous,
  channels_last, channels_last_3d, equal strides) are walked in place - the batch is outermost in
  each, so row ``b`` is storage ``[b*D, (b+1)*D)``; other strides are copied contiguous first. Outputs
  get the operands' strides when they are walked in place, else contiguous
  (:mod:`pygan.ops._layout`).
* ``interpolate`` uses torch.lerp's two-sided form (``real + a (fake - real)`` for ``a < 0.5``,
  ``fake - (1 - a)(fake - real)`` otherwise), so ``alpha = 0`` and ``1`` give ``real`` and ``fake``
  exactly. Its backward writes ``(1 - a) g`` and ``a g`` in one pass; the gradient for ``alpha``
  (only when alpha requires grad) is ``sum over non-batch dims of g * (fake - real)`` in torch ops.
* Norms: squares accumulate in float32 SIMD lanes within fixed 4096-element blocks (float64 lanes
  for float64), block sums in float64, so the result does not depend on the thread count. A row of
  one element (rank-1 ``grads``, or ``D = 1``) has norm ``|g|`` exactly (no squaring, no underflow).
  The penalty is formed in float64 from the unrounded norms; ``B = 0`` gives NaN, as torch's mean
  of nothing. The backward's ``c_b`` comes from the returned (float32) norms.
* Every backward is made of registered ops with their own autograd formulas (or torch ops), so
  gradients of any order are exact - e.g. differentiating the penalty's gradient w.r.t. the input
  again; ``gradgradcheck`` passes for all four ops.

Critics that mix samples (BatchNorm in training mode) make the per-sample gradient ill-defined; use
LayerNorm/no norm in the critic, as WGAN-GP prescribes. Keep the critic eager in the penalty step:
``torch.compile`` of a critic does not support double backward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pygan.ops import _backend
from pygan.ops.gradient_penalty import contract  # noqa: F401  (the native ops' fake kernels)
from pygan.ops.gradient_penalty.reference import (
    KINDS,
    _alpha_rows,
    _grad_norm_penalty,
    _interpolate,
    _penalty,
    _validate_pair,
    _validate_penalty_args,
    grad_norm_penalty_ref,
    gradient_penalty_ref,
    interpolate_ref,
)

__all__ = [
    "KINDS",
    "grad_norm_penalty",
    "grad_norm_penalty_ref",
    "gradient_penalty",
    "gradient_penalty_ref",
    "interpolate",
    "interpolate_ref",
]


def _triton_module():
    from pygan.ops.gradient_penalty import triton  # imported on first use of backend="triton"

    return triton


# One signature per schema for every backend: interpolate (real, fake, alpha [B]);
# grad_norm_penalty (grads, target, weight, one_sided) -> (penalty, norms).
_backend.register_op("interpolate", reference=_interpolate, triton_module=_triton_module)
_backend.register_op("grad_norm_penalty", reference=_grad_norm_penalty, triton_module=_triton_module)


def interpolate(
    real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor, *, backend: str | None = None
) -> torch.Tensor:
    """``real + alpha_b * (fake - real)`` per sample ``b``, in one pass."""
    _validate_pair(real, fake)
    a = _alpha_rows(alpha, real)
    return _backend.implementation("interpolate", real.device, (real,), backend)(real, fake, a)


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
    impl = _backend.implementation("grad_norm_penalty", grads.device, (grads,), backend)
    penalty, norms = impl(grads, target, weight, one_sided)
    return (penalty, norms) if return_norms else penalty


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
    grad_scale=None,
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
        grad_scale: float16 loss scale for the inner gradient (see :func:`_inner_grad`); None uses
            the training loop's scaler when one is active (``--amp fp16``), else no scaling.
    """

    def interp(r, f, a):
        return interpolate(r, f, a, backend=backend)

    def norm_penalty(g, t, w, one_sided, return_norms):
        return grad_norm_penalty(g, t, w, one_sided, return_norms=return_norms, backend=backend)

    return _penalty(
        critic, real, fake, weight, target, kind, alpha, generator, return_norms, interp, norm_penalty,
        grad_scale,
    )  # fmt: skip
