"""gradient_penalty's fused pieces (interpolate, grad_norm_penalty): the C++ kernels against the
references with their own rules (alpha ranks and ranges, zero rows, rank 1-5, row tails, layouts of
the gradients), gradient_penalty end to end through small critics (penalty and critic-parameter
gradients), gradcheck/gradgradcheck, argument errors. opcheck, torch.compile and every other
backend's equivalence: the generic tests of tests/ops/test_ops.py (pygan.ops._cases)."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pygan.ops import (
    grad_norm_penalty,
    grad_norm_penalty_ref,
    gradient_penalty,
    gradient_penalty_ref,
    interpolate,
    interpolate_ref,
)
from pygan.ops._layout import empty_like_layout, same_dense_layout
from tests.ops.helpers import BATCH, DTYPES, LAYOUTS, apply_layout, assert_close, examples

GP_LAYOUTS = (*LAYOUTS, "channels_last_3d")
DIMS = (1, 2, 3, 5, 7, 11)


def _layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "channels_last_3d":
        return t.contiguous(memory_format=torch.channels_last_3d) if t.dim() == 5 else t
    return apply_layout(t, layout)


def _randn(shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64) * scale


def shapes(max_numel=4000):
    """Ranks 1-5, batch 0/1/odd/prime, odd per-sample dims."""
    return (
        st.integers(1, 5)
        .flatmap(lambda r: st.tuples(st.sampled_from((*BATCH, 11, 13)), *[st.sampled_from(DIMS)] * (r - 1)))
        .filter(lambda s: math.prod(s) <= max_numel)
    )


def _low(dtype):
    return None if dtype == torch.float64 else dtype


# ---- interpolate ------------------------------------------------------------------------------


def _interp_run(fn, real, fake, alpha, grad_out, req):
    real = real.detach().requires_grad_(req[0])
    fake = fake.detach().requires_grad_(req[1])
    alpha = alpha.detach().requires_grad_(req[2])
    out = fn(real, fake, alpha)
    inputs = [t for t, r in zip((real, fake, alpha), req) if r]
    grads = torch.autograd.grad(out, inputs, grad_out) if inputs else ()
    return out, grads


def _interp_compare(real, fake, alpha, grad_out, req, dtype):
    cpp = lambda *a: interpolate(*a, backend="cpp")  # noqa: E731
    out, grads = _interp_run(cpp, real, fake, alpha, grad_out, req)
    up = [t.double() for t in (real, fake, alpha, grad_out)]
    ref, ref_grads = _interp_run(interpolate_ref, *up[:3], up[3], req)
    low, low_grads = _interp_run(interpolate_ref, real, fake, alpha, grad_out, req)
    assert_close("out", out, ref, _low(dtype) and low, dtype)
    keep = same_dense_layout(real, fake)
    assert out.stride() == empty_like_layout(real, keep).stride()
    for name, g, r, lg in zip(("real", "fake", "alpha"), grads, ref_grads, low_grads):
        assert g.shape == r.shape
        assert_close(f"grad_{name}", g, r, _low(dtype) and lg, dtype)


@pytest.mark.cpu_kernel
@settings(max_examples=examples(1500))
@given(
    shape=shapes(),
    dtype=st.sampled_from(DTYPES),
    layouts=st.tuples(*[st.sampled_from(GP_LAYOUTS)] * 3),
    req=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    alpha_rank=st.sampled_from(["flat", "broadcast"]),
    alpha_range=st.sampled_from([(0.0, 1.0), (-0.5, 1.5)]),
    seed=st.integers(0, 2**31 - 1),
)
def test_interpolate_matches_reference(shape, dtype, layouts, req, alpha_rank, alpha_range, seed):
    real = _layout(_randn(shape, seed).to(dtype), layouts[0])
    fake = _layout(_randn(shape, seed + 1, 2.0).to(dtype), layouts[1])
    grad_out = _layout(_randn(shape, seed + 2).to(dtype), layouts[2])
    lo, hi = alpha_range
    g = torch.Generator().manual_seed(seed + 3)
    alpha = (lo + (hi - lo) * torch.rand(shape[0], generator=g, dtype=torch.float64)).to(dtype)
    if alpha_rank == "broadcast":
        alpha = alpha.reshape((-1,) + (1,) * (len(shape) - 1))
    _interp_compare(real, fake, alpha, grad_out, req, dtype)


@pytest.mark.cpu_kernel
@settings(max_examples=examples(500))
@given(
    b=st.sampled_from((1, 2, 3, 7)),
    d=st.integers(0, 6000),
    dtype=st.sampled_from(DTYPES),
    stride0_grad=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_interpolate_matches_reference_row_tails(b, d, dtype, stride0_grad, seed):
    """Row lengths around every SIMD width, the parallel grain and beyond; stride-0 incoming grads
    (from a .sum())."""
    shape = (b, d)
    real, fake = _randn(shape, seed).to(dtype), _randn(shape, seed + 1).to(dtype)
    grad_out = torch.full((), 0.75, dtype=dtype).expand(shape) if stride0_grad else _randn(shape, seed + 2)
    alpha = torch.rand(b, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)
    _interp_compare(real, fake, alpha, grad_out.to(dtype), (True, True, True), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_interpolate_large_parallel(dtype):
    """One huge row (B = 1) and many rows, well above the parallel grain, odd lengths."""
    for shape in [(1, 3, 127, 131), (64, 3, 13, 17), (40_009,)]:
        real, fake, grad_out = (_randn(shape, s).to(dtype) for s in (1, 2, 3))
        alpha = torch.rand(shape[0], generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        _interp_compare(real, fake, alpha.to(dtype), grad_out, (True, True, True), dtype)


def test_interpolate_endpoints_exact():
    """alpha = 0 gives real and alpha = 1 gives fake, exactly (per sample)."""
    real, fake = torch.randn(4, 3, 9, 9), torch.randn(4, 3, 9, 9)
    out = interpolate(real, fake, torch.tensor([0.0, 1.0, 0.0, 1.0]), backend="cpp")
    assert torch.equal(out[0], real[0]) and torch.equal(out[2], real[2])
    assert torch.equal(out[1], fake[1]) and torch.equal(out[3], fake[3])


def test_interpolate_backward_writes_only_needed():
    g, a = torch.randn(3, 4, 5), torch.rand(3)
    gr, gf = torch.ops.pygan.interpolate_backward(g, a, True, False)
    assert gf.shape == (0,)
    torch.testing.assert_close(gr, (1 - a[:, None, None]) * g)
    gr, gf = torch.ops.pygan.interpolate_backward(g, a, False, True)
    assert gr.shape == (0,)
    torch.testing.assert_close(gf, a[:, None, None] * g)
    cl = torch.randn(3, 4, 5, 6).contiguous(memory_format=torch.channels_last)
    gr, gf = torch.ops.pygan.interpolate_backward(cl, a, True, True)
    assert gr.stride() == cl.stride() and gf.stride() == cl.stride()


# ---- grad_norm_penalty ------------------------------------------------------------------------


def _norm_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _gnp_run(fn, grads, target, weight, one_sided, gp, gn):
    """penalty, norms and d(gp * penalty + <gn, norms>)/d grads (gn None: the penalty alone)."""
    grads = grads.detach().requires_grad_()
    p, n = fn(grads, target, weight, one_sided, return_norms=True)
    outs, gouts = [p], [gp]
    if gn is not None:
        outs.append(n)
        gouts.append(gn)
    (g,) = torch.autograd.grad(outs, [grads], gouts)
    return p, n, g


def _gnp_compare(grads, target, weight, one_sided, gp, gn_values, gn_layout, dtype):
    """gp: python float; gn_values: float64 [B] values representable in ``dtype`` (or None)."""

    def gn_for(dt):
        return None if gn_values is None else _layout(gn_values.to(dt), gn_layout)

    cpp = lambda *a, **k: grad_norm_penalty(*a, **k, backend="cpp")  # noqa: E731
    nd = _norm_dtype(dtype)
    p, n, g = _gnp_run(cpp, grads, target, weight, one_sided, torch.tensor(gp, dtype=dtype), gn_for(nd))
    args = (target, weight, one_sided)
    rp, rn, rg = _gnp_run(
        grad_norm_penalty_ref,
        grads.double(),
        *args,
        torch.tensor(gp, dtype=torch.float64),
        gn_for(torch.float64),
    )
    lp, ln, lg = _gnp_run(grad_norm_penalty_ref, grads, *args, torch.tensor(gp, dtype=dtype), gn_for(dtype))
    assert p.shape == () and n.shape == (grads.shape[0],)
    assert_close("penalty", p, rp, _low(dtype) and lp, dtype)
    assert_close("norms", n, rn, _low(dtype) and ln, nd)
    assert_close("grad", g, rg, _low(dtype) and lg, dtype)
    assert g.stride() == empty_like_layout(grads, same_dense_layout(grads)).stride()


SCALES = {
    torch.float64: (1e-150, 1e-12, 0.05, 1.0, 30.0),
    torch.float32: (1e-15, 1e-3, 0.05, 1.0, 30.0),
    torch.bfloat16: (1e-15, 1e-3, 0.05, 1.0, 30.0),
    torch.float16: (1e-2, 0.05, 0.3, 1.0),
}


@pytest.mark.cpu_kernel
@settings(max_examples=examples(1500))
@given(
    shape=shapes(),
    dtype=st.sampled_from(DTYPES),
    layout=st.sampled_from(GP_LAYOUTS),
    scale_index=st.integers(0, 4),
    zero_rows=st.sets(st.integers(0, 12), max_size=3),
    target=st.sampled_from([1.0, 0.0, 0.5]),
    weight=st.sampled_from([10.0, 1.0, 0.1]),
    one_sided=st.booleans(),
    gp=st.sampled_from([1.0, 0.5, -2.0]),
    norms_grad=st.sampled_from([None, "contiguous", "expanded", "strided"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_grad_norm_penalty_matches_reference(
    shape, dtype, layout, scale_index, zero_rows, target, weight, one_sided, gp, norms_grad, seed
):
    scales = SCALES[dtype]
    base = _randn(shape, seed, scales[scale_index % len(scales)])
    for r in zero_rows:
        if r < shape[0]:
            base[r] = 0
    grads = _layout(base.to(dtype), layout)
    gn = None if norms_grad is None else _randn(shape[:1], seed + 1).to(dtype).double()
    _gnp_compare(grads, target, weight, one_sided, gp, gn, norms_grad or "contiguous", dtype)


@pytest.mark.cpu_kernel
@settings(max_examples=examples(500))
@given(
    b=st.sampled_from((0, 1, 2, 3, 5)),
    d=st.integers(0, 13000),
    dtype=st.sampled_from(DTYPES),
    one_sided=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_grad_norm_penalty_matches_reference_row_tails(b, d, dtype, one_sided, seed):
    """Row lengths around every SIMD width, the 4096-element norm blocks and the parallel grain."""
    grads = _randn((b, d), seed, 1 / math.sqrt(max(d, 1))).to(dtype)
    _gnp_compare(grads, 1.0, 10.0, one_sided, 1.0, None, "contiguous", dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_norm_penalty_large_parallel(dtype):
    """One huge row (B = 1, many norm blocks), many rows, a long rank-1 batch."""
    for shape in [(1, 3, 127, 131), (64, 3, 13, 17), (40_009,)]:
        grads = _randn(shape, 5, 1 / math.sqrt(math.prod(shape[1:]))).to(dtype)
        gn = _randn(shape[:1], 6).to(dtype).double()
        _gnp_compare(grads, 1.0, 10.0, False, 1.0, gn, "contiguous", dtype)


def test_grad_norm_penalty_independent_of_threads():
    """Fixed norm blocks, not the thread chunks, define the sums: bitwise equal on 1 and 2 threads."""
    g = torch.randn(3, 5, 301, 299)
    before = torch.get_num_threads()
    try:
        res = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            p, n = grad_norm_penalty(g, 1.0, 10.0, return_norms=True, backend="cpp")
            res.append((p, n))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(res[0][0], res[1][0]) and torch.equal(res[0][1], res[1][1])


def test_grad_norm_penalty_float32_accuracy_long_row():
    """A 6M-element row: float32 lanes within blocks, float64 across, stays near float64."""
    g = torch.randn(2, 6_000_000)
    _, n = grad_norm_penalty(g, return_norms=True, backend="cpp")
    want = g.double().norm(dim=1)
    assert ((n.double() - want).abs() / want).max() < 1e-6


def test_grad_norm_penalty_special_cases():
    # B = 0: NaN penalty (torch's mean of nothing), empty norms.
    p, n = grad_norm_penalty(torch.empty(0, 3, 4), return_norms=True, backend="cpp")
    assert torch.isnan(p) and n.shape == (0,) and n.dtype == torch.float32
    # Rank 1: each row is one element, norm = |g|, also for denormals.
    g = torch.tensor([3.0, -4.0, 0.0, 1e-40, -1e-45], requires_grad=True)
    p, n = grad_norm_penalty(g, 1.0, 10.0, return_norms=True, backend="cpp")
    assert torch.equal(n, g.detach().abs())
    (d,) = torch.autograd.grad(p, g)
    (rd,) = torch.autograd.grad(grad_norm_penalty_ref(g, 1.0, 10.0), g)
    torch.testing.assert_close(d, rd)
    assert torch.isfinite(d).all() and d[2] == 0 and d[3] == -4.0 and d[4] == 4.0
    # A zero row gets a zero gradient (no NaN), the other rows are unaffected.
    g = torch.randn(3, 5, 7, dtype=torch.float64)
    g[1] = 0
    g.requires_grad_()
    (d,) = torch.autograd.grad(grad_norm_penalty(g, backend="cpp"), g)
    (rd,) = torch.autograd.grad(grad_norm_penalty_ref(g), g)
    assert torch.equal(d[1], torch.zeros_like(d[1]))
    torch.testing.assert_close(d, rd, rtol=1e-13, atol=1e-14)
    # Zero-size rows: every norm is 0.
    p, n = grad_norm_penalty(torch.empty(4, 0), 1.0, 2.0, return_norms=True, backend="cpp")
    assert torch.equal(n, torch.zeros(4)) and p.item() == 2.0
    # One-sided: norms below the target contribute nothing.
    g = torch.full((2, 4), 0.1)
    assert grad_norm_penalty(g, 1.0, 10.0, True, backend="cpp").item() == 0.0
    # return_norms off: a tensor, not a tuple; float64 norms for float64 grads.
    assert isinstance(grad_norm_penalty(g, backend="cpp"), torch.Tensor)
    assert grad_norm_penalty(g.double(), return_norms=True, backend="cpp")[1].dtype == torch.float64


# ---- gradient_penalty end to end --------------------------------------------------------------


class ConvCritic(torch.nn.Module):
    """conv + LayerNorm + linear, as a WGAN-GP critic (no BatchNorm)."""

    def __init__(self, c=3, hw=6, dtype=torch.float64):
        super().__init__()
        self.conv = torch.nn.Conv2d(c, 4, 3, padding=1, dtype=dtype)
        self.norm = torch.nn.LayerNorm([4, hw, hw], dtype=dtype)
        self.fc = torch.nn.Linear(4 * hw * hw, 1, dtype=dtype)

    def forward(self, x):
        return self.fc(F.leaky_relu(self.norm(self.conv(x)), 0.2).flatten(1))


class MLPCritic(torch.nn.Module):
    def __init__(self, d=7, dtype=torch.float64):
        super().__init__()
        self.l1 = torch.nn.Linear(d, 16, dtype=dtype)
        self.ln = torch.nn.LayerNorm(16, dtype=dtype)
        self.l2 = torch.nn.Linear(16, 1, dtype=dtype)

    def forward(self, x):
        return self.l2(torch.tanh(self.ln(self.l1(x)))).squeeze(1)


def _penalty_and_grads(fn, critic, real, fake, kind, target, **kw):
    p, n = fn(critic, real, fake, 10.0, target, kind, return_norms=True, **kw)
    grads = torch.autograd.grad(p, list(critic.parameters()), allow_unused=True)
    return p, n, grads


@pytest.mark.cpu_kernel
@pytest.mark.parametrize("kind", ["wgan-gp", "one-sided", "r1"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("critic_kind", ["conv", "mlp"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_gradient_penalty_matches_reference(kind, dtype, critic_kind, layout):
    torch.manual_seed(0)
    if critic_kind == "conv":
        critic, shape = ConvCritic(dtype=dtype), (5, 3, 6, 6)
    else:
        critic, shape = MLPCritic(dtype=dtype), (7, 7)
    real = _layout(torch.randn(shape, dtype=dtype), layout)
    fake = _layout(torch.randn(shape, dtype=dtype), layout)
    gen = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    # A target between the norms, so that both branches of the one-sided hinge are exercised.
    _, norms = gradient_penalty_ref(critic, real, fake, kind=kind, generator=gen(), return_norms=True)
    target = round(norms.median().item(), 3) + 1e-4
    cpp = lambda *a, **k: gradient_penalty(*a, **k, backend="cpp")  # noqa: E731
    p, n, grads = _penalty_and_grads(cpp, critic, real, fake, kind, target, generator=gen())
    rp, rn, rgrads = _penalty_and_grads(
        gradient_penalty_ref, critic, real, fake, kind, target, generator=gen()
    )
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(p, rp, **tol)
    torch.testing.assert_close(n, rn.to(n.dtype), **tol)
    assert p.item() > 0
    for g, r in zip(grads, rgrads):
        assert (g is None) == (r is None)  # the last layer's bias does not depend on the input
        if g is not None:
            torch.testing.assert_close(g, r, **tol)
    assert sum(g.abs().sum() for g in grads if g is not None) > 0
    if kind == "one-sided":
        assert (n > target).any() and (n < target).any()


def test_gradient_penalty_alpha_and_generator():
    torch.manual_seed(1)
    critic = MLPCritic()
    real, fake = torch.randn(6, 7, dtype=torch.float64), torch.randn(6, 7, dtype=torch.float64)
    alpha = torch.rand(6, dtype=torch.float64)
    a = gradient_penalty(critic, real, fake, alpha=alpha, backend="cpp")
    b = gradient_penalty_ref(critic, real, fake, alpha=alpha.reshape(6, 1))
    torch.testing.assert_close(a, b, rtol=1e-13, atol=0)
    g1 = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(3), backend="cpp")
    g2 = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(3), backend="cpp")
    assert torch.equal(g1, g2)
    # real and fake are detached: no gradient reaches them through the penalty.
    real.requires_grad_()
    p = gradient_penalty(critic, real, fake, backend="cpp")
    assert real.grad is None
    p.backward()
    assert real.grad is None and critic.l1.weight.grad is not None


def test_gradient_penalty_critic_grads_on_float32_batch():
    """The bench-like flow: float32, a conv critic, default alpha; matches the reference closely."""
    torch.manual_seed(2)
    critic = ConvCritic(hw=8, dtype=torch.float32)
    real, fake = torch.randn(16, 3, 8, 8), torch.randn(16, 3, 8, 8)
    out = {}
    for name, fn in (
        ("cpp", lambda *a, **k: gradient_penalty(*a, **k, backend="cpp")),
        ("ref", gradient_penalty_ref),
    ):
        critic.zero_grad()
        p = fn(critic, real, fake, generator=torch.Generator().manual_seed(0))
        p.backward()
        out[name] = (p.detach(), [q.grad.clone() for q in critic.parameters() if q.grad is not None])
    torch.testing.assert_close(out["cpp"][0], out["ref"][0], rtol=1e-5, atol=1e-5)
    for g, r in zip(out["cpp"][1], out["ref"][1]):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


# ---- gradcheck / gradgradcheck ----------------------------------------------------------------


def _f64(*shape, seed=0, requires_grad=True):
    return _randn(shape, seed).requires_grad_(requires_grad)


@pytest.mark.parametrize("shape", [(3, 4, 5), (4,), (2, 3, 2, 3, 2)])
def test_interpolate_gradcheck_and_gradgradcheck(shape):
    real, fake = _f64(*shape, seed=1), _f64(*shape, seed=2)
    alpha = torch.rand(shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    alpha.requires_grad_()
    f = lambda r, fk, a: interpolate(r, fk, a, backend="cpp")  # noqa: E731
    assert torch.autograd.gradcheck(f, (real, fake, alpha))
    assert torch.autograd.gradgradcheck(f, (real, fake, alpha))
    fr = lambda r: interpolate(r, fake.detach(), alpha.detach(), backend="cpp")  # noqa: E731
    assert torch.autograd.gradgradcheck(fr, (real,))


@pytest.mark.parametrize("need", [(True, True), (True, False), (False, True)])
def test_interpolate_backward_gradcheck_and_gradgradcheck(need):
    grad = _f64(3, 4, 5, seed=4)
    alpha = torch.rand(3, dtype=torch.float64).requires_grad_()

    def f(g, a):
        gr, gf = torch.ops.pygan.interpolate_backward(g, a, *need)
        return tuple(t for t, n in zip((gr, gf), need) if n)

    assert torch.autograd.gradcheck(f, (grad, alpha))
    assert torch.autograd.gradgradcheck(f, (grad, alpha))


@pytest.mark.parametrize("one_sided", [False, True])
@pytest.mark.parametrize("target", [1.0, 0.0])
@pytest.mark.parametrize("shape", [(3, 4, 5), (5,), (2, 1, 3, 2, 2)])
def test_grad_norm_penalty_gradcheck_and_gradgradcheck(one_sided, target, shape):
    # Scale so that the norms straddle the target and stay away from it (the hinge's kink).
    g = _randn(shape, 8)
    n = g.flatten(1).norm(dim=1) if g.dim() > 1 else g.abs()
    g = g * (torch.linspace(0.3, 2.5, shape[0], dtype=torch.float64) / n).reshape(
        (-1,) + (1,) * (g.dim() - 1)
    )
    g.requires_grad_()
    f = lambda x: grad_norm_penalty(x, target, 3.0, one_sided, return_norms=True, backend="cpp")  # noqa: E731
    assert torch.autograd.gradcheck(f, (g,))
    assert torch.autograd.gradgradcheck(f, (g,))


@pytest.mark.parametrize("one_sided", [False, True])
def test_grad_norm_penalty_backward_gradcheck_and_gradgradcheck(one_sided):
    """The backward op as a function of all four tensor inputs (norms independent of grads), and
    its own backward differentiated again."""
    grads = _f64(4, 3, 5, seed=9)
    norms = torch.tensor([0.4, 1.7, 2.2, 0.9], dtype=torch.float64, requires_grad=True)
    gp = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    gn = _f64(4, seed=10)

    def f(gp, gn, grads, norms):
        return torch.ops.pygan.grad_norm_penalty_backward(gp, gn, grads, norms, 1.0, 2.5, one_sided)

    assert torch.autograd.gradcheck(f, (gp, gn, grads, norms))
    assert torch.autograd.gradgradcheck(f, (gp, gn, grads, norms))


def test_grad_norm_penalty_backward_zero_norm_rows_have_zero_derivatives():
    grads = _f64(3, 4, seed=11)
    with torch.no_grad():
        grads[1] = 0
    norms = torch.tensor([1.5, 0.0, 0.5], dtype=torch.float64, requires_grad=True)
    gp = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    gn = _f64(3, seed=12)
    out = torch.ops.pygan.grad_norm_penalty_backward(gp, gn, grads, norms, 1.0, 10.0, False)
    assert torch.equal(out[1], torch.zeros(4, dtype=torch.float64))
    d = torch.autograd.grad(out, (gp, gn, grads, norms), torch.ones_like(out))
    assert all(torch.isfinite(t).all() for t in d)
    assert d[1][1] == 0 and d[3][1] == 0 and torch.equal(d[2][1], torch.zeros(4, dtype=torch.float64))


def test_penalty_of_the_penalty_gradient():
    """Differentiating the penalty's gradient again (third order through a critic) equals the reference."""
    torch.manual_seed(3)
    critic = MLPCritic(d=5)
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    res = {}
    for name, fn in (("cpp", lambda g: grad_norm_penalty(g, backend="cpp")), ("ref", grad_norm_penalty_ref)):
        (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        p = fn(g)
        (gx,) = torch.autograd.grad(p, x, create_graph=True)
        res[name] = torch.autograd.grad(gx.square().sum(), critic.l1.weight)[0]
    torch.testing.assert_close(res["cpp"], res["ref"], rtol=1e-11, atol=1e-12)


# ---- bad input --------------------------------------------------------------------------------


def test_bad_input():
    critic = MLPCritic(d=3, dtype=torch.float32)
    real, fake = torch.randn(4, 3), torch.randn(4, 3)
    with pytest.raises(ValueError, match="kind"):
        gradient_penalty(critic, real, fake, kind="wgan")
    with pytest.raises(ValueError, match="fake is required"):
        gradient_penalty(critic, real, None, kind="wgan-gp")
    with pytest.raises(ValueError, match="alpha"):
        gradient_penalty(critic, real, fake, alpha=torch.rand(3))
    with pytest.raises(ValueError, match="alpha"):
        interpolate(real, fake, torch.rand(4, 3))
    with pytest.raises(TypeError, match="alpha"):
        interpolate(real, fake, torch.rand(4, dtype=torch.float64))
    with pytest.raises(TypeError, match="critic must be callable"):
        gradient_penalty("critic", real, fake)
    with pytest.raises(ValueError, match="one score per sample"):
        gradient_penalty(lambda x: x.sum(), real, fake)
    with pytest.raises(ValueError, match="one score per sample"):
        gradient_penalty(lambda x: x[:2].sum(1), real, fake)
    with pytest.raises(TypeError, match="critic must return a tensor"):
        gradient_penalty(lambda x: 1.0, real, fake)
    with pytest.raises(TypeError, match="weight"):
        gradient_penalty(critic, real, fake, weight="10")
    with pytest.raises(TypeError, match="target"):
        gradient_penalty(critic, real, fake, target=True)
    with pytest.raises(TypeError, match="weight"):
        grad_norm_penalty(real, 1.0, None)
    with pytest.raises(TypeError, match="one_sided"):
        grad_norm_penalty(real, 1.0, 10.0, 1)
    with pytest.raises(TypeError, match="grads"):
        grad_norm_penalty(torch.ones(4, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="grads"):
        grad_norm_penalty(torch.tensor(1.0))
    with pytest.raises(TypeError, match="real"):
        interpolate(torch.ones(4, 3, dtype=torch.int32), fake, torch.rand(4))
    with pytest.raises(TypeError, match="real"):
        gradient_penalty(critic, torch.ones(4, 3, dtype=torch.int64), fake)
    with pytest.raises(ValueError, match="same shape"):
        interpolate(real, torch.randn(4, 2), torch.rand(4))
    with pytest.raises(TypeError, match="same dtype"):
        interpolate(real, fake.double(), torch.rand(4))
    with pytest.raises(ValueError, match="backend"):
        grad_norm_penalty(real, backend="fast")
    # Direct op calls check too (no crash, a clear message).
    with pytest.raises(RuntimeError, match="alpha must have shape"):
        torch.ops.pygan.interpolate(real, fake, torch.rand(3))
    with pytest.raises(RuntimeError, match="norms and grad_norms"):
        torch.ops.pygan.grad_norm_penalty_backward(
            torch.tensor(1.0), torch.zeros(3), real, torch.ones(3), 1.0, 1.0, False
        )
