"""``feature_regularizer``: SCoGAN's feature regulariser (SCoGAN paper, Sec. 4.1, Eq. 4.1).

    F_diff = sum_k w_k * R(|a_k - b_k|^p)

over a list of layer pairs (the first K generator layer outputs of G1(z) and G2(z), same z). ``R`` is
the mean over all elements of the layer (``reduction="mean"``, the thesis' code: ``reduce_mean`` of
the squared difference per layer, summed over layers, **without** Eq. 4.1's 1/K factor; pass
``weights=[1/K]*K`` for the equation's form) or the sum (``reduction="sum"``). ``p=2`` is the
thesis' squared L2; ``p=1`` is offered for L1 feature matching. Both sides receive a gradient
unless ``detach_b=True`` (one-sided use: pull ``a`` towards a fixed ``b``).

An empty layer follows PyTorch: its mean is NaN, its sum 0.

The C++ kernel (``csrc/cpu/feature_regularizer.cpp``) makes one pass over each layer in the forward (reads
``a_k`` and ``b_k``) and one in the backward (reads both, writes ``grad_a`` and ``grad_b = -grad_a``
together). Decisions where PyTorch's own behaviour is the guide:

* Accuracy: float32 SIMD lane accumulators (float64 for float64 input) flushed into float64 every
  1,024 elements; chunks and layers are added in float64 and the result is rounded to the features'
  dtype once (so bfloat16/float16 results are *more* accurate than the reference run in that dtype).
  The chunk partial sums are combined in a fixed order, so the value does not depend on the number
  of threads.
* p=1's gradient uses ``sign(d)`` with ``sign(0) = 0`` (exact ties ``a == b`` get no gradient) and
  ``sign(NaN) = 0``, as torch's ``abs`` backward.
* Gradient layout: when ``a_k`` and ``b_k`` share a dense layout (contiguous, channels_last,
  channels_last_3d) both gradients have it, otherwise they are contiguous (the layout rule of
  ``pygan/ops/_layout.py``).
* Double backward is supported (e.g. the regulariser inside a loss that is differentiated twice):
  the backward op has its own autograd formula written in torch ops.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pygan.ops import _backend
from pygan.ops.feature_regularizer import contract  # noqa: F401  (the native ops' fake kernels)
from pygan.ops.feature_regularizer.reference import (
    REDUCTIONS,
    _feature_regularizer,
    _validate,
    feature_regularizer_ref,
)

__all__ = ["REDUCTIONS", "feature_regularizer", "feature_regularizer_ref"]


def _triton_module():
    from pygan.ops.feature_regularizer import triton  # imported on first use of backend="triton"

    return triton


# One signature for every backend: (feats_a, feats_b (already detached for detach_b), p, reduction,
# weights).
_backend.register_op("feature_regularizer", reference=_feature_regularizer, triton_module=_triton_module)


def feature_regularizer(
    feats_a,
    feats_b,
    p: int = 2,
    reduction: str = "mean",
    weights: Sequence[float] | None = None,
    detach_b: bool = False,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Multi-layer feature distance ``sum_k w_k R(|a_k - b_k|^p)``; see the module docstring.

    Args:
        feats_a, feats_b: a tensor or a list of tensors (one per layer); pair ``k`` must match in
            shape, and all layers share dtype and device.
        p: 1 or 2.
        reduction: ``"mean"`` (per layer, over all its elements) or ``"sum"``.
        weights: one float per layer (default 1).
        detach_b: when True no gradient reaches ``feats_b``.
        backend: see :mod:`pygan.ops._backend`.

    Returns:
        A 0-dim tensor in the features' dtype (accumulated in float32, float64 for float64).
    """
    a, b, p, w = _validate(feats_a, feats_b, p, reduction, weights, detach_b)
    impl = _backend.implementation("feature_regularizer", a[0].device, (a[0],), backend)
    if detach_b:
        b = [y.detach() for y in b]
    return impl(a, b, p, reduction, w)
