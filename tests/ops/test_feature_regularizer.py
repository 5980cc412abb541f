"""feature_regularizer: the C++ kernel against the reference with its own rules (the value's error
scaled by the terms' size when weights cancel, exact ties, gradient layouts, many layers, rank 1-5),
double backward, special values, and argument errors. opcheck, torch.compile and every other
backend's equivalence: the generic tests of tests/ops/test_ops.py (pygan.ops._cases)."""

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pygan.ops import feature_regularizer, feature_regularizer_ref
from pygan.ops._layout import empty_like_layout, same_dense_layout
from tests.ops.helpers import BATCH, DTYPES, LAYOUTS, TOLS, apply_layout, assert_close, examples, max_err

WEIGHTS = (1.0, 0.5, 2.0, -1.0, -0.25, 0.0, 3.0)
CHUNK = 32768  # csrc/cpu/feature_regularizer.cpp kChunk (also ATen's elementwise grain)


def _layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "channels_last" and t.dim() == 5:
        return t.contiguous(memory_format=torch.channels_last_3d)
    return apply_layout(t, layout)


def _values(shape, dtype, seed, scale=1.0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale + offset).to(dtype)


def _layer_pair(shape, dtype, seed, layout_a, layout_b, scale, ties):
    """a and b of one layer with their own layouts; ``ties`` copies a into b at ~1/3 of the places
    (exact ties a == b, where p=1's gradient is sign(0) = 0)."""
    a = _values(shape, dtype, seed, scale)
    b = _values(shape, dtype, seed + 1, scale)
    if ties:
        mask = (_values(shape, torch.float64, seed + 2) > 0.43).to(torch.bool)
        b = torch.where(mask, a, b)
    return _layout(a, layout_a), _layout(b, layout_b)


def _run(fn, a, b, p, reduction, weights, detach_b, grad):
    a = [x.detach().requires_grad_(True) for x in a]
    b = [y.detach().requires_grad_(not detach_b) for y in b]
    out = fn(a, b, p, reduction, weights, detach_b)
    inputs = a if detach_b else a + b
    grads = torch.autograd.grad(out, inputs, grad)
    return out, grads


def _cpp(a, b, p, reduction, weights, detach_b):
    return feature_regularizer(a, b, p, reduction, weights, detach_b, backend="cpp")


def _abs_scale(a, b, p, reduction, weights):
    """sum_k |w_k| R_k in float64: the size of the terms the result adds up, which bounds its
    rounding error when weights of both signs cancel."""
    total = 0.0
    for k, (x, y) in enumerate(zip(a, b)):
        d = (x.double() - y.double()).abs() ** p
        r = d.sum().item() if reduction == "sum" or d.numel() == 0 else d.mean().item()
        total += abs(1.0 if weights is None else weights[k]) * (0.0 if math.isnan(r) else r)
    return total


def _compare(a, b, p, reduction, weights, detach_b, grad, dtype):
    a64, b64 = [x.double() for x in a], [y.double() for y in b]
    out, grads = _run(_cpp, a, b, p, reduction, weights, detach_b, grad)
    ref, ref_grads = _run(feature_regularizer_ref, a64, b64, p, reduction, weights, detach_b, grad.double())
    low = (
        None
        if dtype == torch.float64
        else _run(feature_regularizer_ref, a, b, p, reduction, weights, detach_b, grad)
    )
    assert out.shape == () and out.dtype == dtype
    scale = _abs_scale(a, b, p, reduction, weights)
    if torch.isnan(ref):
        assert torch.isnan(out), f"out: {out} but the reference is NaN"
    else:
        # The rule of helpers.assert_close, with the scale of the terms (not of their possibly
        # cancelling sum) in the relative part.
        rtol, atol = TOLS[dtype]
        err = max_err(out, ref)
        bound = rtol * max(scale, abs(ref.item())) + atol
        if low is not None:
            bound = max(bound, 2 * max_err(low[0], ref) + atol)
        assert err <= bound, (
            f"out: error {err:.3e} > bound {bound:.3e} ({dtype}, {out.item()} vs {ref.item()})"
        )
    for i, (g, r) in enumerate(zip(grads, ref_grads)):
        assert g.shape == r.shape
        assert_close(f"grad[{i}]", g, r, None if low is None else low[1][i], dtype)
        # Layout rule (common.h): a layer whose a_k and b_k share a dense layout keeps it in both
        # gradients; otherwise they are contiguous.
        k = i % len(a)
        want = empty_like_layout(a[k], same_dense_layout(a[k], b[k])).stride()
        assert g.stride() == want, (i, g.stride(), want)


@st.composite
def layer_shapes(draw):
    """Rank 1-5 shapes with batch 0/1/odd/prime first, small enough for many examples."""
    rank = draw(st.integers(1, 5))
    if rank == 1:
        return (draw(st.sampled_from((*BATCH, 16, 31, 64, 97, 257, 1031))),)
    pool = {2: (1, 2, 3, 5, 13, 17, 33), 3: (1, 2, 3, 5, 7, 11, 17)}
    sizes = pool.get(rank, (1, 2, 3, 5, 7))
    batch = draw(st.sampled_from(BATCH))
    return (batch, *[draw(st.sampled_from(sizes)) for _ in range(rank - 1)])


GRAD_KINDS = ("scalar", "view", "expanded")


def _grad(value, dtype, kind):
    """The incoming 0-dim gradient: a plain scalar, a view into a larger buffer (storage offset),
    or an element of a stride-0 expanded tensor."""
    if kind == "scalar":
        return torch.tensor(value, dtype=dtype)
    if kind == "view":
        buf = torch.zeros(7, dtype=dtype)
        buf[3] = value
        return buf[3]
    return torch.tensor([value], dtype=dtype).expand(5)[2]


@pytest.mark.cpu_kernel
@settings(max_examples=examples(1200))
@given(
    shapes=st.lists(layer_shapes(), min_size=1, max_size=4),
    dtype=st.sampled_from(DTYPES),
    p=st.sampled_from([1, 2]),
    reduction=st.sampled_from(["mean", "sum"]),
    weights=st.none() | st.lists(st.sampled_from(WEIGHTS), min_size=4, max_size=4),
    detach_b=st.booleans(),
    ties=st.booleans(),
    layouts=st.lists(st.tuples(st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS)), min_size=4, max_size=4),
    scale=st.sampled_from([0.3, 1.0, 4.0]),
    grad=st.tuples(st.sampled_from([1.0, 0.5, -2.0, 0.0]), st.sampled_from(GRAD_KINDS)),
    seed=st.integers(0, 2**31 - 1),
)
def test_feature_regularizer_matches_reference(
    shapes, dtype, p, reduction, weights, detach_b, ties, layouts, scale, grad, seed
):
    a, b = [], []
    for k, shape in enumerate(shapes):
        x, y = _layer_pair(shape, dtype, seed + 10 * k, *layouts[k], scale, ties)
        a.append(x)
        b.append(y)
    w = None if weights is None else weights[: len(shapes)]
    if dtype in (torch.float16, torch.bfloat16):
        # Keep the low-precision reference itself finite (it rounds every layer's term).
        assume(_abs_scale(a, b, p, reduction, w) < torch.finfo(dtype).max / 16)
    _compare(a, b, p, reduction, w, detach_b, _grad(grad[0], dtype, grad[1]), dtype)


@pytest.mark.cpu_kernel
@settings(max_examples=examples(500))
@given(
    sizes=st.lists(st.integers(0, 5000), min_size=1, max_size=3),
    dtype=st.sampled_from(DTYPES),
    p=st.sampled_from([1, 2]),
    reduction=st.sampled_from(["mean", "sum"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_feature_regularizer_matches_reference_1d_tails(sizes, dtype, p, reduction, seed):
    """Flat lengths around every SIMD width, unrolled step and accumulator block (1024)."""
    scale = 0.5 if dtype == torch.float16 else 1.0  # keeps float16 sums of 5000 terms finite
    a = [_values((n,), dtype, seed + k, scale) for k, n in enumerate(sizes)]
    b = [_values((n,), dtype, seed + 100 + k, scale) for k, n in enumerate(sizes)]
    _compare(a, b, p, reduction, None, False, torch.tensor(1.5, dtype=dtype), dtype)


@pytest.mark.cpu_kernel
@settings(max_examples=examples(300))
@given(
    n_layers=st.integers(1, 40),
    size=st.integers(1, 3000),
    dtype=st.sampled_from(DTYPES),
    p=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**31 - 1),
)
def test_feature_regularizer_matches_reference_many_layers(n_layers, size, dtype, p, seed):
    """Many small layers of different sizes: chunks of many layers share one parallel loop."""
    shapes = [((size * (k + 3)) % 3001 + 1,) for k in range(n_layers)]
    a = [_values(s, dtype, seed + k, 0.5) for k, s in enumerate(shapes)]
    b = [_values(s, dtype, seed + 1000 + k, 0.5) for k, s in enumerate(shapes)]
    weights = [WEIGHTS[k % len(WEIGHTS)] for k in range(n_layers)]
    _compare(a, b, p, "mean", weights, False, torch.tensor(0.75, dtype=dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_feature_regularizer_large_parallel(dtype):
    """Above the parallel grain: one large odd layer (several chunks, the last partial), many small layers
    whose total is above the grain, and a mix; channels_last and mismatched layouts."""
    big = (3, 7, 61, 67)  # 85,827 elements: 3 chunks, the last one partial, odd tail
    assert 2 * CHUNK < math.prod(big) < 3 * CHUNK
    cases = [
        [big],
        [(1500 + 7 * k,) for k in range(40)],
        [big, (5,), (2, 3, 5, 7, 11), (40_000,)],
    ]
    for i, shapes in enumerate(cases):
        a = [_values(s, dtype, 10 * i + k) for k, s in enumerate(shapes)]
        b = [_values(s, dtype, 10 * i + k + 500, 2.0) for k, s in enumerate(shapes)]
        if i == 0:
            a = [x.contiguous(memory_format=torch.channels_last) for x in a]
            b = [apply_layout(y, "permuted") for y in b]
        for p in (1, 2):
            _compare(a, b, p, "mean", None, False, torch.tensor(1.0, dtype=dtype), dtype)
        _compare(a, b, 2, "sum", [0.5] * len(shapes), True, torch.tensor(-0.5, dtype=dtype), dtype)


def test_feature_regularizer_deterministic_across_threads():
    """Chunk partial sums are combined in a fixed order: the result is bitwise the same with one
    and with two threads (and across calls)."""
    a = [_values((4, 64, 33, 31), torch.float32, 1), _values((100_000,), torch.float32, 2)]
    b = [_values((4, 64, 33, 31), torch.float32, 3), _values((100_000,), torch.float32, 4)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = [torch.ops.pygan.feature_regularizer(a, b, p, "mean", [1.0, -0.5]) for p in (1, 2)]
    finally:
        torch.set_num_threads(threads)
    many = [torch.ops.pygan.feature_regularizer(a, b, p, "mean", [1.0, -0.5]) for p in (1, 2)]
    for x, y in zip(one, many):
        assert torch.equal(x, y), (x.item(), y.item())


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_feature_regularizer_float32_accuracy_large(p, reduction):
    """A 4M-element float32 layer with an offset (all terms of one sign and large: the worst case
    for float32 accumulation): within 2x torch's own float32 error of the float64 value, and well
    within float32 resolution."""
    n = 1 << 22
    a = _values((n,), torch.float32, 7, 1.0, 3.0)
    b = _values((n,), torch.float32, 8, 0.5, -1.0)
    got = torch.ops.pygan.feature_regularizer([a], [b], p, reduction, [1.0]).double()
    ref = feature_regularizer_ref([a.double()], [b.double()], p, reduction)
    torch_err = (feature_regularizer_ref([a], [b], p, reduction).double() - ref).abs().item()
    err = (got - ref).abs().item()
    assert err <= 2 * torch_err + 1e-7 * abs(ref.item()), (err, torch_err, ref.item())
    assert err <= 1e-6 * abs(ref.item())


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_feature_regularizer_empty_layers(reduction):
    """An empty layer: mean -> NaN, sum -> 0 (as PyTorch); its gradients are empty, the other
    layers' are unaffected."""
    a = [torch.randn(0, 3), torch.randn(4, 5)]
    b = [torch.randn(0, 3), torch.randn(4, 5)]
    for p in (1, 2):
        _compare(a, b, p, reduction, [1.0, 2.0], False, torch.tensor(1.0), torch.float32)
    out = feature_regularizer(a[:1], b[:1], 2, reduction, backend="cpp")
    assert torch.isnan(out) if reduction == "mean" else out.item() == 0.0


def test_feature_regularizer_special_values():
    """inf and NaN propagate like the reference; p=1 ties give a zero gradient (sign(0) = 0, as
    torch's abs backward; also sign(NaN) = 0)."""
    a = torch.tensor([1.0, float("inf"), 2.0, float("nan"), -0.0, 3.0])
    b = torch.tensor([1.0, 0.0, 2.0, 1.0, 0.0, -1.0])
    for p in (1, 2):
        for red in ("mean", "sum"):
            out, grads = _run(_cpp, [a], [b], p, red, None, False, torch.tensor(1.0))
            ref, ref_grads = _run(feature_regularizer_ref, [a], [b], p, red, None, False, torch.tensor(1.0))
            torch.testing.assert_close(out, ref, equal_nan=True)
            for g, r in zip(grads, ref_grads):
                torch.testing.assert_close(g, r, equal_nan=True)
    _, (ga, gb) = _run(_cpp, [a], [b], 1, "sum", None, False, torch.tensor(1.0))
    assert ga[0] == 0 and ga[2] == 0 and ga[4] == 0 and gb[0] == 0 and ga[5] == 1 and gb[5] == -1


def test_feature_regularizer_detach_b_and_requires_grad_combinations():
    a = [torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(5, requires_grad=True)]
    b = [torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(5, requires_grad=True)]
    feature_regularizer(a, b, detach_b=True, backend="cpp").backward()
    assert all(x.grad is not None for x in a) and all(y.grad is None for y in b)
    ga = [x.grad.clone() for x in a]
    for x in a:
        x.grad = None
    feature_regularizer(a, b, backend="cpp").backward()
    for x, y, g in zip(a, b, ga):
        torch.testing.assert_close(x.grad, g)
        torch.testing.assert_close(y.grad, -g)
    # Only b (or only one tensor of a) needs a gradient.
    a0 = [x.detach() for x in a]
    gb0, gb1 = torch.autograd.grad(feature_regularizer(a0, b, backend="cpp"), b)
    torch.testing.assert_close(gb0, -ga[0])
    torch.testing.assert_close(gb1, -ga[1])
    mixed = [a[0], a[1].detach()]
    (g0,) = torch.autograd.grad(feature_regularizer(mixed, [y.detach() for y in b], backend="cpp"), [a[0]])
    torch.testing.assert_close(g0, ga[0])
    assert not feature_regularizer([x.detach() for x in a], [y.detach() for y in b]).requires_grad


def test_feature_regularizer_incoming_grad_through_expand():
    """The loss is consumed through a stride-0 expand (its incoming gradient is a reduction of a
    stride-0 tensor)."""
    a = [torch.randn(3, 4, dtype=torch.float64, requires_grad=True)]
    b = [torch.randn(3, 4, dtype=torch.float64, requires_grad=True)]
    results = []
    for fn in (_cpp, feature_regularizer_ref):
        out = fn(a, b, 2, "mean", None, False)
        results.append(torch.autograd.grad(out.expand(6).sum() * 0.5, a + b))
    for g, r in zip(*results):
        torch.testing.assert_close(g, r, rtol=1e-13, atol=1e-15)


def test_feature_regularizer_gradient_layouts():
    """Gradients keep a dense layout shared by a_k and b_k and are contiguous otherwise."""
    cl = torch.randn(2, 3, 5, 5).contiguous(memory_format=torch.channels_last)
    cl3 = torch.randn(2, 3, 2, 5, 5).contiguous(memory_format=torch.channels_last_3d)
    a = [cl, cl3, cl.clone(), apply_layout(torch.randn(4, 6), "strided")]
    b = [cl.clone() + 1, cl3.clone() - 1, cl.contiguous(), apply_layout(torch.randn(4, 6), "strided")]
    grads = torch.ops.pygan.feature_regularizer_backward(
        torch.tensor(1.0), a, b, 2, "mean", [1.0] * 4, True, True
    )
    for side in grads:
        assert side[0].is_contiguous(memory_format=torch.channels_last) and not side[0].is_contiguous()
        assert side[1].is_contiguous(memory_format=torch.channels_last_3d) and not side[1].is_contiguous()
        assert side[2].is_contiguous() and side[3].is_contiguous()
    ga, gb = torch.ops.pygan.feature_regularizer_backward(
        torch.tensor(1.0), a, b, 2, "mean", [1.0] * 4, False, True
    )
    assert ga == [] and len(gb) == 4


def _layers64(shapes, seed, p1_gap=False):
    g = torch.Generator().manual_seed(seed)
    a = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    b = []
    for x in a:
        d = torch.randn(x.shape, generator=g, dtype=torch.float64)
        if p1_gap:  # keep |a - b| >= 0.2: away from p=1's kink, where finite differences fail
            d = d.sign() * (d.abs() + 0.2)
        b.append(x + d)
    return [x.requires_grad_() for x in a], [y.requires_grad_() for y in b]


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_feature_regularizer_gradcheck_and_gradgradcheck(p, reduction):
    shapes = [(2, 3, 2, 2), (5,), (3, 2)]
    a, b = _layers64(shapes, p + 3, p1_gap=True)
    w = [0.5, -1.5, 2.0]
    k = len(shapes)

    def f(*t):
        return feature_regularizer(list(t[:k]), list(t[k:]), p, reduction, w, backend="cpp")

    assert torch.autograd.gradcheck(f, (*a, *b))
    assert torch.autograd.gradgradcheck(f, (*a, *b))

    def fd(*t):
        return feature_regularizer(list(t), [y.detach() for y in b], p, reduction, w, True, backend="cpp")

    assert torch.autograd.gradgradcheck(fd, tuple(a))

    # The backward op alone, every need_a / need_b combination, its grad input included.
    grad = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    for need_a, need_b in ((True, True), (True, False), (False, True)):

        def bwd(g, *t, need_a=need_a, need_b=need_b):
            ga, gb = torch.ops.pygan.feature_regularizer_backward(
                g, list(t[:k]), list(t[k:]), p, reduction, w, need_a, need_b
            )
            return (*ga, *gb)

        assert torch.autograd.gradcheck(bwd, (grad, *a, *b))
        assert torch.autograd.gradgradcheck(bwd, (grad, *a, *b))


@pytest.mark.cpu_kernel
@pytest.mark.parametrize("p", [1, 2])
def test_feature_regularizer_double_backward_matches_reference(p):
    """Second-order values (a gradient-penalty-like use: the norm of the gradient, differentiated
    again, with the loss scaled by a tensor so that d/d grad is exercised) equal the reference's."""
    a, b = _layers64([(3, 4, 5), (7,)], 11, p1_gap=True)
    t = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    results = []
    for fn in (_cpp, feature_regularizer_ref):
        out = fn(a, b, p, "mean", [0.7, -2.0], False) * t
        grads = torch.autograd.grad(out, a + b, create_graph=True)
        penalty = sum((g * g).sum() for g in grads) + sum(g.sum() for g in grads) ** 2
        results.append(torch.autograd.grad(penalty, [t, *a, *b], allow_unused=True, materialize_grads=True))
    for g, r in zip(*results):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-14)


def test_feature_regularizer_backend_selection():
    a = [torch.randn(2, 3, requires_grad=True)]
    b = [torch.randn(2, 3)]
    assert "pygan" in feature_regularizer(a, b).grad_fn.name()
    assert "pygan" not in feature_regularizer(a, b, backend="reference").grad_fn.name()
    with pytest.raises(ValueError, match="'cuda' cannot run feature_regularizer"):
        feature_regularizer(a, b, backend="cuda")
    # A single tensor is one layer.
    torch.testing.assert_close(
        feature_regularizer(a[0], b[0], backend="cpp"), feature_regularizer_ref(a, b), rtol=1e-6, atol=0
    )


def test_feature_regularizer_bad_input():
    x = torch.randn(2, 3)
    with pytest.raises(TypeError, match="feats_a"):
        feature_regularizer("x", [x])
    with pytest.raises(TypeError, match="feats_b"):
        feature_regularizer([x], 3)
    with pytest.raises(ValueError, match="feats_a must hold at least 1"):
        feature_regularizer([], [])
    with pytest.raises(TypeError, match=r"feats_a\[1\] must be a torch.Tensor"):
        feature_regularizer([x, [1.0]], [x, x])
    with pytest.raises(TypeError, match=r"feats_b\[0\] must be a floating-point"):
        feature_regularizer([x], [torch.ones(2, 3, dtype=torch.int64)])
    with pytest.raises(ValueError, match="same number of layers"):
        feature_regularizer([x, x], [x])
    with pytest.raises(ValueError, match=r"feats_a\[1\] and feats_b\[1\] must have the same shape"):
        feature_regularizer([x, x], [x, torch.randn(3, 2)])
    with pytest.raises(TypeError, match=r"feats_a\[0\] and feats_b\[0\] must have the same dtype"):
        feature_regularizer([x], [x.double()])
    with pytest.raises(TypeError, match=r"feats_a\[0\] and feats_a\[1\] must have the same dtype"):
        feature_regularizer([x, x.double()], [x, x.double()])
    with pytest.raises(ValueError, match=r"feats_a\[0\] and feats_b\[0\] must be on the same device"):
        feature_regularizer([x], [torch.empty(2, 3, device="meta")])
    meta = torch.empty(2, 3, device="meta")
    with pytest.raises(ValueError, match=r"feats_a\[0\] and feats_a\[1\] must be on the same device"):
        feature_regularizer([x, meta], [x, meta])
    for p in (3, 0, True, 1.5, "2"):
        with pytest.raises(ValueError, match="p must be 1 or 2"):
            feature_regularizer([x], [x], p)
    with pytest.raises(ValueError, match="reduction"):
        feature_regularizer([x], [x], 2, "max")
    with pytest.raises(TypeError, match="weights must be a sequence"):
        feature_regularizer([x], [x], 2, "mean", 1.0)
    with pytest.raises(TypeError, match="weights must be a sequence"):
        feature_regularizer([x], [x], 2, "mean", "1")
    with pytest.raises(TypeError, match="weights must be a sequence"):
        feature_regularizer([x], [x], 2, "mean", ["a"])
    with pytest.raises(ValueError, match=r"weights must have one entry per layer \(2\)"):
        feature_regularizer([x, x], [x, x], 2, "mean", [1.0])
    with pytest.raises(TypeError, match="detach_b"):
        feature_regularizer([x], [x], 2, "mean", None, "yes")
    # A weights tensor and an integral p are accepted.
    out = feature_regularizer([x], [x + 1], 2.0, "sum", torch.tensor([0.5]), backend="cpp")
    torch.testing.assert_close(out, torch.tensor(3.0))


def test_kernel_checks_direct_calls():
    """The C++ kernel's own checks for direct torch.ops calls (bypassing the Python validation)."""
    x = torch.randn(2, 3)
    op = torch.ops.pygan.feature_regularizer
    with pytest.raises(RuntimeError, match="reduction must be"):
        op([x], [x], 2, "max", [1.0])
    with pytest.raises(RuntimeError, match="p must be 1 or 2"):
        op([x], [x], 3, "mean", [1.0])
    with pytest.raises(RuntimeError, match="weights must have one entry per layer"):
        op([x], [x], 2, "mean", [1.0, 2.0])
    with pytest.raises(RuntimeError, match="same shape"):
        op([x], [x.t()], 2, "mean", [1.0])
    with pytest.raises(RuntimeError, match="grad must be 0-dim"):
        torch.ops.pygan.feature_regularizer_backward(torch.ones(1), [x], [x], 2, "mean", [1.0], True, True)
