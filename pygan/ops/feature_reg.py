"""``feature_regularizer``: SCoGAN's feature regulariser (seed 003 §4.1, Eq. 4.1; spec §3.3).

    F_diff = sum_k w_k * R(|a_k - b_k|^p)

over a list of layer pairs (the first K generator layer outputs of G1(z) and G2(z), same z). ``R`` is
the mean over all elements of the layer (``reduction="mean"``, the thesis' code: ``reduce_mean`` of
the squared difference per layer, summed over layers, **without** Eq. 4.1's 1/K factor; pass
``weights=[1/K]*K`` for the equation's form) or the sum (``reduction="sum"``). ``p=2`` is the
thesis' squared L2; ``p=1`` is offered for L1 feature matching. Both sides receive a gradient
unless ``detach_b=True`` (one-sided use: pull ``a`` towards a fixed ``b``).

An empty layer follows PyTorch: its mean is NaN, its sum 0.

The C++ kernel (``csrc/cpu/feature_reg.cpp``) makes one pass over each layer in the forward (reads
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

from pygan import _ext
from pygan.ops import _backend, _check
from pygan.ops._layout import empty_like_layout, same_dense_layout
from pygan.ops._registration import register_autograd_pair, register_native

__all__ = ["feature_regularizer", "feature_regularizer_ref"]

REDUCTIONS = ("mean", "sum")

# The native op, looked up once (None without the C++ library: calls then run the reference).
_OP = torch.ops.pygan.feature_regularizer.default if _ext.native_loaded() else None
_SEQ = (list, tuple)
Tensor = torch.Tensor


def _layers_fast(feats_a, feats_b) -> bool:
    """The common valid case of the layer lists, in a handful of attribute reads per layer: two
    lists/tuples of one length >= 1 of floating-point tensors, pairwise of one shape, all of one
    dtype and device. False sends the call through the full checks (which name what is wrong)."""
    if not (isinstance(feats_a, _SEQ) and isinstance(feats_b, _SEQ)):
        return False
    k = len(feats_a)
    if k == 0 or len(feats_b) != k:
        return False
    x0 = feats_a[0]
    if not isinstance(x0, Tensor):
        return False
    dt, dev = x0.dtype, x0.device
    if not dt.is_floating_point:
        return False
    for x, y in zip(feats_a, feats_b):
        if not (
            isinstance(x, Tensor)
            and isinstance(y, Tensor)
            and x.dtype is dt
            and y.dtype is dt
            and x.shape == y.shape
            and x.device == dev
            and y.device == dev
        ):
            return False
    return True


def _validate(feats_a, feats_b, p, reduction, weights, detach_b):
    if _layers_fast(feats_a, feats_b):
        a = feats_a if isinstance(feats_a, list) else list(feats_a)
        b = feats_b if isinstance(feats_b, list) else list(feats_b)
    else:
        a = _check.tensor_list("feats_a", feats_a)
        b = _check.tensor_list("feats_b", feats_b)
        if len(a) != len(b):
            raise ValueError(
                f"feats_a and feats_b must hold the same number of layers, got {len(a)} and {len(b)}"
            )
        for i, (x, y) in enumerate(zip(a, b)):
            _check.same(f"feats_a[{i}]", x, f"feats_b[{i}]", y)
            _check.same("feats_a[0]", a[0], f"feats_a[{i}]", x, shape=False)
    if isinstance(p, bool) or p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    _check.choice("reduction", reduction, REDUCTIONS)
    if weights is None:
        w = [1.0] * len(a)
    else:
        if isinstance(weights, torch.Tensor):
            # The schema takes float[]: a tensor is read to the host (a device sync on CUDA; pass
            # floats inside a captured CUDA-graph step).
            weights = weights.tolist()
        if not isinstance(weights, Sequence) or isinstance(weights, str):
            raise TypeError(f"weights must be a sequence of floats, got {type(weights).__name__}")
        if len(weights) != len(a):
            raise ValueError(f"weights must have one entry per layer ({len(a)}), got {len(weights)}")
        try:
            w = [float(x) for x in weights]
        except (TypeError, ValueError):
            raise TypeError(f"weights must be a sequence of floats, got {weights!r}") from None
    if not isinstance(detach_b, bool):
        raise TypeError(f"detach_b must be a bool, got {type(detach_b).__name__}")
    return a, b, int(p), w


def feature_regularizer_ref(
    feats_a,
    feats_b,
    p: int = 2,
    reduction: str = "mean",
    weights: Sequence[float] | None = None,
    detach_b: bool = False,
) -> torch.Tensor:
    """Pure-PyTorch reference of :func:`feature_regularizer`."""
    a, b, p, w = _validate(feats_a, feats_b, p, reduction, weights, detach_b)
    total = None
    for x, y, wk in zip(a, b, w):
        d = x - (y.detach() if detach_b else y)
        term = d.square() if p == 2 else d.abs()
        term = term.mean() if reduction == "mean" else term.sum()
        term = term * wk
        total = term if total is None else total + term
    return total


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
    impl = _backend.resolve("feature_regularizer", a[0].device, (a[0],), backend)
    if impl == "reference":
        return feature_regularizer_ref(a, b, p, reduction, w, detach_b)
    if detach_b:
        b = [y.detach() for y in b]
    if impl == "triton":
        from pygan.ops._triton import feature_reg as _tk

        return _tk.feature_regularizer(a, b, p, reduction, w)
    return _OP(a, b, p, reduction, w)


# ---- fake kernels (native and Triton ops) and the Triton ops' autograd ---------------------------
# (csrc/autograd.cpp holds the native ops' autograd: the same formulas, in C++.)
# (pygan/ops/_triton/feature_reg.py registers the same functions on pygan_triton::feature_regularizer.)


def fake_feature_regularizer(a, b, p, reduction, weights):
    return a[0].new_empty(())


def _fake_grads(a, b):
    return [empty_like_layout(x, same_dense_layout(x, y)) for x, y in zip(a, b)]


def fake_feature_regularizer_backward(grad, a, b, p, reduction, weights, need_a, need_b):
    return (_fake_grads(a, b) if need_a else []), (_fake_grads(a, b) if need_b else [])


def register_autograd_rules(fwd, bwd) -> None:
    """Registers the autograd formulas of ``feature_regularizer`` on the op ``fwd`` and of its
    backward on ``bwd`` (the Triton custom ops; the native ``pygan::`` ops' are in csrc/autograd.cpp)."""

    def setup_context(ctx, inputs, output):
        a, b, p, reduction, weights = inputs
        ctx.p, ctx.reduction, ctx.weights = p, reduction, weights
        ctx.save_for_backward(*a, *b)

    def backward(ctx, grad):
        # needs_input_grad mirrors the inputs: one bool per tensor of `a` and of `b`.
        need_a, need_b = any(ctx.needs_input_grad[0]), any(ctx.needs_input_grad[1])
        saved = ctx.saved_tensors
        k = len(saved) // 2
        none = [None] * k  # autograd wants a list (of None) for a Tensor[] input
        if not (need_a or need_b):
            return none, none, None, None, None
        grad_a, grad_b = bwd(
            grad, list(saved[:k]), list(saved[k:]), ctx.p, ctx.reduction, ctx.weights, need_a, need_b
        )
        return (grad_a if need_a else none), (grad_b if need_b else none), None, None, None

    def setup_context_bwd(ctx, inputs, output):
        grad, a, b, p, reduction, weights, need_a, need_b = inputs
        ctx.p, ctx.reduction, ctx.weights = p, reduction, weights
        ctx.need_a, ctx.need_b = need_a, need_b
        ctx.save_for_backward(grad, *a, *b)
        # Missing incoming gradients stay None (no zero tensors materialised).
        ctx.set_materialize_grads(False)

    def backward_bwd(ctx, gg_a, gg_b):
        """Autograd of the backward op, in torch ops (so it is differentiable again).

        The op computes ``ga_k = grad * c_k * phi'(d_k)`` and ``gb_k = -ga_k`` with ``d_k = a_k - b_k``,
        ``c_k = w_k * s_k``. With ``u_k = gg_a[k] - gg_b[k]`` (a missing one counts as 0):
        ``d/d grad = sum_k c_k <phi'(d_k), u_k>`` (accumulated in float32, float64 for float64),
        ``d/d a_k = grad * c_k * phi''(d_k) * u_k`` and ``d/d b_k = -d/d a_k``; ``phi' = 2d, phi'' = 2``
        for p=2, ``phi' = sign(d), phi'' = 0`` for p=1.
        """
        saved = ctx.saved_tensors
        grad, rest = saved[0], saved[1:]
        k = len(rest) // 2
        a, b = rest[:k], rest[k:]
        gg_a = list(gg_a) if ctx.need_a and gg_a is not None else [None] * k
        gg_b = list(gg_b) if ctx.need_b and gg_b is not None else [None] * k
        need_grad, need_a, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        acc = torch.float64 if grad.dtype == torch.float64 else torch.float32
        d_grad = None
        d_a, d_b = [None] * k, [None] * k
        for i in range(k):
            ga, gb = gg_a[i], gg_b[i]
            if ga is None and gb is None:
                continue
            u = ga if gb is None else (-gb if ga is None else ga - gb)
            n = a[i].numel()
            c = ctx.weights[i] / n if ctx.reduction == "mean" and n else ctx.weights[i]
            if need_grad and n:
                d = a[i] - b[i]
                dphi = 2.0 * d if ctx.p == 2 else torch.sign(d)
                term = (dphi * u).sum(dtype=acc) * c
                d_grad = term if d_grad is None else d_grad + term
            if ctx.p == 2 and (need_a[i] or need_b[i]):
                da = (2.0 * c) * grad.to(u.dtype) * u
                if need_a[i]:
                    d_a[i] = da
                if need_b[i]:
                    d_b[i] = -da
        if d_grad is not None:
            d_grad = d_grad.to(grad.dtype)
        elif need_grad:
            d_grad = torch.zeros_like(grad)
        return d_grad, d_a, d_b, None, None, None, None, None

    register_autograd_pair(fwd, bwd, (backward, setup_context), (backward_bwd, setup_context_bwd))


register_native("feature_regularizer", fake_feature_regularizer, fake_feature_regularizer_backward)
