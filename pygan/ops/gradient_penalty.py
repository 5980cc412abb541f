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

from pygan import _ext
from pygan.ops import _backend, _check
from pygan.ops._layout import empty_like_layout, same_dense_layout
from pygan.ops._registration import register_autograd_pair, register_native

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


# The native ops, looked up once (None without the C++ library: calls then run the references).
_INTERPOLATE = torch.ops.pygan.interpolate.default if _ext.native_loaded() else None
_GRAD_NORM_PENALTY = torch.ops.pygan.grad_norm_penalty.default if _ext.native_loaded() else None


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
    impl = _backend.resolve("interpolate", real.device, (real,), backend)
    if impl == "cpp" or impl == "cuda":
        return _INTERPOLATE(real, fake, a)
    if impl == "reference":
        return interpolate_ref(real, fake, a)
    from pygan.ops._triton import gradient_penalty as _tk

    return _tk.interpolate(real, fake, a)


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
    impl = _backend.resolve("grad_norm_penalty", grads.device, (grads,), backend)
    if impl == "cpp" or impl == "cuda":
        penalty, norms = _GRAD_NORM_PENALTY(grads, target, weight, one_sided)
    elif impl == "reference":
        return grad_norm_penalty_ref(grads, target, weight, one_sided, return_norms=return_norms)
    else:
        from pygan.ops._triton import gradient_penalty as _tk

        penalty, norms = _tk.grad_norm_penalty(grads, target, weight, one_sided)
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
        grad_scale,
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


# ---- fake kernels (native and Triton ops) and the Triton ops' autograd ---------------------------
# (csrc/autograd.cpp holds the native ops' autograd: the same formulas, in C++.)
# (pygan/ops/_triton/gradient_penalty.py registers the same functions on its pygan_triton:: ops.)


def _norm_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _row_sum(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Sum over every non-batch dim: ``[B, ...] -> [B]`` (rank 1: the tensor itself)."""
    if t.dim() == 1:
        return t if dtype is None else t.to(dtype)
    return t.sum(dim=tuple(range(1, t.dim())), dtype=dtype)


def fake_interpolate(real, fake, alpha):
    return empty_like_layout(real, same_dense_layout(real, fake))


def fake_interpolate_backward(grad, alpha, need_real, need_fake):
    keep = same_dense_layout(grad)
    gr = empty_like_layout(grad, keep) if need_real else grad.new_empty((0,))
    gf = empty_like_layout(grad, keep) if need_fake else grad.new_empty((0,))
    return gr, gf


def fake_grad_norm_penalty(grads, target, weight, one_sided):
    penalty = grads.new_empty(())
    norms = grads.new_empty((grads.shape[0],), dtype=_norm_dtype(grads.dtype))
    return penalty, norms


def fake_grad_norm_penalty_backward(grad_penalty, grad_norms, grads, norms, target, weight, one_sided):
    return empty_like_layout(grads, same_dense_layout(grads))


def register_interpolate_autograd(fwd, bwd) -> None:
    """Registers the autograd formulas of ``interpolate`` on the op ``fwd`` and of its backward on
    ``bwd`` (the Triton custom ops; the native ``pygan::`` ops' are in csrc/autograd.cpp). Every backward is
    made of these ops (or torch ops), so gradients of any order are exact.

    ``out = real + alpha_b (fake - real)``: ``d real = (1 - alpha_b) g`` and ``d fake = alpha_b g`` in
    one call of ``bwd``; ``d alpha_b = sum over the row of g (fake - real)`` in torch ops, only when
    alpha requires grad (``real`` and ``fake`` are saved only then)."""

    def setup_context(ctx, inputs, output):
        real, fake, alpha = inputs
        ctx.need_alpha = ctx.needs_input_grad[2]
        ctx.save_for_backward(alpha, real if ctx.need_alpha else None, fake if ctx.need_alpha else None)

    def backward(ctx, grad):
        alpha, real, fake = ctx.saved_tensors
        need_real, need_fake = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        d_real = d_fake = d_alpha = None
        if need_real or need_fake:
            gr, gf = bwd(grad, alpha, need_real, need_fake)
            d_real = gr if need_real else None
            d_fake = gf if need_fake else None
        if ctx.need_alpha:
            d_alpha = _row_sum(grad * (fake - real))
        return d_real, d_fake, d_alpha

    # interpolate_backward: (gr, gf) = ((1 - alpha_b) g, alpha_b g), linear in g and in alpha.
    def setup_context_bwd(ctx, inputs, output):
        grad, alpha, need_real, need_fake = inputs
        ctx.need_real, ctx.need_fake = need_real, need_fake
        ctx.save_for_backward(grad if ctx.needs_input_grad[1] else None, alpha)

    def backward_bwd(ctx, ggr, ggf):
        grad, alpha = ctx.saved_tensors
        # Outputs that were not requested are empty [0] tensors: their incoming gradient is ignored.
        ggr = ggr if ctx.need_real else None
        ggf = ggf if ctx.need_fake else None
        d_grad = d_alpha = None
        if ctx.needs_input_grad[0]:
            # d/dg of (1 - a) g . ggr + a g . ggf  =  ggr + a (ggf - ggr): interpolate itself.
            if ggr is not None and ggf is not None:
                d_grad = fwd(ggr, ggf, alpha)
            elif ggr is not None:
                d_grad = bwd(ggr, alpha, True, False)[0]
            elif ggf is not None:
                d_grad = bwd(ggf, alpha, False, True)[1]
        if ctx.needs_input_grad[1]:
            d_alpha = torch.zeros_like(alpha)
            if ggf is not None:
                d_alpha = d_alpha + _row_sum(grad * ggf)
            if ggr is not None:
                d_alpha = d_alpha - _row_sum(grad * ggr)
        return d_grad, d_alpha, None, None

    register_autograd_pair(fwd, bwd, (backward, setup_context), (backward_bwd, setup_context_bwd))


def register_grad_norm_penalty_autograd(fwd, bwd) -> None:
    """Registers the autograd formulas of ``grad_norm_penalty`` (outputs ``(penalty, norms)``) on the
    op ``fwd`` and of its backward on ``bwd`` (op handles as for
    :func:`register_interpolate_autograd`). The backward op's formula calls it again and torch ops,
    so gradients of any order are exact (``gradgradcheck`` passes on every backend)."""

    def setup_context(ctx, inputs, output):
        grads, target, weight, one_sided = inputs
        ctx.args = (target, weight, one_sided)
        ctx.save_for_backward(grads, output[1])

    def backward(ctx, grad_penalty, grad_norms):
        grads, norms = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        if grad_penalty is None:
            grad_penalty = torch.zeros((), dtype=grads.dtype, device=grads.device)
        if grad_norms is None:
            grad_norms = torch.zeros_like(norms)
        return bwd(grad_penalty, grad_norms, grads, norms, *ctx.args), None, None, None

    # grad_norm_penalty_backward: out_b = c_b(gp, gn, n) * g_b with
    #   c_b = gp * 2w h(n_b - t) / (B n_b) + gn_b / n_b   (0 where n_b == 0).
    def setup_context_bwd(ctx, inputs, output):
        grad_penalty, grad_norms, grads, norms, target, weight, one_sided = inputs
        ctx.args = (target, weight, one_sided)
        ctx.save_for_backward(grad_penalty, grad_norms, grads, norms)

    def backward_bwd(ctx, gg):
        grad_penalty, grad_norms, grads, norms = ctx.saved_tensors
        target, weight, one_sided = ctx.args
        need_gp, need_gn, need_g, need_n = ctx.needs_input_grad[:4]
        d_gp = d_gn = d_g = d_n = None
        if need_g:
            # c does not depend on g: d/dg = c * gg, the same op applied to gg.
            d_g = bwd(grad_penalty, grad_norms, gg, norms, target, weight, one_sided)
        if need_gp or need_gn or need_n:
            b = grads.shape[0]
            # s_b = <gg_b, g_b>, then the chain through c_b (every factor 0 where n_b == 0).
            s = _row_sum(gg * grads, dtype=norms.dtype)
            zero = norms == 0
            n = torch.where(zero, torch.ones_like(norms), norms)
            gap = norms - target
            h = gap.clamp_min(0) if one_sided else gap
            scale = 2.0 * weight / max(b, 1)
            if need_gp:
                d_gp = (s * torch.where(zero, 0.0, scale * h / n)).sum().to(grad_penalty.dtype)
            if need_gn:
                d_gn = torch.where(zero, 0.0, s / n).to(grad_norms.dtype)
            if need_n:
                dh = (gap >= 0).to(norms.dtype) if one_sided else torch.ones_like(norms)
                dc_dn = (
                    grad_penalty.to(norms.dtype) * scale * (dh * n - h) / n.square() - grad_norms / n.square()
                )
                d_n = torch.where(zero, 0.0, s * dc_dn)
        return d_gp, d_gn, d_g, d_n, None, None, None

    register_autograd_pair(fwd, bwd, (backward, setup_context), (backward_bwd, setup_context_bwd))


register_native("interpolate", fake_interpolate, fake_interpolate_backward)
register_native("grad_norm_penalty", fake_grad_norm_penalty, fake_grad_norm_penalty_backward)
