"""gradient_penalty's case: its two fused pieces, the per-sample interpolation ``interpolate`` and
the per-sample gradient norm with its penalty ``grad_norm_penalty`` (WGAN-GP critics: the SCoGAN/
CoGAN and ACL-GAN-GP systems; the double backward through the critic stays with autograd)."""

from __future__ import annotations

import torch

from pygan import ops
from pygan.ops._cases import DTYPES, LAYOUTS, Bench, OpCase, Sample, Variant, apply_layout, f64, make, shapes4


def _shapes(small: bool):
    from hypothesis import strategies as st

    if small:
        return st.one_of(
            shapes4(max_hw=11),
            st.tuples(st.sampled_from((0, 1, 2, 7))),
            st.tuples(st.sampled_from((1, 3)), st.sampled_from((1, 300))),
        )
    return st.one_of(
        shapes4(max_hw=17),
        st.tuples(st.sampled_from((0, 1, 2, 7, 1000))),
        st.tuples(st.sampled_from((1, 3, 64)), st.sampled_from((0, 1, 63, 64, 65, 3000, 4100))),
    )


def _interp(shape, dtype, layouts, needs, seed, device):
    g = torch.Generator().manual_seed(seed)
    alpha = torch.rand(shape[0], generator=g, dtype=torch.float64).to(dtype).to(device)
    return Sample(
        fn=lambda backend: lambda r, f: ops.interpolate(r, f, alpha, backend=backend),
        ref=lambda r, f: ops.interpolate_ref(r, f, alpha.to(r.dtype)),
        inputs=[
            make(shape, dtype, seed, layouts[0], device=device),
            make(shape, dtype, seed + 1, layouts[1], device=device),
        ],
        needs=list(needs),
        grad_out=make(shape, dtype, seed + 2, layouts[2], device=device),
        dtype=dtype,
        names=["out", "grad_real", "grad_fake"],
    )


def interpolate_samples(device: str, small: bool):
    """Rank 1, 2 and 4 shapes (odd, prime, empty, long rows), three layouts, each side's gradient
    needed or not; alpha drawn per sample."""
    from hypothesis import strategies as st

    return st.builds(
        _interp,
        shape=_shapes(small),
        dtype=st.sampled_from(DTYPES),
        layouts=st.tuples(*[st.sampled_from(LAYOUTS)] * 3),
        needs=st.sampled_from([(True, True), (True, False), (False, True)]),
        seed=st.integers(0, 2**31 - 1),
        device=st.just(device),
    )


def _penalty(shape, dtype, layout, target, weight, one_sided, norm_weight, seed, device):
    grads = make(shape, dtype, seed, layout, device=device)

    def loss(fn):
        def f(x):
            pen, norms = fn(x, target, weight, one_sided, return_norms=True)
            # The norms output gets a gradient too (when norm_weight != 0).
            return pen + (norms * norm_weight).sum().to(pen.dtype) if norm_weight else pen

        return f

    def check(backend):
        if backend == "reference":  # float32 norms for 16-bit inputs are the kernels' contract
            return
        _, norms = ops.grad_norm_penalty(grads, target, weight, one_sided, return_norms=True, backend=backend)
        _, want = ops.grad_norm_penalty_ref(grads.double(), return_norms=True)
        assert norms.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        tol = 1e-12 if dtype == torch.float64 else 2e-6
        torch.testing.assert_close(norms.double(), want, rtol=tol, atol=tol)

    return Sample(
        fn=lambda backend: loss(lambda *a, **k: ops.grad_norm_penalty(*a, **k, backend=backend)),
        ref=loss(ops.grad_norm_penalty_ref),
        inputs=[grads],
        needs=[True],
        grad_out=None,
        dtype=dtype,
        names=["penalty", "grad"],
        check=check,
    )


def grad_norm_penalty_samples(device: str, small: bool):
    """The shapes of interpolate, targets 0/1/2.5, two weights, one- and two-sided, with and without
    a gradient into the returned norms; the norms themselves checked in float32/float64."""
    from hypothesis import strategies as st

    return st.builds(
        _penalty,
        shape=_shapes(small),
        dtype=st.sampled_from(DTYPES),
        layout=st.sampled_from(LAYOUTS),
        target=st.sampled_from([0.0, 1.0, 2.5]),
        weight=st.sampled_from([10.0, 0.3]),
        one_sided=st.booleans(),
        norm_weight=st.sampled_from([0.0, 0.7]),
        seed=st.integers(0, 2**31 - 1),
        device=st.just(device),
    )


def _norm_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def opcheck(device: str) -> list[tuple[str, tuple, bool]]:
    def r(*s, dtype=torch.float32):
        return torch.randn(*s, device=device, dtype=dtype)

    cases = []
    for layout in ("contiguous", "channels_last", "strided", "expanded"):
        real = apply_layout(r(3, 5, 7, 2), layout).requires_grad_()
        fake = apply_layout(r(3, 5, 7, 2), "contiguous" if layout == "strided" else layout)
        alpha = torch.rand(3, device=device, requires_grad=True)
        cases.append(("interpolate", (real, fake.requires_grad_(), alpha)))
        grad = apply_layout(r(3, 5, 7, 2), layout).requires_grad_()
        for need in ((True, True), (True, False), (False, True)):
            cases.append(("interpolate_backward", (grad, alpha, *need)))
        for dtype in (torch.float32, torch.float64, torch.bfloat16):
            grads = apply_layout(r(3, 5, 7, 2, dtype=dtype), layout).requires_grad_()
            cases.append(("grad_norm_penalty", (grads, 1.0, 10.0, False)))
            cases.append(("grad_norm_penalty", (grads, 0.5, 2.0, True)))
            nd = _norm_dtype(dtype)
            norms = torch.rand(3, dtype=nd, device=device).add_(0.5).requires_grad_()
            gn = r(3, dtype=nd).requires_grad_()
            gp = torch.tensor(1.0, dtype=dtype, device=device).requires_grad_()
            cases.append(("grad_norm_penalty_backward", (gp, gn, grads, norms, 1.0, 10.0, False)))
    # The samples that also run under Triton's interpreter (slow per launch).
    basic = [
        (
            "interpolate",
            (r(3, 4, 5).requires_grad_(), r(3, 4, 5).requires_grad_(), torch.rand(3, device=device)),
        ),
        ("interpolate", (r(3, 4, 5).requires_grad_(), r(3, 4, 5).requires_grad_(), r(3).sigmoid())),
        ("interpolate_backward", (r(3, 4, 5).requires_grad_(), torch.rand(3, device=device), True, True)),
        ("interpolate_backward", (r(3, 4, 5), r(3).sigmoid(), True, True)),
        ("grad_norm_penalty", (r(3, 4, 5).requires_grad_(), 1.0, 10.0, False)),
        ("grad_norm_penalty_backward", (r(()), r(3), r(3, 4, 5), r(3).abs(), 1.0, 10.0, True)),
    ]
    return [(n, a, False) for n, a in cases] + [(n, a, True) for n, a in basic]


def gradcheck(backend: str, device: str = "cpu"):
    r, f, a = (
        f64(3, 2, 2, device=device),
        f64(3, 2, 2, seed=1, device=device),
        f64(3, seed=2, device=device),
    )
    g = f64(3, 2, 2, seed=3, device=device)
    # grad_norm_penalty's backward op has autograd formulas too, so the penalty is differentiable
    # twice (a third-order derivative of the penalty).
    return [
        ("interpolate", lambda *t: ops.interpolate(*t, backend=backend), (r, f, a), True),
        ("penalty", lambda x: ops.grad_norm_penalty(x, 0.2, 10.0, backend=backend), (g,), True),
        (
            "norms",
            lambda x: ops.grad_norm_penalty(x, 0.2, 10.0, True, return_norms=True, backend=backend)[1],
            (g,),
            True,
        ),
        ("one-sided", lambda x: ops.grad_norm_penalty(x, 0.2, 10.0, True, backend=backend), (g,), True),
    ]


def _compile_fn(backend):
    def f(real, fake, alpha):
        x = ops.interpolate(real, fake, alpha, backend=backend)
        p, n = ops.grad_norm_penalty(x, 1.0, 10.0, True, return_norms=True, backend=backend)
        return p + n.sum() + ops.grad_norm_penalty(x, backend=backend)

    return f


def _compile_calls(device):
    return [
        [
            make(shape, torch.float32, 1, device=device).requires_grad_(),
            make(shape, torch.float32, 2, device=device).requires_grad_(),
            torch.rand(shape[0], device=device).requires_grad_(),
        ]
        for shape in ((4, 3, 8, 8), (5, 3, 7, 9), (3, 3, 16, 16))
    ]


BENCH_SIZES = {"paper": (64, 3, 128, 128), "model": (64, 3, 32, 32), "large": (256, 3, 512, 512)}


def _bench_tail(sizes, dtype, device):
    g = torch.randn(*BENCH_SIZES[sizes], dtype=dtype, device=device).requires_grad_()

    def call(fn):
        return fn(g, 1.0, 10.0)

    # fwd: read g; bwd: read g, write grad.
    return [g], call, 3 * g.numel() * g.element_size(), 0


def _bench_interp(sizes, dtype, device):
    shape = BENCH_SIZES[sizes]
    real = torch.randn(*shape, dtype=dtype, device=device).requires_grad_()
    fake = torch.randn(*shape, dtype=dtype, device=device).requires_grad_()
    alpha = torch.rand(shape[0], dtype=dtype, device=device)

    def call(fn):
        return fn(real, fake, alpha)

    # fwd: read 2, write 1; bwd: read grad, write 2.
    return [real, fake], call, 6 * real.numel() * real.element_size(), 0


CASE = OpCase(
    name="gradient_penalty",
    variants=[
        Variant(
            "interpolate",
            "interpolate",
            interpolate_samples,
            {"cpu/cpp": 30, "cpu/triton": 500, "cuda/cuda": 30, "cuda/triton": 30},
        ),
        Variant(
            "grad_norm_penalty",
            "grad_norm_penalty",
            grad_norm_penalty_samples,
            {"cpu/cpp": 30, "cpu/triton": 500, "cuda/cuda": 30, "cuda/triton": 30},
        ),
    ],
    opcheck=opcheck,
    gradcheck=gradcheck,
    compile=(_compile_fn, _compile_calls),
    bench_sizes=BENCH_SIZES,
    bench=[
        Bench("GP tail (norm+penalty)", "grad_norm_penalty", _bench_tail),
        Bench("GP interpolate", "interpolate", _bench_interp),
    ],
)
