"""Triton-specific edge cases of the Triton kernels (``backend="triton"``) on CPU tensors under
Triton's interpreter (``TRITON_INTERPRET=1``; tests/conftest.py sets it before triton is imported when
there is no GPU): lengths across the interpreter's block size, special values, tanh accuracy, tile
symmetry, empty feature maps, the backward op's own double backward, alpha's gradient equal to the
C++ op's, backend selection. The equivalence, opcheck, gradcheck and torch.compile tests of every
backend, Triton included, are the generic ones of tests/ops/test_ops.py (driven by the op cases).

Outputs are poisoned: ``fill_uninitialized_memory`` makes every ``torch.empty`` NaN, so an element a
kernel fails to write shows up as a NaN mismatch. The interpreter's cost is per program and per
launch, so shapes are small and blocks large.
"""

import os
import subprocess
import sys

import pytest
import torch

import pygan
from pygan import ops
from tests.ops.helpers import (
    DTYPES,
    compare,
    leaf,
    make,
    poison_outputs,  # noqa: F401  (autouse fixture)
)

pytestmark = pytest.mark.skipif(
    not ops.available("triton", "cpu"),
    reason="Triton's interpreter is not active (needs triton installed and TRITON_INTERPRET=1 set before "
    "triton is imported; tests/conftest.py does that on machines without a GPU)",
)

# numpy's own warnings for inf/nan arithmetic inside the interpreter (the special-value tests).
pytestmark = [pytestmark, pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter")]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
T = "triton"


# ---- residual_add ---------------------------------------------------------------------------------

ACTS = (None, "tanh", "clamp")


@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_residual_add_tails_and_special_values(dtype):
    for n in (0, 1, 15, 16, 17, 1000, 70_001):  # 70_001 > the interpreter's 65_536 block: two programs
        b, r, g = make((n,), dtype, n), make((n,), dtype, n + 1, scale=2.0), make((n,), dtype, n + 2)
        for act in ACTS:
            compare(
                lambda x, y, a=act: ops.residual_add(x, y, a, False, backend=T),
                lambda x, y, a=act: ops.residual_add_ref(x, y, a, False),
                [b, r],
                [True, True],
                g,
                dtype,
                ["out", "grad0", "grad1"],
            )
    base = torch.tensor(
        [0.5, -0.5, 0.25, 0.0, 30.0, -30.0, float("inf"), float("nan"), 1.0, -2.0], dtype=dtype
    )
    res = torch.tensor([0.5, -0.5, 0.75, 0.0, 1.0, -1.0, 1.0, 0.0, -0.5, 1.5], dtype=dtype)
    for act in ACTS:
        got = ops.residual_add(base, res, act, backend=T)
        want = ops.residual_add_ref(base, res, act)
        torch.testing.assert_close(
            got, want, equal_nan=True, atol=2e-7 if dtype != torch.float64 else 0, rtol=2e-7
        )
    r = res.clone().requires_grad_()
    out = ops.residual_add(base, r, "clamp", backend=T)
    (g,) = torch.autograd.grad(out, r, torch.ones_like(out))
    assert out[0] == 1 and out[1] == -1 and g[0] == 0 and g[1] == 0 and g[2] == 0


def test_triton_tanh_accuracy():
    x = torch.cat([torch.linspace(-20, 20, 40_001), torch.logspace(-30, 1.5, 20_001)])
    x = torch.cat([x, -x, torch.tensor([0.5, -0.5, 0.4999999, 0.5000001, 0.15, -0.15])])
    ours = ops.residual_add(x, torch.zeros_like(x), "tanh", backend=T).double()
    ref = torch.tanh(x.double())
    rel = ((ours - ref).abs() / ref.abs().clamp_min(1e-30)).max().item()
    assert rel < 2 * torch.finfo(torch.float32).eps, rel
    x64 = x.double()
    ours64 = ops.residual_add(x64, torch.zeros_like(x64), "tanh", backend=T)
    rel64 = ((ours64 - torch.tanh(x64)).abs() / torch.tanh(x64).abs().clamp_min(1e-300)).max().item()
    assert rel64 < 1e-14, rel64


# ---- feature_regularizer ------------------------------------------------------------------------


def test_triton_feature_regularizer_sign_at_zero_and_many_programs():
    """p=1 at a == b gives gradient 0 (sign(0) = 0); a layer above the interpreter's block size."""
    a = torch.randn(70_001, dtype=torch.float64, requires_grad=True)
    b = a.detach().clone()
    b[::2] += 1.0
    b.requires_grad_()
    out = ops.feature_regularizer([a], [b], 1, "sum", backend=T)
    ga, gb = torch.autograd.grad(out, (a, b))
    assert torch.all(ga[1::2] == 0) and torch.all(ga[::2] == -1) and torch.equal(gb, -ga)
    torch.testing.assert_close(out, ops.feature_regularizer_ref([a], [b], 1, "sum"), rtol=1e-12, atol=0)


# ---- gram_diff / style_loss ---------------------------------------------------------------------


def test_triton_gram_of_empty_feature_map_is_zero():
    """K = H*W = 0: an all-zero Gram (norm taken as at least 1, as the C++ kernel and the reference),
    not 0/0; zero-size feature gradients."""
    for shape in [(2, 3, 0), (2, 3, 4, 0)]:
        for normalize in ("chw", "hw"):
            f = torch.randn(shape, requires_grad=True)
            g = ops.gram_matrix(f, normalize, backend=T)
            assert torch.equal(g, torch.zeros(2, 3, 3)), g
            loss = ops.style_loss(f, torch.randn(shape), normalize, backend=T)
            assert loss.item() == 0.0
            (gf,) = torch.autograd.grad(loss, f)
            assert gf.shape == f.shape


def test_triton_gram_is_exactly_symmetric_across_tiles():
    """C = 70 spans two 64-wide tiles (three upper-triangle tiles, mirrored) and K = 200 takes the
    split-K path (workspace + reduction); C = 5, K = 7 the direct path."""
    for shape in [(2, 70, 200), (3, 5, 7), (1, 70, 9)]:
        f = torch.randn(shape)
        g = ops.gram_matrix(f, "hw", backend=T)
        assert torch.equal(g, g.transpose(1, 2))
        torch.testing.assert_close(g, ops.gram_matrix_ref(f.double(), "hw").float(), rtol=1e-5, atol=1e-5)


# ---- gradient penalty pieces --------------------------------------------------------------------


def test_triton_grad_norm_penalty_zero_norm_and_empty_batch():
    z = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    pen = ops.grad_norm_penalty(z, 1.0, 10.0, backend=T)
    (g,) = torch.autograd.grad(pen, z)
    assert abs(pen.item() - 10.0) < 1e-13 and torch.equal(g, torch.zeros_like(g))
    pen, norms = ops.grad_norm_penalty(torch.zeros(0, 5), return_norms=True, backend=T)
    assert torch.isnan(pen) and norms.shape == (0,)


def test_triton_gradient_penalty_end_to_end():
    """WGAN-GP through a small critic: critic-parameter gradients equal the reference's (float64)."""
    torch.manual_seed(0)
    w = torch.randn(3, 3, 3, 3, dtype=torch.float64, requires_grad=True)

    def critic(x):
        return torch.nn.functional.conv2d(x, w, padding=1).tanh().sum(dim=(1, 2, 3))

    real, fake = torch.randn(4, 3, 6, 6, dtype=torch.float64), torch.randn(4, 3, 6, 6, dtype=torch.float64)
    alpha = torch.rand(4, dtype=torch.float64)
    grads = {}
    for name, fn in (
        ("triton", lambda *a, **k: ops.gradient_penalty(*a, **k, backend=T)),
        ("ref", ops.gradient_penalty_ref),
    ):
        pen = fn(critic, real, fake, alpha=alpha)
        grads[name] = (pen.detach(), torch.autograd.grad(pen, w)[0])
    torch.testing.assert_close(grads["triton"], grads["ref"], rtol=1e-12, atol=1e-12)


# ---- gradcheck, double backward -------------------------------------------------------------------


def _f64(*shape, seed=0, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g, dtype=torch.float64) - 0.5).requires_grad_(requires_grad)


# Tiny shapes and fast_mode (random projections): every numerical-Jacobian evaluation is a kernel
# launch in the interpreter.
def _gc(f, inputs, grad2=True):
    assert torch.autograd.gradcheck(f, inputs, fast_mode=True)
    if grad2:
        assert torch.autograd.gradgradcheck(f, inputs, fast_mode=True)


@pytest.mark.parametrize("one_sided", [False, True])
def test_triton_grad_norm_penalty_backward_op_gradgradcheck(one_sided):
    """The backward op's own formula in every input (grad_penalty, grad_norms, grads, norms)."""
    ops.grad_norm_penalty(torch.ones(2, 3), backend=T)  # registers the pygan_triton:: ops

    gp, gn, g = _f64(1, seed=4).reshape(()), _f64(3, seed=1), _f64(3, 2, 2, seed=2)
    n = (g.detach().flatten(1).norm(dim=1) + 0.3).requires_grad_()
    op = torch.ops.pygan_triton.grad_norm_penalty_backward
    _gc(lambda *t: op(*t, 0.4, 10.0, one_sided), (gp, gn, g, n))


def test_triton_interpolate_alpha_gradient_equals_cpp():
    """alpha's gradient (and its double backward) comes from the same formulas as on the C++ op:
    bitwise equal to it, and close to the reference, in every dtype."""
    for dtype in DTYPES:
        for shape in [(3, 2, 5), (4,), (2, 3, 2, 2)]:
            real, fake = make(shape, dtype, 1), make(shape, dtype, 2)
            alpha = torch.rand(shape[0], generator=torch.Generator().manual_seed(3)).to(dtype)
            grad_out = make(shape, dtype, 4)
            got = {}
            for backend in (T, "cpp"):
                xs = [leaf(t, True) for t in (real, fake, alpha)]
                out = ops.interpolate(*xs, backend=backend)
                (ga,) = torch.autograd.grad(out, xs[2], grad_out, create_graph=True)
                got[backend] = (ga.detach(), *torch.autograd.grad(ga.square().sum(), xs[:2]))
            for a, b in zip(got[T], got["cpp"]):
                assert torch.equal(a, b), (dtype, shape)
        compare(
            lambda r, f, a: ops.interpolate(r, f, a, backend=T),
            ops.interpolate_ref,
            [real, fake, alpha],
            [True, True, True],
            grad_out,
            dtype,
            ["out", "grad_real", "grad_fake", "grad_alpha"],
        )


# ---- backend selection ------------------------------------------------------------------------------


def test_triton_backend_selection(monkeypatch):
    x = torch.randn(2, 3)
    assert ops.available("triton", "cpu")
    assert not ops.available("triton", "meta")
    with pytest.raises(ValueError, match=r"'triton' cannot run residual_add.*CUDA tensors"):
        ops.residual_add(torch.empty(2, 3, device="meta"), torch.empty(2, 3, device="meta"), backend=T)
    monkeypatch.setenv("PYGAN_BACKEND", "triton")
    assert "pygan_triton" in ops.residual_add(x, x.clone().requires_grad_(), "tanh").grad_fn.name()
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match=r"PYGAN_BACKEND='triton' cannot run.*TRITON_INTERPRET=1"):
        ops.residual_add(x, x)


def test_importing_pygan_does_not_import_triton():
    code = (
        "import sys, pygan, pygan.ops; print('triton' in sys.modules, pygan.ops.available('triton', 'cpu'))"
    )
    env = dict(os.environ, TRITON_INTERPRET="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"], out.stdout
    assert pygan.ops.native_loaded()
