"""GPU probes behind two of pygan's CUDA defaults (``pygan/ops/_backend.py``), in one run:

1. the float32 ``tl.dot`` precision of the Triton Gram (``ieee`` / ``tf32x3`` / ``tf32``) against eager
   ``bmm`` (with and without TF32) and the CUDA C++ kernel: time of fwd+bwd (both grads) and the
   relative error of the loss and both gradients vs a float64 reference;
2. the host time of one fwd+bwd call at a model size, per backend (what dominates small tensors);
3. ``torch.compile(fullgraph=True, dynamic=True)`` fwd+bwd of each op on the Triton backend alone.

    python bench/gpu_probe.py            # on a CUDA machine (bench/gpu.sh does not run it)
"""

import time

import torch
from triton.testing import do_bench

from pygan import ops
from pygan.ops.style_loss import triton as triton_style


def precision(shape=(64, 256, 64, 64)) -> None:
    print(f"## style_loss float32 {shape}, fwd+bwd both grads: ms, rel. error of (loss, grad_x, grad_y)")
    torch.manual_seed(0)
    x = torch.randn(shape, device="cuda", requires_grad=True)
    y = torch.randn(shape, device="cuda", requires_grad=True)
    xd, yd = x.detach().double().requires_grad_(), y.detach().double().requires_grad_()
    want = ops.style_loss_ref(xd, yd)
    want.backward()

    def row(label, fn):
        def step():
            x.grad = y.grad = None
            fn(x, y).backward()

        ms = do_bench(step, rep=200)
        x.grad = y.grad = None
        loss = fn(x, y)
        loss.backward()
        errs = [float((loss.detach().double() - want).abs() / want.abs())]
        errs += [float((g.double() - r).norm() / r.norm()) for g, r in ((x.grad, xd.grad), (y.grad, yd.grad))]
        print(f"{label:<16} {ms:7.3f} ms  " + "  ".join(f"{e:.2e}" for e in errs))

    row("eager bmm", ops.style_loss_ref)
    torch.backends.cuda.matmul.allow_tf32 = True
    row("eager bmm tf32", ops.style_loss_ref)
    torch.backends.cuda.matmul.allow_tf32 = False
    row("cuda", lambda a, b: ops.style_loss(a, b, backend="cuda"))
    default = triton_style.FP32_PRECISION
    for prec in ("ieee", "tf32x3", "tf32"):
        triton_style.FP32_PRECISION = prec
        try:
            row(f"triton {prec}", lambda a, b: ops.style_loss(a, b, backend="triton"))
        except Exception as e:
            print(f"triton {prec}: failed: {type(e).__name__}: {str(e)[:300]}")
    triton_style.FP32_PRECISION = default


def host_overhead(n: int = 300) -> None:
    print("## host time per fwd+bwd call, residual_add tanh (64,3,32,32) float32")
    b = torch.randn(64, 3, 32, 32, device="cuda", requires_grad=True)
    r = torch.randn(64, 3, 32, 32, device="cuda", requires_grad=True)
    for backend in ("reference", "cuda", "triton"):
        for _ in range(20):
            ops.residual_add(b, r, "tanh", backend=backend).sum().backward()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            ops.residual_add(b, r, "tanh", backend=backend).sum().backward()
        torch.cuda.synchronize()
        print(f"{backend:<10} {(time.perf_counter() - t) / n * 1e6:7.1f} us/call")


def compile_dynamic(backend: str = "triton") -> None:
    print(f"## torch.compile(fullgraph=True, dynamic=True) fwd+bwd, backend={backend}, one op at a time")

    def mk(*shape):
        return torch.randn(*shape, device="cuda", requires_grad=True)

    cases = {
        "residual_add": lambda n: (
            lambda b, r: ops.residual_add(b, r, "tanh", False, backend=backend).square().sum(),
            (mk(n, 3, 8, 8), mk(n, 3, 8, 8)),
        ),
        "style_loss": lambda n: (
            lambda a, c: ops.style_loss(a, c, backend=backend),
            (mk(n, 70, 9, 9), mk(n, 70, 9, 9)),
        ),
        "interpolate": lambda n: (
            lambda a, c: ops.interpolate(a, c, torch.rand(n, device="cuda"), backend=backend).square().sum(),
            (mk(n, 3, 16, 16), mk(n, 3, 16, 16)),
        ),
        "grad_norm_penalty": lambda n: (
            lambda a: ops.grad_norm_penalty(a, backend=backend),
            (mk(n, 3, 16, 16),),
        ),
        "feature_regularizer": lambda n: (
            lambda a, c: ops.feature_regularizer([a], [c], backend=backend),
            (mk(n, 77), mk(n, 77)),
        ),
    }
    for name, make in cases.items():
        torch._dynamo.reset()
        try:
            for n in (3, 5):
                fn, args = make(n)
                compiled = torch.compile(fn, fullgraph=True, dynamic=True)
                want = torch.autograd.grad(fn(*args), args)
                got = torch.autograd.grad(compiled(*args), args)
                for w, g in zip(want, got, strict=True):
                    torch.testing.assert_close(g, w)
            print(f"{name:<20} ok")
        except Exception as e:
            msg = str(e).strip().splitlines()
            print(f"{name:<20} FAILED {type(e).__name__}: {msg[0][:200] if msg else ''}")


if __name__ == "__main__":
    precision()
    host_overhead()
    compile_dynamic()
