"""The per-call path every op shares (pygan issue 13): autograd as C++ graph nodes, the memoised
backend choice and its routing rules (checked for CUDA on fake tensors), and no host read of a
tensor's value anywhere in an op's Python path (so the ops stay CUDA-graph capturable)."""

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.overrides import TorchFunctionMode

from pygan import ops
from pygan.ops import _backend

OPS = (
    "residual_add",
    "feature_regularizer",
    "gram_diff",
    "interpolate",
    "grad_norm_penalty",
)

# Tensor methods that read device values to the host (a sync on CUDA; they break graph capture).
HOST_READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.__bool__,
    torch.Tensor.__float__,
    torch.Tensor.__int__,
    torch.Tensor.__index__,
    torch.Tensor.numpy,
}


class NoHostReads(TorchFunctionMode):
    """Raises on any host read of a tensor's value; counts the torch calls it sees."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        if func in HOST_READS:
            raise AssertionError(f"host read of a tensor value: Tensor.{func.__name__}")
        return func(*args, **(kwargs or {}))


def test_no_host_reads_mode_catches_reads():
    """The guard itself must fail on each kind of read (else the test below proves nothing)."""
    t = torch.ones(())
    for read in (lambda: t.item(), lambda: bool(t), lambda: float(t), lambda: int(t), lambda: t.tolist()):
        with pytest.raises(AssertionError, match="host read"), NoHostReads():
            read()
    with NoHostReads() as mode:
        (t + 1).sum()
    assert mode.calls >= 2


def _critic():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 5 * 5, 1),
    ).double()


def _every_op(backend):
    """Every public op: forward, backward (create_graph) and a second backward through the first's
    gradients, on float64 inputs. Returns the number of gradients formed."""
    g = torch.Generator().manual_seed(0)

    def rnd(*shape, grad=True):
        return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(grad)

    def twice(out, inputs):
        grads = torch.autograd.grad(out.square().sum(), inputs, create_graph=True, allow_unused=True)
        second = sum((x.square().sum() for x in grads if x is not None), torch.zeros((), dtype=torch.float64))
        second.backward()
        return len(grads)

    n = 0
    base, res = rnd(2, 3, 5, 5), rnd(2, 3, 5, 5)
    for act in (None, "tanh", "clamp"):
        n += twice(ops.residual_add(base, res, act, detach_base=False, backend=backend), [base, res])
    a, b = [rnd(2, 3, 4, 4), rnd(2, 5)], [rnd(2, 3, 4, 4), rnd(2, 5)]
    for p in (1, 2):
        out = ops.feature_regularizer(a, b, p, weights=[0.5, 2.0], backend=backend)
        n += twice(out, a + b)
    n += twice(ops.feature_regularizer(a, b, 2, detach_b=True, backend=backend), a)
    fx, fy = rnd(2, 3, 4, 4), rnd(2, 3, 4, 4)
    n += twice(ops.gram_matrix(fx, backend=backend), [fx])
    n += twice(ops.style_loss(fx, fy, backend=backend), [fx, fy])
    n += twice(ops.style_loss(fx, rnd(3, 3, grad=False), target_is_gram=True, backend=backend), [fx])
    real, fake, alpha = rnd(2, 3, 5, 5), rnd(2, 3, 5, 5), rnd(2)
    n += twice(ops.interpolate(real, fake, alpha, backend=backend), [real, fake, alpha])
    grads = rnd(3, 2, 5)
    for one_sided in (False, True):
        penalty, norms = ops.grad_norm_penalty(
            grads, 1.0, 10.0, one_sided, return_norms=True, backend=backend
        )
        n += twice(penalty + norms.sum(), [grads])
    critic = _critic()
    for kind in ("wgan-gp", "one-sided", "r1"):
        critic.zero_grad()
        ops.gradient_penalty(critic, rnd(2, 3, 5, 5, grad=False), rnd(2, 3, 5, 5, grad=False), kind=kind,
                             backend=backend).backward()  # fmt: skip
        assert all(p.grad is not None for p in critic[0].parameters())
        n += 1
    return n


@pytest.mark.parametrize("backend", [None, "cpp", "reference"])
def test_no_op_reads_a_tensor_value_on_the_host(backend):
    """Every op's Python path (checks, backend choice, wrappers) and autograd (forward, backward,
    double backward; the penalty through a critic) runs without reading a tensor value to the host:
    no .item()/.tolist()/bool()/float()/int() that would sync a CUDA stream or break graph capture.
    (Tensor-valued feature_regularizer weights are the one documented exception: the schema takes
    floats.) The Triton backend's Python is covered by test_ops.py's Triton runs under the interpreter,
    which itself converts tensors to numpy on the host."""
    with NoHostReads() as mode:
        n = _every_op(backend)
    assert n > 20 and mode.calls > 100


def test_every_native_op_has_cpp_autograd():
    """Each pygan:: op and its backward op has an Autograd-key kernel (csrc/autograd/<op>.cpp), so double
    backward is exact and no Python autograd.Function runs per call; graph nodes are named after the
    op."""
    for op in OPS:
        for name in (op, f"{op}_backward"):
            assert torch._C._dispatch_has_kernel_for_dispatch_key(f"pygan::{name}", "Autograd"), name
    x = torch.randn(2, 3, requires_grad=True)
    out = ops.residual_add(x, x, "tanh", backend="cpp")
    assert out.grad_fn.name() == "pygan::residual_addBackward"
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    assert g.grad_fn.name() == "pygan::residual_add_backwardBackward"
    with torch.no_grad():
        assert ops.residual_add(x, x, "tanh", backend="cpp").grad_fn is None
    assert not ops.residual_add(x, x.detach(), "tanh", backend="cpp").requires_grad  # detach_base


def test_residual_add_without_activation_defaults_to_torch_add(monkeypatch):
    """No activation: the default is torch's add (nothing to fuse); a named backend runs the kernel."""
    monkeypatch.delenv(_backend.ENV_VAR, raising=False)
    base, res = torch.randn(2, 3, 4, requires_grad=True), torch.randn(2, 3, 4, requires_grad=True)
    plain = ops.residual_add(base, res)
    assert plain.grad_fn.name() == "AddBackward0"
    assert ops.residual_add(base, res, "none", detach_base=False).grad_fn.name() == "AddBackward0"
    kernel = ops.residual_add(base, res, backend="cpp")
    assert kernel.grad_fn.name() == "pygan::residual_addBackward"
    torch.testing.assert_close(plain, kernel)
    g_plain = torch.autograd.grad(plain.sum(), [res])
    g_kernel = torch.autograd.grad(kernel.sum(), [res])
    torch.testing.assert_close(g_plain, g_kernel)
    assert torch.autograd.grad(plain.sum(), [base], allow_unused=True) == (None,)  # detach_base
    monkeypatch.setenv(_backend.ENV_VAR, "cpp")
    assert ops.residual_add(base, res).grad_fn.name() == "pygan::residual_addBackward"
    monkeypatch.setenv(_backend.ENV_VAR, "bogus")
    with pytest.raises(ValueError, match="PYGAN_BACKEND must be one of"):
        ops.residual_add(base, res)
    # Bad input still fails before anything runs, with or without activation.
    with pytest.raises(ValueError, match="same shape"):
        ops.residual_add(base, res[:1])


def _stub_impls(monkeypatch):
    """Replaces every op's implementations by stubs that return their backend's name when called (the
    Triton entry stays a loader, of a stub: no triton import), so that the choice
    :func:`_backend.implementation` makes reads as a name."""
    for op in OPS:
        impls = {name: (lambda *args, name=name: name) for name in ("reference", "cpp", "cuda")}
        impls["triton"] = lambda: lambda *args: "triton"
        monkeypatch.setitem(_backend._IMPLS, op, impls)


def _run(op, device, tensors, backend=None):
    """The name of the backend whose implementation a call runs (with :func:`_stub_impls`)."""
    return _backend.implementation(op, device, tensors, backend)()


def test_implementation_matches_select_and_memoises(monkeypatch):
    _stub_impls(monkeypatch)
    monkeypatch.setattr(_backend, "_CACHE", {})
    monkeypatch.delenv(_backend.ENV_VAR, raising=False)
    x = torch.randn(2, 3, 4)
    for op in OPS:
        for backend in (None, "cpp", "reference"):
            want = _backend.select(op, (x,), backend)
            assert _run(op, x.device, (x,), backend) == want
            assert _backend._CACHE[(op, x.device, backend, None)]() == want
            assert _run(op, x.device, (x,), backend) == want  # from the cache
            cached = _backend._CACHE[(op, x.device, backend, None)]
            assert _backend.implementation(op, x.device, (x,), backend) is cached
    assert _run("residual_add", x.device, (x,)) == "cpp"
    # PYGAN_BACKEND changes take effect at once (the raw value is part of the key) ...
    monkeypatch.setenv(_backend.ENV_VAR, " Reference ")
    assert _run("residual_add", x.device, (x,)) == "reference"
    assert _run("residual_add", x.device, (x,), "cpp") == "cpp"  # backend= wins
    # ... and errors are raised on every call, never cached.
    stored = dict(_backend._CACHE)
    monkeypatch.setenv(_backend.ENV_VAR, "fast")
    for _ in range(2):
        with pytest.raises(ValueError, match="PYGAN_BACKEND must be one of"):
            _backend.implementation("residual_add", x.device, (x,))
    monkeypatch.delenv(_backend.ENV_VAR)
    for bad in ("fast", ["cpp"]):
        for _ in range(2):
            with pytest.raises(ValueError, match="backend must be one of"):
                _backend.implementation("residual_add", x.device, (x,), bad)
    with pytest.raises(ValueError, match="'cuda' cannot run residual_add"):
        _backend.implementation("residual_add", x.device, (x,), "cuda")
    assert _backend._CACHE == stored


def test_implementation_routing_on_fake_cuda_tensors(monkeypatch):
    """The CUDA decisions, on fake CUDA tensors with every backend made available: the per-op default
    is memoised per device; the Gram's size-dependent default and Triton are re-derived per call (a
    small Gram never goes to Triton, whose launch costs more than its work)."""
    _stub_impls(monkeypatch)
    monkeypatch.setattr(_backend, "_CACHE", {})
    monkeypatch.setattr(_backend, "_why_not", lambda name, device, op=None: None)
    monkeypatch.delenv(_backend.ENV_VAR, raising=False)
    with FakeTensorMode():
        small = torch.empty(4, 8, 4, 4, device="cuda")
        c = 256
        big = torch.empty(1, c, _backend.GRAM_TRITON_MIN_WORK // (c * c), device="cuda")
    dev = small.device
    assert dev.type == "cuda"
    for op in OPS:
        want = _backend.CUDA_DEFAULTS[op]
        assert _run(op, dev, (small,)) == want == _backend.select(op, (small,))
    assert _run("gram_diff", dev, (big,)) == "triton"
    assert _run("gram_diff", dev, (small,)) == "cuda"
    assert _run("gram_diff", dev, (big,)) == "triton"
    assert ("gram_diff", dev, None, None) not in _backend._CACHE
    assert ("residual_add", dev, None, None) in _backend._CACHE
    assert _run("residual_add", dev, (small,), "triton") == "triton"
    assert ("residual_add", dev, "triton", None) not in _backend._CACHE
    # Unavailable CUDA kernels fall back to the reference; nothing stale is served from the cache.
    monkeypatch.setattr(_backend, "_CACHE", {})
    monkeypatch.setattr(
        _backend, "_why_not", lambda name, device, op=None: None if name == "reference" else "no"
    )
    assert _run("residual_add", dev, (small,)) == "reference"
    with pytest.raises(ValueError, match="'cuda' cannot run"):
        _backend.implementation("residual_add", dev, (small,), "cuda")


def test_implementation_under_compile_takes_the_uncached_path(monkeypatch):
    """While torch.compile traces, implementation re-derives the answer (and stores nothing)."""
    _stub_impls(monkeypatch)
    monkeypatch.setattr(_backend, "_CACHE", {})
    monkeypatch.setattr(_backend, "_is_compiling", lambda: True)
    x = torch.randn(2, 3)
    assert _run("residual_add", x.device, (x,)) == "cpp"
    assert _backend._CACHE == {}
