"""residual_add's case: ``out = act(base + residual)`` with ``base`` optionally detached (the
ED//GAN paper's ``Î = I_ED + I_G``, ``I_ED`` detached for G's update)."""

from __future__ import annotations

import torch

from pygan import ops
from pygan.ops._cases import DTYPES, LAYOUTS, Bench, OpCase, Sample, Variant, apply_layout, f64, make, shapes4

ACTS = (None, "tanh", "clamp")


def _sample(shape, dtype, act, detach, layouts, scale, seed, device):
    base = make(shape, dtype, seed, layouts[0], scale, device)
    residual = make(shape, dtype, seed + 1, layouts[1], scale, device)
    return Sample(
        fn=lambda backend: lambda b, r: ops.residual_add(b, r, act, detach, backend=backend),
        ref=lambda b, r: ops.residual_add_ref(b, r, act, detach),
        inputs=[base, residual],
        needs=[not detach, True],
        grad_out=make(shape, dtype, seed + 2, layouts[2], device=device),
        dtype=dtype,
        names=["out", "grad_base", "grad_residual"],
    )


def samples(device: str, small: bool):
    """Rank-4 odd/prime/empty shapes, every dtype, activation and detach, three independent layouts
    (base, residual, upstream gradient), three value scales."""
    from hypothesis import strategies as st

    return st.builds(
        _sample,
        shape=shapes4(max_hw=13 if small else 17),
        dtype=st.sampled_from(DTYPES),
        act=st.sampled_from(ACTS),
        detach=st.booleans(),
        layouts=st.tuples(*[st.sampled_from(LAYOUTS)] * 3),
        scale=st.sampled_from([0.3, 1.0, 2.0, 4.0]),
        seed=st.integers(0, 2**31 - 1),
        device=st.just(device),
    )


def _tail(n, dtype, act, seed, device):
    return _sample((n,), dtype, act, False, ("contiguous",) * 3, 1.0, seed, device)


def tails(device: str, small: bool):
    """Flat lengths around every SIMD width and the parallel grain, any rank-1 size."""
    from hypothesis import strategies as st

    return st.builds(
        _tail,
        n=st.integers(0, 1100 if small else 5000),
        dtype=st.sampled_from(DTYPES),
        act=st.sampled_from(ACTS),
        seed=st.integers(0, 2**31 - 1),
        device=st.just(device),
    )


def opcheck(device: str) -> list[tuple[str, tuple, bool]]:
    def r(*s):
        return torch.randn(*s, device=device)

    cases = []
    for layout in ("contiguous", "channels_last", "strided", "expanded"):
        for act in ("none", "tanh", "clamp"):
            base = apply_layout(r(3, 5, 7, 2), layout)
            residual = apply_layout(r(3, 5, 7, 2), layout).requires_grad_()
            cases.append(("residual_add", (base, residual, act, layout == "strided")))
    for act in ("none", "tanh", "clamp"):
        grad, out = r(3, 5, 7, 2), torch.rand(3, 5, 7, 2, device=device) * 2 - 1
        cases.append(("residual_add_backward", (grad.requires_grad_(), out.requires_grad_(), act)))
    cl = r(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    # The samples that also run under Triton's interpreter (slow per launch).
    basic = [
        ("residual_add", (r(2, 3, 4, 5), r(2, 3, 4, 5).requires_grad_(), "tanh", False)),
        ("residual_add", (cl, cl.clone().requires_grad_(), "clamp", True)),
        (
            "residual_add_backward",
            (r(2, 3, 4, 5).requires_grad_(), r(2, 3, 4, 5).tanh().requires_grad_(), "tanh"),
        ),
    ]
    return [(n, a, False) for n, a in cases] + [(n, a, True) for n, a in basic]


def gradcheck(backend: str, device: str = "cpu"):
    out = []
    for act in ACTS:
        b, r = f64(2, 3, device=device), f64(2, 3, seed=1, device=device)
        out.append(
            (f"{act}", lambda x, y, a=act: ops.residual_add(x, y, a, False, backend=backend), (b, r), True)
        )
        out.append(
            (
                f"{act}-detached",
                lambda y, a=act, b=b: ops.residual_add(b.detach(), y, a, True, backend=backend),
                (r,),
                True,
            )
        )
    return out


def _compile_fn(backend):
    def f(b, r):
        return ops.residual_add(b, r, "tanh", detach_base=False, backend=backend).square().sum()

    return f


def _compile_calls(device):
    return [
        [make(s, torch.float32, i, device=device).requires_grad_() for i in (1, 2)]
        for s in ((4, 3, 8, 8), (5, 3, 7, 9))
    ]


BENCH_SIZES = {
    "paper": (64, 3, 128, 128),  # the CPU size
    "model": (64, 3, 32, 32),  # the models' own 32x32 digits/DCGAN layers
    "large": (256, 3, 512, 512),  # GPU-filling
}


def _bench(sizes, dtype, device):
    shape = BENCH_SIZES[sizes]
    base = torch.randn(*shape, dtype=dtype, device=device)
    res = torch.randn(*shape, dtype=dtype, device=device).requires_grad_()
    el = base.element_size()

    def call(fn):
        return fn(base, res, "tanh", True)

    # fwd: read 2, write 1; bwd: read grad + out, write 1.
    return [res], call, 6 * base.numel() * el, 0


CASE = OpCase(
    name="residual_add",
    variants=[
        Variant(
            "main",
            "residual_add",
            samples,
            {"cpu/cpp": 600, "cpu/triton": 800, "cuda/cuda": 30, "cuda/triton": 30},
        ),
        Variant("1d_tails", "residual_add", tails, {"cpu/cpp": 300}),
    ],
    opcheck=opcheck,
    gradcheck=gradcheck,
    compile=(_compile_fn, _compile_calls),
    bench_sizes=BENCH_SIZES,
    bench=[Bench("residual_add tanh", "residual_add", _bench)],
)
