"""gram_matrix / style_loss: the C++ kernel (pygan::gram_diff and its backward op) against the bmm
references with its own rules (exact symmetry, panel schedules, large channel counts, gradient
layouts), double backward, argument errors and the target_is_gram auto-detection rule. opcheck,
torch.compile and every other backend's equivalence: the generic tests of tests/ops/test_ops.py
(pygan.ops._cases)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pygan.ops import gram_matrix, gram_matrix_ref, style_loss, style_loss_ref
from tests.ops.helpers import BATCH, DTYPES, LAYOUTS, assert_close, examples, make

NORMS = ("chw", "hw")
REDS = ("mean", "sum")
CHANNELS = (1, 2, 3, 5, 7, 11, 13)
HW = (1, 2, 3, 5, 7, 11)
NS = (0, 1, 2, 3, 5, 13, 17, 31)  # 3-D inputs [B, C, N]; N = 0 is an empty feature map
GRAD_LAYOUTS = ("contiguous", "permuted", "strided", "expanded", "scalar")


def feature_shapes(batch=BATCH, channels=CHANNELS):
    b, c = st.sampled_from(batch), st.sampled_from(channels)
    four = st.tuples(b, c, st.sampled_from(HW), st.sampled_from(HW))
    three = st.tuples(b, c, st.sampled_from(NS))
    return st.one_of(four, three)


def _cpp_gram(f, normalize):
    return gram_matrix(f, normalize, backend="cpp")


def _cpp_loss(fx, target, normalize, reduction, target_is_gram=None):
    return style_loss(fx, target, normalize, reduction, target_is_gram=target_is_gram, backend="cpp")


def _grad_out(shape, dtype, seed, layout):
    """An incoming gradient of ``shape``; ``scalar`` is one value broadcast (all strides 0, as
    ``.sum()`` hands back)."""
    if layout == "scalar":
        return make((), dtype, seed).expand(shape)
    return make(shape, dtype, seed, layout)


def _low(dtype, t):
    return None if dtype == torch.float64 else t


# ---- gram_matrix ------------------------------------------------------------------------------


def _gram_run(fn, f, normalize, grad_out):
    f = f.detach().requires_grad_(True)
    out = fn(f, normalize)
    (g,) = torch.autograd.grad(out, f, grad_out)
    return out, g


def _gram_compare(f, normalize, grad_out, dtype):
    out, g = _gram_run(_cpp_gram, f, normalize, grad_out)
    ref, rg = _gram_run(gram_matrix_ref, f.double(), normalize, grad_out.double())
    low, lg = _gram_run(gram_matrix_ref, f, normalize, grad_out)
    assert out.is_contiguous() and g.shape == f.shape
    assert_close("gram", out, ref, _low(dtype, low), dtype)
    assert_close("grad_f", g, rg, _low(dtype, lg), dtype)
    if out.numel():
        assert torch.equal(out, out.transpose(1, 2)), "the Gram must come out exactly symmetric"


@pytest.mark.cpu_kernel
@settings(max_examples=examples(600))
@given(
    shape=feature_shapes(),
    dtype=st.sampled_from(DTYPES),
    normalize=st.sampled_from(NORMS),
    layout=st.sampled_from(LAYOUTS),
    glayout=st.sampled_from(GRAD_LAYOUTS),
    scale=st.sampled_from([0.3, 1.0, 4.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_gram_matrix_matches_reference(shape, dtype, normalize, layout, glayout, scale, seed):
    f = make(shape, dtype, seed, layout, scale)
    grad_out = _grad_out((shape[0], shape[1], shape[1]), dtype, seed + 1, glayout)
    _gram_compare(f, normalize, grad_out, dtype)


# ---- style_loss -------------------------------------------------------------------------------


def _loss_run(fn, fx, target, normalize, reduction, is_gram, need_t, gscale):
    fx = fx.detach().requires_grad_(True)
    target = target.detach().requires_grad_(need_t)
    out = fn(fx, target, normalize, reduction, target_is_gram=is_gram)
    inputs = [fx, target] if need_t else [fx]
    grads = torch.autograd.grad(out, inputs, torch.full((), gscale, dtype=out.dtype))
    return out, grads


def _loss_compare(fx, target, normalize, reduction, is_gram, need_t, gscale, dtype):
    args = (normalize, reduction, is_gram, need_t, gscale)
    out, grads = _loss_run(_cpp_loss, fx, target, *args)
    ref, rgrads = _loss_run(style_loss_ref, fx.double(), target.double(), *args)
    low, lgrads = _loss_run(style_loss_ref, fx, target, *args)
    assert_close("loss", out, ref, _low(dtype, low), dtype)
    for name, g, r, lg in zip(("grad_fx", "grad_target"), grads, rgrads, lgrads):
        assert_close(name, g, r, _low(dtype, lg), dtype)


@pytest.mark.cpu_kernel
@settings(max_examples=examples(700))
@given(
    shape=feature_shapes(),
    dtype=st.sampled_from(DTYPES),
    normalize=st.sampled_from(NORMS),
    reduction=st.sampled_from(REDS),
    need_y=st.booleans(),
    layouts=st.tuples(st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS)),
    scale=st.sampled_from([0.3, 1.0, 4.0]),
    gscale=st.sampled_from([1.0, -0.7, 3.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_style_loss_matches_reference_features(
    shape, dtype, normalize, reduction, need_y, layouts, scale, gscale, seed
):
    """Target = features of the same shape (SCoGAN's fake[i] vs real[i]); the target may need grad."""
    fx = make(shape, dtype, seed, layouts[0], scale)
    fy = make(shape, dtype, seed + 1, layouts[1], scale)
    _loss_compare(fx, fy, normalize, reduction, False, need_y, gscale, dtype)


@pytest.mark.cpu_kernel
@settings(max_examples=examples(500))
@given(
    shape=feature_shapes(),
    dtype=st.sampled_from(DTYPES),
    normalize=st.sampled_from(NORMS),
    reduction=st.sampled_from(REDS),
    batched=st.booleans(),
    need_t=st.booleans(),
    layouts=st.tuples(st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS)),
    gscale=st.sampled_from([1.0, -0.7, 3.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_style_loss_matches_reference_gram_target(
    shape, dtype, normalize, reduction, batched, need_t, layouts, gscale, seed
):
    """Target = a precomputed Gram, [C, C] (shared by the batch) or [B, C, C]; it may need grad."""
    b, c = shape[:2]
    fx = make(shape, dtype, seed, layouts[0])
    gram = make((b, c, c) if batched else (c, c), dtype, seed + 1, layouts[1], scale=0.2)
    _loss_compare(fx, gram, normalize, reduction, True, need_t, gscale, dtype)


# ---- the op itself at panel sizes (C > 32: the upper-triangle panels and their mirror) ---------


def _op_ref(fx, fy, normalize):
    """float64-or-dtype torch formula of gram_diff (two bmm Grams)."""
    d = gram_matrix_ref(fx, normalize)
    return d if fy is None else d - gram_matrix_ref(fy, normalize)


def _op_bwd_ref(grad, fx, fy, normalize):
    n = 1
    for s in fx.shape[2:]:
        n *= s
    n = max(n * fx.shape[1] if normalize == "chw" else n, 1)
    s = grad + grad.transpose(1, 2)
    gx = torch.bmm(s, fx.flatten(2)).reshape(fx.shape) / n
    gy = None if fy is None else -torch.bmm(s, fy.flatten(2)).reshape(fx.shape) / n
    return gx, gy


@pytest.mark.cpu_kernel
@settings(max_examples=examples(200))
@given(
    b=st.sampled_from((1, 2, 3)),
    c=st.sampled_from((64, 97, 128, 129, 160, 193)),
    k=st.sampled_from(((3,), (16,), (33,), (7, 7), (9, 9), (11, 11))),
    dtype=st.sampled_from(DTYPES),
    with_y=st.booleans(),
    need=st.sampled_from(((True, True), (True, False), (False, True))),
    normalize=st.sampled_from(NORMS),
    layout=st.sampled_from(LAYOUTS),
    threads=st.sampled_from((1, 2, 4)),
    seed=st.integers(0, 2**31 - 1),
)
def test_gram_diff_op_matches_reference_large_channels(
    b, c, k, dtype, with_y, need, normalize, layout, threads, seed
):
    """torch.ops.pygan.gram_diff and gram_diff_backward directly, with enough channels for several
    row panels (C >= 128: odd and even panel counts, a 1-row last panel) and partial mirror tiles,
    under one thread and several (4 threads: fewer items than threads, run in order). About half
    the cases are big enough (>= 2 MFLOP, C >= 128) for the panel/item path; the rest take the
    batched path (one batched GEMM per operand), which the tests above cover at every small size."""
    shape = (b, c, *k)
    fx = make(shape, dtype, seed, layout)
    fy = make(shape, dtype, seed + 1, layout) if with_y else None
    grad = make((b, c, c), dtype, seed + 2)
    need_x, need_y = need
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        d = torch.ops.pygan.gram_diff(fx, fy, normalize)
        gx, gy = torch.ops.pygan.gram_diff_backward(grad, fx, fy, normalize, need_x, need_y)
    finally:
        torch.set_num_threads(saved)
    fy64 = None if fy is None else fy.double()
    ref = _op_ref(fx.double(), fy64, normalize)
    rgx, rgy = _op_bwd_ref(grad.double(), fx.double(), fy64, normalize)
    lgx, lgy = _op_bwd_ref(grad, fx, fy, normalize)
    assert d.is_contiguous() and torch.equal(d, d.transpose(1, 2))
    assert_close("D", d, ref, _low(dtype, _op_ref(fx, fy, normalize)), dtype)
    if need_x:
        assert gx.is_contiguous()
        assert_close("grad_fx", gx, rgx, _low(dtype, lgx), dtype)
    else:
        assert gx.shape == (0,)
    if need_y and with_y:
        assert gy.is_contiguous()
        assert_close("grad_fy", gy, rgy, _low(dtype, lgy), dtype)
    else:
        assert gy.shape == (0,)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [2, 8])
def test_gram_diff_op_panel_schedules(dtype, threads):
    """The panel path at sizes the hypothesis test does not reach: a large K (several backward
    chunks), C >= 256 (64-row panels; C = 300: five panels, the middle one alone), one sample; with
    8 threads some have fewer items than threads and run in order (BLAS threads each GEMM)."""
    saved = torch.get_num_threads()
    for shape in ((1, 129, 64, 64), (2, 128, 1500), (1, 300, 7, 7), (2, 300, 9, 9), (3, 70, 40, 40)):
        fx, fy, grad = make(shape, dtype, 1), make(shape, dtype, 2), make(shape[:2] + shape[1:2], dtype, 3)
        torch.set_num_threads(threads)
        try:
            d = torch.ops.pygan.gram_diff(fx, fy, "hw")
            gx, gy = torch.ops.pygan.gram_diff_backward(grad, fx, fy, "hw", True, True)
        finally:
            torch.set_num_threads(saved)
        rgx, rgy = _op_bwd_ref(grad.double(), fx.double(), fy.double(), "hw")
        lgx, lgy = _op_bwd_ref(grad, fx, fy, "hw")
        ref = _op_ref(fx.double(), fy.double(), "hw")
        assert_close("D", d, ref, _low(dtype, _op_ref(fx, fy, "hw")), dtype)
        assert_close("grad_fx", gx, rgx, _low(dtype, lgx), dtype)
        assert_close("grad_fy", gy, rgy, _low(dtype, lgy), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_style_loss_model_sizes(dtype):
    """The bench's SCoGAN-like size (scaled down) and a channels_last VGG-like map."""
    for shape, layout in (((4, 256, 8, 8), "contiguous"), ((3, 64, 12, 10), "channels_last")):
        fx = make(shape, dtype, 1, layout)
        fy = make(shape, dtype, 2, layout)
        _loss_compare(fx, fy, "chw", "mean", False, True, 1.0, dtype)


def test_inference_mode_and_no_grad():
    """The threaded panel path under inference_mode / no_grad (worker threads create views of
    inference tensors) gives the reference's values."""
    fx, fy = torch.randn(3, 128, 9, 9), torch.randn(3, 128, 9, 9)
    want = style_loss_ref(fx, fy)
    with torch.inference_mode():
        got = style_loss(fx, fy, backend="cpp")
        g = gram_matrix(fx, backend="cpp")
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(g, gram_matrix_ref(fx))
    with torch.no_grad():
        torch.testing.assert_close(style_loss(fx, fy, backend="cpp"), want)


def test_empty_inputs():
    """B = 0, C = 0 and K = 0 (H or W = 0, N = 0): empty / all-zero Grams, no NaN from 0/0 norms."""
    for shape in ((0, 3, 4, 4), (2, 0, 3, 3), (2, 3, 0, 5), (2, 3, 0)):
        f = torch.randn(shape, requires_grad=True)
        g = gram_matrix(f, backend="cpp")
        assert g.shape == (shape[0], shape[1], shape[1])
        assert torch.equal(g, gram_matrix_ref(f)) and not g.isnan().any()
        (gf,) = torch.autograd.grad(g, f, torch.ones_like(g))
        assert gf.shape == f.shape
        loss = style_loss(f, torch.randn(shape), reduction="sum", backend="cpp")
        assert loss.item() == 0
        (gl,) = torch.autograd.grad(loss, f)
        assert gl.shape == f.shape


def test_non_finite_propagate_like_reference():
    f = torch.randn(2, 40, 5, 5)
    f[0, 3, 2, 2] = float("nan")
    f[1, 35, 0, 1] = float("inf")
    got = gram_matrix(f, backend="cpp")
    ref = gram_matrix_ref(f)
    assert torch.equal(got.isnan(), ref.isnan())
    torch.testing.assert_close(got, ref, equal_nan=True)


# ---- gradients: gradcheck / gradgradcheck / higher order --------------------------------------


@pytest.mark.parametrize("normalize", NORMS)
def test_gram_gradcheck_and_double_backward(normalize):
    g = torch.Generator().manual_seed(0)
    fx = torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    fy = torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    gram_b = torch.randn(2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    gram_s = torch.randn(5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    fns = [
        (lambda x: gram_matrix(x, normalize, backend="cpp"), (fx,)),
        (lambda x, y: _cpp_loss(x, y, normalize, "mean"), (fx, fy)),
        (lambda x, t: _cpp_loss(x, t, normalize, "sum"), (fx, gram_b)),
        (lambda x, t: _cpp_loss(x, t, normalize, "mean"), (fx, gram_s)),
        (lambda x: _cpp_loss(x, fy.detach(), normalize, "sum"), (fx,)),
        (lambda x, y: torch.ops.pygan.gram_diff(x, y, normalize), (fx, fy)),
    ]
    for f, inputs in fns:
        assert torch.autograd.gradcheck(f, inputs)
        assert torch.autograd.gradgradcheck(f, inputs)


def test_gram_diff_backward_op_gradcheck():
    """The backward op's own autograd (bilinear formulas), every need_x/need_y combination, and
    third order through it."""
    g = torch.Generator().manual_seed(1)
    grad = torch.randn(2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    fx = torch.randn(2, 4, 7, generator=g, dtype=torch.float64, requires_grad=True)
    fy = torch.randn(2, 4, 7, generator=g, dtype=torch.float64, requires_grad=True)
    for nx, ny in ((True, True), (True, False), (False, True)):

        def f(gr, x, y, nx=nx, ny=ny):
            a, b = torch.ops.pygan.gram_diff_backward(gr, x, y, "hw", nx, ny)
            return a.sum() * 0.3 + (a * a).sum() if nx else (b * b).sum() + b.sum()

        assert torch.autograd.gradcheck(f, (grad, fx, fy))
        assert torch.autograd.gradgradcheck(f, (grad, fx, fy))
    f_none = lambda gr, x: torch.ops.pygan.gram_diff_backward(gr, x, None, "chw", True, True)[0]  # noqa: E731
    assert torch.autograd.gradcheck(f_none, (grad, fx))
    assert torch.autograd.gradgradcheck(f_none, (grad, fx))


def test_style_loss_inside_gradient_penalty():
    """A style loss on features of x, differentiated w.r.t. x with create_graph, then a penalty on
    that gradient differentiated w.r.t. the conv weights: equal to the reference's."""
    torch.manual_seed(0)
    w = torch.randn(6, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, 3, 7, 7, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 3, 7, 7, dtype=torch.float64)
    grads = {}
    for name, fn in (("cpp", _cpp_loss), ("ref", style_loss_ref)):
        feats = lambda t: torch.tanh(torch.nn.functional.conv2d(t, w, padding=1))  # noqa: E731
        loss = fn(feats(x), feats(y), "chw", "mean")
        (gx,) = torch.autograd.grad(loss, x, create_graph=True)
        penalty = (gx.flatten(1).norm(dim=1) - 1).square().mean()
        grads[name] = torch.autograd.grad(penalty, w)[0]
    torch.testing.assert_close(grads["cpp"], grads["ref"], rtol=1e-10, atol=1e-12)
    assert grads["cpp"].abs().sum() > 0


# ---- arguments ----------------------------------------------------------------------------------


def test_style_loss_bad_input():
    fx = torch.randn(2, 3, 4, 4)
    with pytest.raises(TypeError, match="fx"):
        style_loss([1.0], fx)
    with pytest.raises(TypeError, match="f must be a floating-point"):
        gram_matrix(torch.ones(2, 3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="fx must be a 3 or 4-D"):
        style_loss(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match="fx must be a 3 or 4-D"):
        style_loss(torch.randn(1, 2, 3, 4, 5), torch.randn(1, 2, 3, 4, 5))
    with pytest.raises(ValueError, match="f must be a 3 or 4-D"):
        gram_matrix(torch.randn(3, 4))
    with pytest.raises(ValueError, match="same shape"):
        style_loss(fx, torch.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match="same shape"):
        style_loss(fx, torch.randn(3, 3, 4, 4))
    with pytest.raises(TypeError, match="same dtype"):
        style_loss(fx, fx.double())
    with pytest.raises(TypeError, match="same dtype"):
        style_loss(fx, torch.randn(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="same device"):
        style_loss(fx, torch.empty(2, 3, 4, 4, device="meta"))
    with pytest.raises(ValueError, match=r"target \(a Gram\) must have shape"):
        style_loss(fx, torch.randn(3, 4), target_is_gram=True)
    with pytest.raises(ValueError, match=r"target \(a Gram\) must have shape"):
        style_loss(fx, torch.randn(2, 3, 4, 4), target_is_gram=True)
    with pytest.raises(ValueError, match=r"target \(a Gram\) must have batch 2"):
        style_loss(fx, torch.randn(5, 3, 3))
    with pytest.raises(ValueError, match="target must be a 3 or 4-D"):
        style_loss(fx, torch.randn(3, 3), target_is_gram=False)
    with pytest.raises(ValueError, match="target"):
        style_loss(fx, torch.randn(4, 4))  # neither a [C, C] Gram nor features
    with pytest.raises(TypeError, match="target_is_gram"):
        style_loss(fx, torch.randn(3, 3), target_is_gram="yes")
    with pytest.raises(TypeError, match="target_is_gram"):
        style_loss(fx, torch.randn(3, 3), target_is_gram=1)
    with pytest.raises(ValueError, match="normalize"):
        style_loss(fx, fx, "chwn")
    with pytest.raises(ValueError, match="normalize"):
        gram_matrix(fx, "HW")
    with pytest.raises(ValueError, match="reduction"):
        style_loss(fx, fx, "chw", "none")
    with pytest.raises(ValueError, match="backend"):
        style_loss(fx, fx, backend="cuda")


def test_op_level_errors():
    """Direct torch.ops calls (no Python validation in front) still fail cleanly."""
    fx = torch.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="normalize must be 'chw' or 'hw'"):
        torch.ops.pygan.gram_diff(fx, None, "x")
    with pytest.raises(RuntimeError, match="fx must be"):
        torch.ops.pygan.gram_diff(torch.randn(2, 3), None, "chw")
    with pytest.raises(RuntimeError, match="same shape"):
        torch.ops.pygan.gram_diff(fx, torch.randn(2, 3, 5), "chw")
    with pytest.raises(RuntimeError, match="grad must be"):
        torch.ops.pygan.gram_diff_backward(torch.randn(2, 3, 4), fx, None, "chw", True, False)
    with pytest.raises(RuntimeError, match="dtype"):
        torch.ops.pygan.gram_diff_backward(torch.randn(2, 3, 3).double(), fx, None, "chw", True, False)


def test_target_is_gram_auto_detection():
    """None: a target is a Gram when its shape differs from fx's, it is 2-D or 3-D and ends in
    [C, C]; a 3-D target with fx's own shape is features (pass target_is_gram=True to say
    otherwise, which only matters for 3-D fx with N == C)."""
    g = torch.Generator().manual_seed(3)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731

    def gram_loss(fx, t):
        return (gram_matrix_ref(fx) - t).square().mean()

    def feat_loss(fx, t):
        return (gram_matrix_ref(fx) - gram_matrix_ref(t)).square().mean()

    fx4 = r(2, 3, 4, 4)
    fx3 = r(2, 3, 3)  # N == C: a features target and a batched Gram have the same shape
    cases = [
        (fx4, r(3, 3), None, gram_loss),
        (fx4, r(2, 3, 3), None, gram_loss),
        (fx4, r(2, 3, 4, 4), None, feat_loss),
        (r(2, 3, 5), r(2, 3, 3), None, gram_loss),
        (r(2, 3, 5), r(2, 3, 5), None, feat_loss),
        (fx3, r(2, 3, 3), None, feat_loss),
        (fx3, r(2, 3, 3), False, feat_loss),
        (fx3, r(2, 3, 3), True, gram_loss),
        (fx3, r(3, 3), None, gram_loss),
    ]
    for fx, t, flag, want in cases:
        expected = want(fx, t)
        for fn in (_cpp_loss, style_loss_ref):
            got = fn(fx, t, "chw", "mean", target_is_gram=flag)
            torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    # The two readings of the ambiguous case really differ.
    t = r(2, 3, 3)
    assert not torch.allclose(_cpp_loss(fx3, t, "chw", "mean"), _cpp_loss(fx3, t, "chw", "mean", True))


def test_default_backend_is_the_kernel():
    fx = torch.randn(2, 3, 4, 4, requires_grad=True)
    fy = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = style_loss(fx, fy)
    seen, stack = set(), [loss.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        stack.extend(f for f, _ in fn.next_functions)
    assert any("pygan" in fn.name() and "gram_diff" in fn.name() for fn in seen), [f.name() for f in seen]


def test_cuda_default_sends_large_or_16bit_grams_to_triton(monkeypatch):
    """The CUDA default rule for the Gram (pygan.ops._backend.cuda_default), checked on meta tensors with
    the Triton availability probe stubbed: Triton from GRAM_TRITON_MIN_WORK multiply-adds (a 16th of
    that for 16-bit), CUDA C++ below it and whenever Triton cannot run."""
    from pygan.ops import _backend

    runnable = {"triton": True}
    monkeypatch.setattr(_backend, "_why_not", lambda name, device, op=None: None if runnable[name] else "no")
    work = _backend.GRAM_TRITON_MIN_WORK

    def feats(c, k, dtype=torch.float32, b=1):
        return torch.empty(b, c, k, device="meta", dtype=dtype)

    c = 256
    big = feats(c, work // (c * c))
    assert big.numel() * c == work
    assert _backend.cuda_default("gram_diff", (big,)) == "triton"
    assert _backend.cuda_default("gram_diff", (feats(c, work // (c * c) - 1),)) == "cuda"
    half = feats(c, work // (c * c) // 16, torch.bfloat16)
    assert _backend.cuda_default("gram_diff", (half,)) == "triton"
    assert _backend.cuda_default("gram_diff", (feats(c, work // (c * c) // 16, torch.float32),)) == "cuda"
    assert _backend.cuda_default("residual_add", (big,)) == _backend.CUDA_DEFAULTS["residual_add"]
    runnable["triton"] = False
    assert _backend.cuda_default("gram_diff", (big,)) == "cuda"
