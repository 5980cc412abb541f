"""residual_add's own edge cases: sizes above the parallel grain, special values, tanh accuracy,
detach_base, gradcheck and double backward (also inside a gradient penalty), layouts kept, argument
errors, backend selection. Equivalence with the reference (values and every gradient) on every
backend, opcheck and torch.compile: the generic tests of tests/ops/test_ops.py (pygan.ops._cases)."""

import pytest
import torch

import pygan
from pygan.ops import residual_add, residual_add_ref
from tests.ops.helpers import DTYPES, assert_close, make

ACTS = (None, "tanh", "clamp")


def _run(fn, base, residual, act, detach, grad_out):
    base = base.detach().requires_grad_(not detach)
    residual = residual.detach().requires_grad_(True)
    out = fn(base, residual, act, detach)
    inputs = [residual] if detach else [base, residual]
    grads = torch.autograd.grad(out, inputs, grad_out, allow_unused=False) if out.numel() else [None]
    return out, grads


def _compare(base, residual, act, detach, grad_out, dtype):
    out, grads = _run(lambda *a: residual_add(*a, backend="cpp"), base, residual, act, detach, grad_out)
    ref, ref_grads = _run(residual_add_ref, base.double(), residual.double(), act, detach, grad_out.double())
    low, low_grads = _run(residual_add_ref, base, residual, act, detach, grad_out)
    assert_close("out", out, ref, None if dtype == torch.float64 else low, dtype)
    if out.numel():
        for i, (g, r, lg) in enumerate(zip(grads, ref_grads, low_grads)):
            assert_close(f"grad[{i}]", g, r, None if dtype == torch.float64 else lg, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_residual_add_large_parallel(dtype):
    """Sizes well above the parallel grain (32768), odd so the last chunk has a tail."""
    shape = (3, 5, 97, 101)
    for act in ACTS:
        _compare(
            make(shape, dtype, 1), make(shape, dtype, 2, scale=2.0), act, True, make(shape, dtype, 3), dtype
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_residual_add_special_values(dtype):
    """Exact clamp bounds (gradient 0 at +-1, as F.hardtanh), tanh saturation, zeros, inf, nan."""
    base = torch.tensor([0.5, -0.5, 0.25, 0.0, 30.0, -30.0, 0.0, float("inf"), float("nan"), 1.0, -2.0])
    residual = torch.tensor([0.5, -0.5, 0.75, 0.0, 1.0, -1.0, -0.0, 1.0, 0.0, -0.5, 1.5])
    base, residual = base.to(dtype), residual.to(dtype)
    grad_out = torch.linspace(-1, 1, base.numel(), dtype=dtype)
    for act in ACTS:
        out, grads = _run(lambda *a: residual_add(*a, backend="cpp"), base, residual, act, False, grad_out)
        ref, ref_grads = _run(residual_add_ref, base, residual, act, False, grad_out)
        torch.testing.assert_close(
            out, ref, equal_nan=True, atol=2e-7 if dtype != torch.float64 else 0, rtol=2e-7
        )
        for g, r in zip(grads, ref_grads):
            torch.testing.assert_close(g, r, equal_nan=True, atol=1e-6, rtol=1e-6)
    out, (_, gr) = _run(lambda *a: residual_add(*a, backend="cpp"), base, residual, "clamp", False, grad_out)
    assert out[0] == 1 and out[1] == -1 and gr[0] == 0 and gr[1] == 0 and gr[2] == 0


def test_fast_tanh_accuracy():
    """The float kernel's tanh (Taylor series below 0.5, exp form above) stays within 2 ULP-scale
    of float64 tanh everywhere, and within 3x torch's own float32 error."""
    x = torch.cat([torch.linspace(-20, 20, 400_001), torch.logspace(-30, 1.5, 100_001)])
    x = torch.cat([x, -x, torch.tensor([0.5, -0.5, 0.4999999, 0.5000001])])
    ours = residual_add(x, torch.zeros_like(x), "tanh", backend="cpp").double()
    ref = torch.tanh(x.double())
    rel = ((ours - ref).abs() / ref.abs().clamp_min(1e-30)).max().item()
    assert rel < 2 * torch.finfo(torch.float32).eps, rel
    assert (ours - ref).abs().max() <= 3 * (torch.tanh(x).double() - ref).abs().max()


def test_detach_base_sends_no_gradient():
    base = torch.randn(2, 3, 4, 4, requires_grad=True)
    residual = torch.randn(2, 3, 4, 4, requires_grad=True)
    residual_add(base, residual, "tanh", detach_base=True).sum().backward()
    assert base.grad is None and residual.grad is not None
    base.grad = residual.grad = None
    out = residual_add(base, residual, "tanh", detach_base=False)
    out.sum().backward()
    torch.testing.assert_close(base.grad, residual.grad)
    assert not residual_add(base.detach(), residual.detach()).requires_grad


@pytest.mark.parametrize("act", ACTS)
def test_residual_add_gradcheck_and_double_backward(act):
    g = torch.Generator().manual_seed(0)
    # Keep clamp inputs away from the kink at +-1 where finite differences are meaningless.
    base = (torch.rand(2, 3, 5, 4, generator=g, dtype=torch.float64) - 0.5).requires_grad_()
    residual = (torch.rand(2, 3, 5, 4, generator=g, dtype=torch.float64) - 0.5).requires_grad_()
    f = lambda b, r: residual_add(b, r, act, False, backend="cpp")  # noqa: E731
    assert torch.autograd.gradcheck(f, (base, residual))
    assert torch.autograd.gradgradcheck(f, (base, residual))
    fd = lambda r: residual_add(base.detach(), r, act, True, backend="cpp")  # noqa: E731
    assert torch.autograd.gradgradcheck(fd, (residual,))


def test_residual_add_inside_gradient_penalty_critic():
    """A critic using residual_add, differentiated twice (WGAN-GP style): critic-parameter grads
    equal the reference's."""
    torch.manual_seed(0)
    w = torch.randn(3, 3, 3, 3, dtype=torch.float64, requires_grad=True)

    def critic(x, add):
        h = torch.nn.functional.conv2d(x, w, padding=1)
        return add(h, x, "tanh", False).pow(2).sum(dim=(1, 2, 3))

    x = torch.randn(4, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    grads = {}
    for name, add in (("cpp", lambda *a: residual_add(*a, backend="cpp")), ("ref", residual_add_ref)):
        (gx,) = torch.autograd.grad(critic(x, add).sum(), x, create_graph=True)
        penalty = ((gx.flatten(1).norm(dim=1) - 1) ** 2).mean()
        grads[name] = torch.autograd.grad(penalty, w)[0]
    torch.testing.assert_close(grads["cpp"], grads["ref"], rtol=1e-12, atol=1e-12)
    assert grads["cpp"].abs().sum() > 0


def test_residual_add_channels_last_keeps_layout():
    b = torch.randn(2, 3, 5, 5).contiguous(memory_format=torch.channels_last)
    r = torch.randn(2, 3, 5, 5).contiguous(memory_format=torch.channels_last)
    assert residual_add(b, r, backend="cpp").is_contiguous(memory_format=torch.channels_last)
    assert residual_add(b, r.contiguous(), backend="cpp").is_contiguous()


def test_residual_add_bad_input():
    x = torch.randn(2, 3)
    with pytest.raises(TypeError, match="base"):
        residual_add([1.0], x)
    with pytest.raises(TypeError, match="residual"):
        residual_add(x, torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="same shape"):
        residual_add(x, torch.randn(3, 2))
    with pytest.raises(TypeError, match="same dtype"):
        residual_add(x, x.double())
    with pytest.raises(ValueError, match="same device"):
        residual_add(x, torch.empty(2, 3, device="meta"))
    with pytest.raises(ValueError, match="activation"):
        residual_add(x, x, "relu")
    with pytest.raises(TypeError, match="detach_base"):
        residual_add(x, x, None, "yes")


def test_backend_selection(monkeypatch):
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="backend must be one of"):
        residual_add(x, x, backend="fast")
    with pytest.raises(ValueError, match="'cuda' cannot run residual_add"):
        residual_add(x, x, backend="cuda")
    monkeypatch.setenv("PYGAN_BACKEND", "nope")
    with pytest.raises(ValueError, match="PYGAN_BACKEND must be one of"):
        residual_add(x, x)
    monkeypatch.setenv("PYGAN_BACKEND", "reference")
    out = residual_add(x, x.requires_grad_(), "tanh")
    assert out.grad_fn.name() == "TanhBackward0"
    monkeypatch.delenv("PYGAN_BACKEND")
    assert "pygan" in residual_add(x, x, "tanh").grad_fn.name()
    assert pygan.ops.available("cpp", "cpu") and not pygan.ops.available("cpp", "meta")
