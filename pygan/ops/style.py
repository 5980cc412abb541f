"""``gram_matrix`` and ``style_loss``: SCoGAN's style reconstruction loss (seed 003 §4.2.3; spec §3.6).

Per-sample Gram matrix of a feature map ``f`` of shape ``[B, C, H, W]`` (or ``[B, C, N]``)::

    G[b] = F[b] F[b]^T / norm,   F[b] = f[b] viewed as C x (H*W)

``normalize="chw"`` divides by C*H*W (the thesis' equation and prose, and the default);
``normalize="hw"`` by H*W (the thesis' code listing). The style loss between a generated batch and a
target is the mean over B*C*C of the squared Gram difference (the code's ``reduce_mean``, pairing
fake[i] with real[i]) or its sum (``reduction="sum"``)::

    style_loss(fx, fy) = mean((G(fx) - G(fy))^2)

The fused op (``pygan::gram_diff``) forms ``G(fx) - G(fy)`` in one C x C buffer per sample (both
Grams are never materialised separately), and its backward computes the feature gradients
``(S F_x) / norm`` and ``-(S F_y) / norm`` with ``S = dD + dD^T`` from the gradient of the saved
difference. A precomputed target Gram (style transfer: one style image) is accepted in place of
``fy``: shape ``[C, C]`` (shared by the batch) or ``[B, C, C]``.

Kernel facts (CPU, ``csrc/cpu/style.cpp``):

* only the upper triangle of each Gram difference is computed (row panels, ~56-62% of a full
  GEMM's flops) and mirrored, so ``gram_matrix`` is exactly symmetric;
* bfloat16/float16 inputs are multiplied in float32 and rounded once (D, and each gradient), more
  accurate than PyTorch's reduced-precision ``bmm`` reference; float64 stays float64;
* ``D`` and the gradients are contiguous whatever the input layout (channels_last and other
  BLAS-compatible strides are read in place, others copied once);
* an empty feature map (H*W = 0 or N = 0) has an all-zero Gram: the norm is taken as at least 1
  instead of giving 0/0 (the references agree);
* double backward is exact (the backward op has its own autograd formula), so a style loss may sit
  inside a critic whose gradient penalty differentiates it twice.
"""

from __future__ import annotations

import torch

from pygan import _ext
from pygan.ops import _backend, _check
from pygan.ops._registration import register_autograd_pair, register_native

__all__ = ["gram_matrix", "gram_matrix_ref", "style_loss", "style_loss_ref"]

NORMALIZE = ("chw", "hw")
REDUCTIONS = ("mean", "sum")

# The native op, looked up once (None without the C++ library: calls then run the references).
_GRAM_DIFF = torch.ops.pygan.gram_diff.default if _ext.native_loaded() else None


def gram_norm(c: int, k: int, normalize: str) -> int:
    """The Gram's divisor: C*K ("chw") or K ("hw"), K = H*W (or N); at least 1, so that an empty
    feature map (K = 0) has an all-zero Gram (an empty sum) rather than 0/0. Every backend uses it."""
    return max(c * k if normalize == "chw" else k, 1)


def _norm(f: torch.Tensor, normalize: str) -> int:
    k = 1
    for s in f.shape[2:]:
        k *= s
    return gram_norm(f.shape[1], k, normalize)


def _validate_features(name: str, f) -> torch.Tensor:
    if isinstance(f, torch.Tensor) and f.dtype.is_floating_point and 3 <= f.dim() <= 4:
        return f
    return _check.tensor(name, f, ndim=(3, 4))


def _split_target(fx: torch.Tensor, target, target_is_gram):
    """Returns (fy, gram): exactly one is a tensor."""
    _check.tensor("target", target)
    if target_is_gram is None:
        c = fx.shape[1]
        target_is_gram = target.shape != fx.shape and target.dim() in (2, 3) and target.shape[-2:] == (c, c)
    elif not isinstance(target_is_gram, bool):
        raise TypeError(f"target_is_gram must be a bool or None, got {type(target_is_gram).__name__}")
    if target_is_gram:
        c = fx.shape[1]
        if target.dim() not in (2, 3) or target.shape[-2:] != (c, c):
            raise ValueError(
                f"target (a Gram) must have shape [C, C] or [B, C, C] with C={c}, got {tuple(target.shape)}"
            )
        if target.dim() == 3 and target.shape[0] != fx.shape[0]:
            raise ValueError(f"target (a Gram) must have batch {fx.shape[0]} like fx, got {target.shape[0]}")
        _check.same("fx", fx, "target", target, shape=False)
        return None, target
    _validate_features("target", target)
    _check.same("fx", fx, "target", target)
    return target, None


def gram_matrix_ref(f: torch.Tensor, normalize: str = "chw") -> torch.Tensor:
    """Pure-PyTorch reference of :func:`gram_matrix` (``bmm`` based, as users write it)."""
    _validate_features("f", f)
    _check.choice("normalize", normalize, NORMALIZE)
    F = f.flatten(2)
    return torch.bmm(F, F.transpose(1, 2)) / _norm(f, normalize)


def style_loss_ref(
    fx: torch.Tensor,
    target: torch.Tensor,
    normalize: str = "chw",
    reduction: str = "mean",
    *,
    target_is_gram: bool | None = None,
) -> torch.Tensor:
    """Pure-PyTorch reference of :func:`style_loss`: two ``bmm`` Grams and their squared difference."""
    _validate_features("fx", fx)
    _check.choice("normalize", normalize, NORMALIZE)
    _check.choice("reduction", reduction, REDUCTIONS)
    fy, gram = _split_target(fx, target, target_is_gram)
    gy = gram_matrix_ref(fy, normalize) if gram is None else gram
    d = gram_matrix_ref(fx, normalize) - gy
    return d.square().mean() if reduction == "mean" else d.square().sum()


def gram_matrix(f: torch.Tensor, normalize: str = "chw", *, backend: str | None = None) -> torch.Tensor:
    """Per-sample Gram matrices ``[B, C, C]`` of ``f`` (``[B, C, H, W]`` or ``[B, C, N]``)."""
    _validate_features("f", f)
    _check.choice("normalize", normalize, NORMALIZE)
    impl = _backend.resolve("gram_diff", f.device, (f,), backend)
    if impl == "cpp" or impl == "cuda":
        return _GRAM_DIFF(f, None, normalize)
    if impl == "reference":
        return gram_matrix_ref(f, normalize)
    from pygan.ops._triton import style as _tk

    return _tk.gram_diff(f, None, normalize)


def style_loss(
    fx: torch.Tensor,
    target: torch.Tensor,
    normalize: str = "chw",
    reduction: str = "mean",
    *,
    target_is_gram: bool | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Squared Gram difference between ``fx`` and ``target``; see the module docstring.

    Args:
        fx: features ``[B, C, H, W]`` or ``[B, C, N]``.
        target: features of the same shape, or a Gram ``[C, C]`` / ``[B, C, C]``. A 3-D target whose
            shape equals ``fx``'s is taken as features; pass ``target_is_gram`` to say otherwise.
        normalize: ``"chw"`` (default) or ``"hw"``.
        reduction: ``"mean"`` over B*C*C (default) or ``"sum"``.
        backend: see :mod:`pygan.ops._backend`.
    """
    _validate_features("fx", fx)
    _check.choice("normalize", normalize, NORMALIZE)
    _check.choice("reduction", reduction, REDUCTIONS)
    fy, gram = _split_target(fx, target, target_is_gram)
    impl = _backend.resolve("gram_diff", fx.device, (fx,), backend)
    if impl == "cpp" or impl == "cuda":
        d = _GRAM_DIFF(fx, fy, normalize)
    elif impl == "reference":
        return style_loss_ref(fx, target, normalize, reduction, target_is_gram=gram is not None)
    else:
        from pygan.ops._triton import style as _tk

        d = _tk.gram_diff(fx, fy, normalize)
    if gram is not None:
        d = d - gram
    return d.square().mean() if reduction == "mean" else d.square().sum()


# ---- fake kernels (native and Triton ops) and the Triton ops' autograd ---------------------------
# (csrc/autograd.cpp holds the native ops' autograd: the same formulas, in C++.)
# (pygan/ops/_triton/style.py registers the same functions on pygan_triton::gram_diff.)


def fake_gram_diff(fx, fy, normalize):
    torch._check(fx.dim() in (3, 4), lambda: f"gram_diff: fx must be 3-D or 4-D, got {fx.dim()}-D")
    return fx.new_empty((fx.shape[0], fx.shape[1], fx.shape[1]))


def fake_gram_diff_backward(grad, fx, fy, normalize, need_x, need_y):
    gx = fx.new_empty(fx.shape) if need_x else fx.new_empty((0,))
    gy = fx.new_empty(fx.shape) if need_y and fy is not None else fx.new_empty((0,))
    return gx, gy


def register_autograd_rules(fwd, bwd) -> None:
    """Registers the autograd formulas of ``gram_diff`` on the op ``fwd`` and of its backward on
    ``bwd`` (the Triton custom ops; the native ``pygan::`` ops' are in csrc/autograd.cpp). The backward op
    has its own formula, which calls it again, so double backward through a style loss is exact."""

    def setup_context(ctx, inputs, output):
        fx, fy, normalize = inputs
        ctx.normalize = normalize
        ctx.save_for_backward(fx, fy)

    def backward(ctx, grad):
        # grad is dL/dD; with style_loss it is 2 D s / (B C^2) (s = 1 for "sum"), formed by autograd
        # from the saved difference D. The op turns it into the feature gradients in one pass.
        fx, fy = ctx.saved_tensors
        need_x = ctx.needs_input_grad[0]
        need_y = fy is not None and ctx.needs_input_grad[1]
        if not (need_x or need_y):
            return None, None, None
        gx, gy = bwd(grad, fx, fy, ctx.normalize, need_x, need_y)
        return (gx if need_x else None), (gy if need_y else None), None

    def setup_context_bwd(ctx, inputs, output):
        grad, fx, fy, normalize, need_x, need_y = inputs
        ctx.normalize = normalize
        ctx.need_x = need_x
        ctx.need_y = need_y and fy is not None
        ctx.save_for_backward(grad, fx, fy)

    def backward_bwd(ctx, gg_x, gg_y):
        """Double backward. The backward is bilinear in (grad, features): with S = grad + grad^T and
        n the norm, (gx, gy) = (S Fx / n, -S Fy / n), so for incoming gg_x, gg_y

            d/d grad = (gg_x Fx^T + Fx gg_x^T - gg_y Fy^T - Fy gg_y^T) / n
            d/d Fx   =  S gg_x / n        d/d Fy = -S gg_y / n

        The last two are the backward op itself (differentiable again, to any order); the first is
        formed from torch ops. An output that was not computed (need_x/need_y false: an empty tensor)
        contributes nothing."""
        grad, fx, fy = ctx.saved_tensors
        use_x = ctx.need_x and gg_x is not None
        use_y = ctx.need_y and gg_y is not None
        d_grad = d_fx = d_fy = None
        if ctx.needs_input_grad[0] and (use_x or use_y):
            p = None
            if use_x:
                p = torch.bmm(gg_x.flatten(2), fx.flatten(2).transpose(1, 2))
            if use_y:
                q = torch.bmm(gg_y.flatten(2), fy.flatten(2).transpose(1, 2))
                p = -q if p is None else p - q
            d_grad = (p + p.transpose(1, 2)) / _norm(fx, ctx.normalize)
        want_x = use_x and ctx.needs_input_grad[1]
        want_y = use_y and ctx.needs_input_grad[2]
        if want_x or want_y:
            # fx's slot only carries the shape when want_x is false (its values are then not read).
            a, b = bwd(grad, gg_x if want_x else fx, gg_y if want_y else None, ctx.normalize, want_x, want_y)
            d_fx = a if want_x else None
            d_fy = b if want_y else None
        return d_grad, d_fx, d_fy, None, None, None

    register_autograd_pair(fwd, bwd, (backward, setup_context), (backward_bwd, setup_context_bwd))


register_native("gram_diff", fake_gram_diff, fake_gram_diff_backward)
