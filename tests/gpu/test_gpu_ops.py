"""GPU-specific edge cases of the GPU backends, on CUDA tensors (run by ``bash bench/gpu.sh`` on a
lent GPU; skipped with a reason elsewhere). The equivalence (values and every gradient), opcheck,
gradcheck and torch.compile tests of every backend on every device, CUDA included, are the generic
ones of tests/ops/test_ops.py, driven by the op cases; this file keeps what they do not cover:

* ``cuda`` kernel contracts: ``torch.ops.pygan.<op>`` and ``<op>_backward`` called directly (values,
  strides, empty outputs for unneeded gradients, misaligned pointers, sizes of several blocks);
* bitwise determinism of the reductions, exact Gram symmetry, the zero-norm penalty;
* the default backend on CUDA tensors.

dtypes float32, float16, bfloat16 (and float64); odd, prime, empty and multi-block sizes; layouts;
misaligned pointers (scalar paths). Outputs are poisoned: with ``fill_uninitialized_memory`` every
``torch.empty`` (Python or ``at::empty`` in the kernels) is NaN-filled, so an unwritten element shows
as a NaN mismatch. Reductions must be bitwise deterministic.

Dry run without a GPU (checks this file's logic): ``PYGAN_GPU_TESTS_DEVICE=cpu pytest tests/gpu``
runs the same tests on CPU tensors, ``cuda`` replaced by the C++ CPU kernels (``cpp``) and Triton
under its interpreter, at smaller sizes.
"""

import math
import os

import pytest
import torch

from pygan import _ext, ops
from tests.ops.helpers import (
    apply_layout,
    assert_close,
    make,
    poison_outputs,  # noqa: F401  (autouse fixture)
)

DRY = os.environ.get("PYGAN_GPU_TESTS_DEVICE") == "cpu"
DEV = "cpu" if DRY else "cuda"
NATIVE = "cpp" if DRY else "cuda"  # the C++ backend for DEV
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)

if not DRY and not torch.cuda.is_available():
    pytest.skip(
        "no CUDA GPU here: tests/gpu runs on a lent GPU via `bash bench/gpu.sh` (dry run on CPU: "
        "PYGAN_GPU_TESTS_DEVICE=cpu)",
        allow_module_level=True,
    )
if not DRY and os.environ.get("TRITON_INTERPRET") == "1":
    pytest.skip("TRITON_INTERPRET=1 is set: tests/gpu needs compiled Triton", allow_module_level=True)


# Dry run: ops without a C++ CPU kernel in this build get one that forwards to the Triton op (run by
# the interpreter), so the kernel-contract tests below exercise their own logic, and the Triton
# kernels are checked against the pygan:: contracts too.
_SHIMMED: set[str] = set()
if DRY and ops.available("triton", "cpu"):
    from pygan.ops.feature_regularizer import triton as _fr  # noqa: F401  (registers the ops)
    from pygan.ops.gradient_penalty import triton as _gp  # noqa: F401
    from pygan.ops.residual_add import triton as _ra  # noqa: F401
    from pygan.ops.style_loss import triton as _sl  # noqa: F401

    _shim_lib = torch.library.Library("pygan", "IMPL")
    for _op in ("feature_regularizer", "gram_diff", "interpolate", "grad_norm_penalty"):
        if not ops._backend.has_kernel(_op, "CPU"):
            for _name in (_op, f"{_op}_backward"):
                _shim_lib.impl(_name, getattr(torch.ops.pygan_triton, _name).default, "CPU")
            _SHIMMED.add(_op)


def _contract_or_skip(op: str) -> None:
    """The CUDA kernel-contract tests call torch.ops.pygan.* directly."""
    if op not in _SHIMMED:
        _backend_or_skip("cuda", op)


def _backend_or_skip(backend: str, op: str) -> str:
    name = NATIVE if backend == "cuda" else backend
    if not ops.available(name, DEV, op):
        why = ops._backend._why_not(name, torch.device(DEV), op)
        pytest.skip(f"backend {name!r} cannot run {op} on {DEV} here: {why}")
    return name


def _autograd_or_skip(op: str):
    for name in (op, f"{op}_backward"):
        if not torch._C._dispatch_has_kernel_for_dispatch_key(f"pygan::{name}", "Autograd"):
            pytest.skip(
                f"pygan::{name} has no autograd registration in this build (CPU-op branch not merged)"
            )


def mk(shape, dtype, seed, layout="contiguous", scale=1.0):
    return make(shape, dtype, seed, layout, scale, device=DEV)


def misaligned(t: torch.Tensor) -> torch.Tensor:
    """Same values, data pointer off 16-byte alignment (storage offset 1): the kernels' scalar paths."""
    buf = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
    view = buf[1:].view(t.shape)
    view.copy_(t)
    return view


def check_close(name, got, want64, low, dtype):
    assert got.device.type == DEV.split(":")[0], name
    assert_close(name, got, want64, None if dtype == torch.float64 else low, dtype)


BACKENDS = ("cuda", "triton")


# ==== residual_add ==================================================================================


def _residual_bwd_ref(grad, out, act):
    if act == "tanh":
        return grad * (1 - out * out)
    if act == "clamp":
        return torch.where((out <= -1) | (out >= 1), torch.zeros_like(grad), grad)
    return grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 4099, 1_000_003])
@pytest.mark.parametrize("align", ["aligned", "misaligned"])
def test_gpu_cuda_residual_kernel_contract(dtype, n, align):
    _backend_or_skip("cuda", "residual_add")
    if DRY and n > 5000:
        n = 5003
    prep = misaligned if align == "misaligned" else (lambda t: t)
    for act in ("none", "tanh", "clamp"):
        base, res = prep(mk((n,), dtype, n, scale=2.0)), prep(mk((n,), dtype, n + 1, scale=2.0))
        out = torch.ops.pygan.residual_add(base, res, act, True)
        want = ops.residual_add_ref(base.double(), res.double(), act)
        check_close(f"fwd {act}", out, want, ops.residual_add_ref(base, res, act), dtype)
        grad = prep(mk((n,), dtype, n + 2))
        gin = torch.ops.pygan.residual_add_backward(grad, out, act)
        check_close(
            f"bwd {act}",
            gin,
            _residual_bwd_ref(grad.double(), out.double(), act),
            _residual_bwd_ref(grad, out, act),
            dtype,
        )


def test_gpu_cuda_residual_layouts():
    _backend_or_skip("cuda", "residual_add")
    x = mk((3, 5, 7, 9), torch.float32, 0).contiguous(memory_format=torch.channels_last)
    y = mk((3, 5, 7, 9), torch.float32, 1).contiguous(memory_format=torch.channels_last)
    assert torch.ops.pygan.residual_add(x, y, "tanh", True).is_contiguous(memory_format=torch.channels_last)
    assert torch.ops.pygan.residual_add(x, y.contiguous(), "tanh", True).is_contiguous()
    g = torch.ones(1, device=DEV).expand(3, 5, 7, 9)
    assert torch.ops.pygan.residual_add_backward(g, x, "tanh").is_contiguous()


# ==== feature_regularizer ===========================================================================


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("align", ["aligned", "misaligned"])
def test_gpu_cuda_feature_regularizer_kernel_contract(dtype, p, align):
    _contract_or_skip("feature_regularizer")
    prep = misaligned if align == "misaligned" else (lambda t: t)
    shapes = (
        [(2, 3), (64, 33, 17, 19), (0, 5), (1_000_003,)]
        if not DRY
        else [(2, 3), (4, 3, 7, 9), (0, 5), (5003,)]
    )
    a = [prep(mk(s, dtype, i)) for i, s in enumerate(shapes)]
    b = [prep(mk(s, dtype, 10 + i)) for i, s in enumerate(shapes)]
    w = [1.0, 0.25, 3.0, 1.0 / 3.0]
    for reduction in ("mean", "sum"):
        out = torch.ops.pygan.feature_regularizer(a, b, p, reduction, w)
        assert out.shape == () and out.dtype == dtype
        a64 = [x.double().requires_grad_() for x in a]
        b64 = [x.double().requires_grad_() for x in b]
        want = ops.feature_regularizer_ref(a64, b64, p, reduction, w)
        low = ops.feature_regularizer_ref(a, b, p, reduction, w)
        check_close(f"value {reduction}", out, want, low, dtype)
        want_g = torch.autograd.grad(want, a64 + b64, allow_unused=True)
        for need_a, need_b in ((True, True), (True, False), (False, True)):
            grad = torch.tensor(0.75, dtype=dtype, device=DEV)
            ga, gb = torch.ops.pygan.feature_regularizer_backward(grad, a, b, p, reduction, w, need_a, need_b)
            assert len(ga) == (len(a) if need_a else 0) and len(gb) == (len(a) if need_b else 0)
            for i in range(len(a)):
                if a[i].numel() == 0:
                    continue
                if need_a:
                    check_close(f"grad_a{i}", ga[i], 0.75 * want_g[i], None, dtype)
                if need_b:
                    check_close(f"grad_b{i}", gb[i], 0.75 * want_g[len(a) + i], None, dtype)


def test_gpu_feature_regularizer_deterministic():
    for backend in BACKENDS:
        b = NATIVE if backend == "cuda" else backend
        if not ops.available(b, DEV, "feature_regularizer"):
            continue
        a = [mk((64, 256, 16, 16) if not DRY else (4, 3, 9, 9), torch.float32, 1)]
        c = [mk(a[0].shape, torch.float32, 2)]
        r1 = ops.feature_regularizer(a, c, backend=b)
        r2 = ops.feature_regularizer(a, c, backend=b)
        assert torch.equal(r1, r2), backend


# ==== gram_diff / style_loss ========================================================================


def _gram_bwd_ref(grad, fx, fy, normalize):
    b, c = fx.shape[:2]
    k = math.prod(fx.shape[2:])
    norm = c * k if normalize == "chw" else k
    s = grad + grad.transpose(1, 2)
    gx = (torch.bmm(s, fx.reshape(b, c, k)) / norm).reshape(fx.shape)
    gy = None if fy is None else (-torch.bmm(s, fy.reshape(b, c, k)) / norm).reshape(fy.shape)
    return gx, gy


GRAM_CASES = [
    (2, 3, 5, 7),  # direct (one K split), scalar loads (K = 35)
    (3, 70, 16, 16),  # two tile rows: off-diagonal tile mirrored; vector loads
    (2, 130, 4097),  # three tile rows, split-K + reduction, K % 4 != 0 (scalar)
    (1, 64, 64, 64),  # exactly one tile, split-K
    (4, 256, 32, 32),  # the benchmark's channel count
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GRAM_CASES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "misaligned"])
def test_gpu_cuda_gram_kernel_contract(dtype, shape, layout):
    _contract_or_skip("gram_diff")
    if DRY:
        shape = (shape[0], min(shape[1], 7), *[min(s, 9) for s in shape[2:]])
    if layout == "misaligned":
        fx, fy = misaligned(mk(shape, dtype, 1)), misaligned(mk(shape, dtype, 2))
    else:
        fx, fy = mk(shape, dtype, 1, layout), mk(shape, dtype, 2, layout)
    for normalize in ("chw", "hw"):
        for y in (fy, None):
            d = torch.ops.pygan.gram_diff(fx, y, normalize)
            assert d.shape == (shape[0], shape[1], shape[1]) and d.is_contiguous() and d.dtype == dtype
            want = ops.gram_matrix_ref(fx.double(), normalize)
            low = ops.gram_matrix_ref(fx, normalize)
            if y is not None:
                want = want - ops.gram_matrix_ref(y.double(), normalize)
                low = low - ops.gram_matrix_ref(y, normalize)
            check_close(f"D {normalize} y={y is not None}", d, want, low, dtype)
            assert torch.equal(d, d.transpose(1, 2)), "D must be exactly symmetric"
            grad = mk(d.shape, dtype, 3)
            for need_x, need_y in ((True, True), (True, False), (False, True)):
                gx, gy = torch.ops.pygan.gram_diff_backward(grad, fx, y, normalize, need_x, need_y)
                y64 = None if y is None else y.double()
                wx, wy = _gram_bwd_ref(grad.double(), fx.double(), y64, normalize)
                lx, ly = _gram_bwd_ref(grad, fx, y, normalize)
                if need_x:
                    assert gx.shape == fx.shape and gx.is_contiguous()
                    check_close("grad_fx", gx, wx, lx, dtype)
                else:
                    assert gx.shape == (0,)
                if need_y and y is not None:
                    assert gy.shape == fx.shape and gy.is_contiguous()
                    check_close("grad_fy", gy, wy, ly, dtype)
                else:
                    assert gy.shape == (0,)
    # A stride-0 incoming gradient (from .sum()).
    g0 = torch.ones(1, 1, 1, dtype=dtype, device=DEV).expand(shape[0], shape[1], shape[1])
    gx, _ = torch.ops.pygan.gram_diff_backward(g0, fx, None, "hw", True, False)
    check_close(
        "grad_fx (stride-0 grad)",
        gx,
        _gram_bwd_ref(g0.double(), fx.double(), None, "hw")[0],
        _gram_bwd_ref(g0, fx, None, "hw")[0],
        dtype,
    )


def test_gpu_gram_deterministic_and_symmetric():
    shape = (16, 256, 32, 32) if not DRY else (2, 70, 9, 9)
    fx, fy = mk(shape, torch.float32, 1), mk(shape, torch.float32, 2)
    for backend in BACKENDS:
        b = NATIVE if backend == "cuda" else backend
        if not ops.available(b, DEV, "gram_diff"):
            continue
        try:
            d1 = ops.style_loss(fx, fy, backend=b)
        except (RuntimeError, NotImplementedError) as exc:  # no kernel for this device in this build
            pytest.skip(str(exc)[:200])
        assert torch.equal(d1, ops.style_loss(fx, fy, backend=b)), backend
        g = ops.gram_matrix(fx, backend=b)
        assert torch.equal(g, g.transpose(1, 2)), backend


# ==== interpolate / grad_norm_penalty ===============================================================

GP_CASES = [(0, 3), (5,), (7, 40), (64, 3, 32, 32), (3, 3001), (2, 3, 512, 512), (100_003, 3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GP_CASES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "misaligned", "expanded"])
def test_gpu_cuda_gradient_penalty_kernel_contract(dtype, shape, layout):
    _contract_or_skip("grad_norm_penalty")
    if DRY:
        shape = tuple(min(s, 9) for s in shape)
    prep = misaligned if layout == "misaligned" else (lambda t: apply_layout(t, layout))
    real, fake, g = prep(mk(shape, dtype, 1)), prep(mk(shape, dtype, 2)), prep(mk(shape, dtype, 3))
    alpha = torch.rand(shape[0], dtype=torch.float64, device=DEV).to(dtype)
    out = torch.ops.pygan.interpolate(real, fake, alpha)
    want = ops.interpolate_ref(real.double(), fake.double(), alpha.double())
    check_close("interpolate", out, want, ops.interpolate_ref(real, fake, alpha), dtype)
    for need_r, need_f in ((True, True), (True, False), (False, True)):
        gr, gf = torch.ops.pygan.interpolate_backward(g, alpha, need_r, need_f)
        a = alpha.double().reshape((-1,) + (1,) * (g.dim() - 1))
        if need_r:
            check_close("grad_real", gr, (1 - a) * g.double(), None, dtype)
        else:
            assert gr.shape == (0,)
        if need_f:
            check_close("grad_fake", gf, a * g.double(), None, dtype)
        else:
            assert gf.shape == (0,)
    for one_sided in (False, True):
        pen, norms = torch.ops.pygan.grad_norm_penalty(g, 0.8, 10.0, one_sided)
        g64 = g.double().requires_grad_()
        want_pen, want_norms = ops.grad_norm_penalty_ref(g64, 0.8, 10.0, one_sided, return_norms=True)
        assert pen.dtype == dtype and pen.shape == ()
        assert norms.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        check_close("penalty", pen, want_pen, ops.grad_norm_penalty_ref(g, 0.8, 10.0, one_sided), dtype)
        if shape[0] == 0:
            continue
        torch.testing.assert_close(norms.double(), want_norms.detach(), rtol=2e-6, atol=1e-6)
        gp = torch.tensor(0.6, dtype=dtype, device=DEV)
        gn = torch.randn(shape[0], dtype=norms.dtype, device=DEV)
        gin = torch.ops.pygan.grad_norm_penalty_backward(gp, gn, g, norms, 0.8, 10.0, one_sided)
        (want_g,) = torch.autograd.grad(want_pen * 0.6 + (want_norms * gn.double()).sum(), g64)
        check_close("grad", gin, want_g, None, dtype)


def test_gpu_grad_norm_penalty_zero_norm_and_deterministic():
    for backend in BACKENDS:
        b = NATIVE if backend == "cuda" else backend
        if not ops.available(b, DEV, "grad_norm_penalty"):
            continue
        if b in ("cuda", "cpp"):
            _autograd_or_skip("grad_norm_penalty")
        z = torch.zeros(3, 4, dtype=torch.float64, device=DEV, requires_grad=True)
        pen = ops.grad_norm_penalty(z, 1.0, 10.0, backend=b)
        (g,) = torch.autograd.grad(pen, z)
        assert abs(pen.item() - 10.0) < 1e-13 and torch.equal(g, torch.zeros_like(g)), backend
        x = mk((256, 3, 64, 64) if not DRY else (5, 3, 9, 9), torch.float32, 4)
        p1, n1 = ops.grad_norm_penalty(x, return_norms=True, backend=b)
        p2, n2 = ops.grad_norm_penalty(x, return_norms=True, backend=b)
        assert torch.equal(p1, p2) and torch.equal(n1, n2), backend


def test_gpu_default_backend_is_a_gpu_kernel():
    """With no backend= and no PYGAN_BACKEND, CUDA tensors run CUDA_DEFAULTS' backend when it can run."""
    if DRY:
        pytest.skip("GPU only")
    from pygan.ops import _backend

    x = mk((2, 3), torch.float32, 0)
    for op in _backend.CUDA_DEFAULTS:
        name = _backend.cuda_default(op, (x,))
        chosen = _backend.select(op, (x,))
        assert chosen == (name if ops.available(name, "cuda", op) else "reference"), (op, chosen)
    # A Gram large enough for the Triton default (bench/results/nvidia-h100-80gb-hbm3.md) runs there.
    big = torch.empty(1, 256, _backend.GRAM_TRITON_MIN_WORK // 256**2, device=DEV)
    want = "triton" if ops.available("triton", DEV, "gram_diff") else "cuda"
    assert _backend.select("gram_diff", (big,)) == want
    assert _ext.cuda_loaded(), f"the CUDA kernels did not load: {_ext.info()}"
