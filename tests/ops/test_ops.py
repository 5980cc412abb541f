"""The generic op tests, driven by the op cases (``pygan.ops._cases``): for every op x device (CPU,
and CUDA when present) x backend that can run there (``pygan.ops.available``):

* values and every gradient against the float64 reference, over the case's hypothesis strategy
  (dtypes, odd/prime/empty shapes, layouts; the rule of tests/ops/helpers.py);
* ``torch.library.opcheck`` of every opcheck sample of the case, for the ``pygan::`` (cpp/cuda)
  and ``pygan_triton::`` registrations (under Triton's interpreter, the case's small samples);
* gradcheck and gradgradcheck in float64 (fast mode, tiny shapes);
* torch.compile (fullgraph, static and dynamic) equal to eager.

Triton runs on CPU tensors under its interpreter (``TRITON_INTERPRET=1``, set by tests/conftest.py
when there is no GPU) with the cases' small shapes. Outputs are poisoned: ``fill_uninitialized_memory``
makes every ``torch.empty`` NaN, so an element a kernel fails to write shows as a NaN mismatch.
tests/test_native.py re-runs the C++ CPU kernels' equivalence tests per CPU build by the
``cpu_kernel`` marker.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings

from pygan import ops
from pygan.ops import op_cases
from tests.ops import helpers
from tests.ops.helpers import (
    examples,
    poison_outputs,  # noqa: F401  (autouse fixture)
)

CASES = op_cases()

# cpu, and cuda when present; PYGAN_OP_TEST_DEVICES=cuda limits a GPU machine's run to the GPU (CI runs
# the CPU side).
DEVICES = tuple(
    d
    for d in os.environ.get("PYGAN_OP_TEST_DEVICES", "cpu,cuda").split(",")
    if d == "cpu" or (d == "cuda" and torch.cuda.is_available())
)
# The backends that can serve a device type (each is still checked with ops.available).
DEVICE_BACKENDS = {"cpu": ("reference", "cpp", "triton"), "cuda": ("reference", "cuda", "triton")}
NATIVE = {"cpu": "cpp", "cuda": "cuda"}

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter")


def _runnable_or_skip(backend: str, device: str, kernel: str) -> None:
    if not ops.available(backend, device, kernel):
        pytest.skip(f"backend {backend!r} cannot run {kernel} on {device} here")


def _interpreted(backend: str, device: str) -> bool:
    """Triton on CPU tensors: its interpreter, slow per launch, so the cases' small shapes."""
    return backend == "triton" and torch.device(device).type == "cpu"


# ---- equivalence -------------------------------------------------------------------------------


def compare(sample, backend, device):
    """The sample's function on ``backend`` vs its reference (:func:`tests.ops.helpers.compare`, each
    result on ``device``'s type), then the sample's own check."""
    names = sample.names[:1] + [n for n, need in zip(sample.names[1:], sample.needs) if need]
    helpers.compare(
        sample.fn(backend),
        sample.ref,
        sample.inputs,
        sample.needs,
        sample.grad_out,
        sample.dtype,
        names,
        device,
    )
    if sample.check is not None:
        sample.check(backend)


def _equivalence_params():
    params = []
    for case in CASES:
        for variant in case.variants:
            for device in DEVICES:
                for backend in DEVICE_BACKENDS[device]:
                    marks = [pytest.mark.cpu_kernel] if (device, backend) == ("cpu", "cpp") else []
                    params.append(
                        pytest.param(
                            case,
                            variant,
                            device,
                            backend,
                            marks=marks,
                            id=f"{case.name}-{variant.name}-{device}-{backend}",
                        )
                    )
    return params


@pytest.mark.parametrize("case,variant,device,backend", _equivalence_params())
def test_op_matches_reference(case, variant, device, backend):
    _runnable_or_skip(backend, device, variant.kernel)

    @settings(max_examples=examples(variant.budget(device, backend)))
    @given(sample=variant.samples(device, _interpreted(backend, device)))
    def check(sample):
        compare(sample, backend, device)

    check()


# ---- opcheck -----------------------------------------------------------------------------------


def _register_triton(case, device):
    """The pygan_triton:: ops register on first use: one eager call of the case's compile function."""
    args = case.compile[1](device)[0]
    case.compile[0]("triton")(*args)


def _opcheck_params():
    params = []
    for case in CASES:
        for device in DEVICES:
            samples = case.opcheck(device)
            for backend in (NATIVE[device], "triton"):
                for i, (name, _, small) in enumerate(samples):
                    if _interpreted(backend, device) and not small:
                        continue
                    params.append(
                        pytest.param(
                            case, device, backend, i, id=f"{case.name}-{device}-{backend}-{name}-{i}"
                        )
                    )
    return params


@pytest.mark.parametrize("case,device,backend,index", _opcheck_params())
def test_op_opcheck(case, device, backend, index):
    name, args, _ = case.opcheck(device)[index]
    kernel = name.removesuffix("_backward")
    _runnable_or_skip(backend, device, kernel)
    if backend == "triton":
        _register_triton(case, device)
        op = getattr(torch.ops.pygan_triton, name)
    else:
        op = getattr(torch.ops.pygan, name)
    torch.library.opcheck(op.default, args)


# ---- gradcheck ---------------------------------------------------------------------------------


def _backend_params():
    return [
        pytest.param(case, device, backend, id=f"{case.name}-{device}-{backend}")
        for case in CASES
        for device in DEVICES
        for backend in (NATIVE[device], "triton")
    ]


@pytest.mark.parametrize("case,device,backend", _backend_params())
def test_op_gradcheck_and_gradgradcheck(case, device, backend):
    for kernel in case.kernels:
        _runnable_or_skip(backend, device, kernel)
    # fast_mode (random projections): every numerical-Jacobian evaluation is a kernel launch.
    for label, f, inputs, grad2 in case.gradcheck(backend, device):
        assert torch.autograd.gradcheck(f, inputs, fast_mode=True), label
        if grad2:
            assert torch.autograd.gradgradcheck(f, inputs, fast_mode=True), label


# ---- torch.compile -----------------------------------------------------------------------------

# pytorch/pytorch#181735 (fixed by #183334, in torch 2.12): inductor's replace_by_example asserts
# while decomposing triton_kernel_wrapper_functional in a dynamic-shape backward graph (seen on an
# H100 with torch 2.11 for the elementwise Triton ops). Strict: a torch that fixes it fails as XPASS.
_INDUCTOR_181735 = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) < (2, 12)


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("case,device,backend", _backend_params())
def test_op_compile_fullgraph(case, device, backend, dynamic, request):
    for kernel in case.kernels:
        _runnable_or_skip(backend, device, kernel)
    on_gpu = torch.device(device).type == "cuda"
    if backend == "triton" and dynamic and on_gpu and _INDUCTOR_181735:
        request.applymarker(pytest.mark.xfail(reason="pytorch#181735 on torch < 2.12", strict=True))
    make_fn, calls = case.compile
    f = make_fn(backend)
    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, dynamic=dynamic)
    tol = dict(rtol=1e-5, atol=1e-5) if on_gpu else {}
    todo = calls(device)
    if _interpreted(backend, device):  # each shape compiles and interprets anew: static one, dynamic two
        todo = todo[: 2 if dynamic else 1]
    for args in todo:
        needs = [t for t in args if t.requires_grad]
        want = f(*args)
        want_g = torch.autograd.grad(want, needs)
        got = compiled(*args)
        got_g = torch.autograd.grad(got, needs)
        torch.testing.assert_close(got, want, **tol)
        for x, y in zip(got_g, want_g):
            torch.testing.assert_close(x, y, **tol)
