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
"""

from __future__ import annotations

import torch

from pygan import _ext
from pygan.ops import _backend, _check

__all__ = ["gram_matrix", "gram_matrix_ref", "style_loss", "style_loss_ref"]

NORMALIZE = ("chw", "hw")
REDUCTIONS = ("mean", "sum")


def _norm(f: torch.Tensor, normalize: str) -> int:
    n = 1
    for s in f.shape[2:]:
        n *= s
    return n * f.shape[1] if normalize == "chw" else n


def _validate_features(name: str, f) -> torch.Tensor:
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
    impl = _backend.select("gram_diff", (f,), backend)
    if impl == "reference":
        return gram_matrix_ref(f, normalize)
    if impl == "triton":
        from pygan.ops._triton import style as _tk

        return _tk.gram_diff(f, None, normalize)
    return torch.ops.pygan.gram_diff(f, None, normalize)


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
    impl = _backend.select("gram_diff", (fx,), backend)
    if impl == "reference":
        return style_loss_ref(fx, target, normalize, reduction, target_is_gram=gram is not None)
    if impl == "triton":
        from pygan.ops._triton import style as _tk

        d = _tk.gram_diff(fx, fy, normalize)
    else:
        d = torch.ops.pygan.gram_diff(fx, fy, normalize)
    if gram is not None:
        d = d - gram
    return d.square().mean() if reduction == "mean" else d.square().sum()


# ---- registration of the native op: fake kernels and autograd --------------------------------


def _register() -> None:
    """Fake kernels and autograd for ``pygan::gram_diff`` (and its backward op)."""


if _ext.native_loaded():
    _register()
