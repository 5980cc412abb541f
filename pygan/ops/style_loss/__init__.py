"""``gram_matrix`` and ``style_loss``: SCoGAN's style reconstruction loss (SCoGAN paper, Sec. 4.2.3).

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

Kernel facts (CPU, ``csrc/cpu/style_loss.cpp``):

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

from pygan.ops import _backend, _check
from pygan.ops.style_loss import contract  # noqa: F401  (the native ops' fake kernels)
from pygan.ops.style_loss.reference import (
    NORMALIZE,
    _style_loss,
    _validate_features,
    gram_diff_ref,
    gram_matrix_ref,
    style_loss_ref,
)

__all__ = ["gram_matrix", "gram_matrix_ref", "style_loss", "style_loss_ref"]


def _triton_module():
    from pygan.ops.style_loss import triton  # imported on first use of backend="triton"

    return triton


# One signature for every backend: (fx, fy or None, normalize).
_backend.register_op("gram_diff", reference=gram_diff_ref, triton_module=_triton_module)


def gram_matrix(f: torch.Tensor, normalize: str = "chw", *, backend: str | None = None) -> torch.Tensor:
    """Per-sample Gram matrices ``[B, C, C]`` of ``f`` (``[B, C, H, W]`` or ``[B, C, N]``)."""
    _validate_features("f", f)
    _check.choice("normalize", normalize, NORMALIZE)
    return _backend.implementation("gram_diff", f.device, (f,), backend)(f, None, normalize)


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

    def gram_diff(fx, fy, normalize):
        return _backend.implementation("gram_diff", fx.device, (fx,), backend)(fx, fy, normalize)

    return _style_loss(fx, target, normalize, reduction, target_is_gram, gram_diff)
