"""feature_regularizer's case: ``sum_k w_k * reduce(|a_k - b_k|^p)`` over layers (the SCoGAN
paper's feature regulariser, the distance between two generators' early layers)."""

from __future__ import annotations

import torch

from pygan import ops
from pygan.ops._cases import DTYPES, LAYOUTS, Bench, OpCase, Sample, Variant, apply_layout, f64, make, shapes4


def _sample(shapes, dtype, p, reduction, weighted, detach_b, layout_a, layout_b, seed, device):
    k = len(shapes)
    a = [make(s, dtype, seed + i, layout_a, device=device) for i, s in enumerate(shapes)]
    b = [make(s, dtype, seed + 100 + i, layout_b, device=device) for i, s in enumerate(shapes)]
    w = [0.5 + 0.37 * i for i in range(k)] if weighted else None
    return Sample(
        fn=lambda backend: (
            lambda *t: ops.feature_regularizer(
                list(t[:k]), list(t[k:]), p, reduction, w, detach_b, backend=backend
            )
        ),
        ref=lambda *t: ops.feature_regularizer_ref(list(t[:k]), list(t[k:]), p, reduction, w, detach_b),
        inputs=a + b,
        needs=[True] * k + [not detach_b] * k,
        grad_out=None,
        dtype=dtype,
        names=["value"] + [f"grad_a{i}" for i in range(k)] + [f"grad_b{i}" for i in range(k)],
    )


def samples(device: str, small: bool):
    """1-3 layers of odd/prime/empty rank-4 shapes, p 1 and 2, both reductions, weights or none,
    b detached or not, a layout for the a side and one for the b side."""
    from hypothesis import strategies as st

    layer = shapes4(max_hw=11, batch=(0, 1, 2, 3)) if small else shapes4(max_hw=17, batch=(0, 1, 2, 3, 5))
    return st.builds(
        _sample,
        shapes=st.lists(layer, min_size=1, max_size=3),
        dtype=st.sampled_from(DTYPES),
        p=st.sampled_from([1, 2]),
        reduction=st.sampled_from(["mean", "sum"]),
        weighted=st.booleans(),
        detach_b=st.booleans(),
        layout_a=st.sampled_from(LAYOUTS),
        layout_b=st.sampled_from(LAYOUTS),
        seed=st.integers(0, 2**31 - 1),
        device=st.just(device),
    )


# (layout of a, layout of b, p, reduction, need_a, need_b for the backward op)
_OPCHECK_LAYOUTS = [
    ("contiguous", "contiguous", 2, "mean", True, True),
    ("channels_last", "channels_last", 1, "sum", True, False),
    ("channels_last", "contiguous", 2, "sum", False, True),
    ("strided", "expanded", 1, "mean", True, True),
    ("permuted", "permuted", 2, "mean", True, False),
]


def opcheck(device: str) -> list[tuple[str, tuple, bool]]:
    def r(*s):
        return torch.randn(*s, device=device)

    cases = []
    g = torch.Generator().manual_seed(0)
    for layout_a, layout_b, p, reduction, need_a, need_b in _OPCHECK_LAYOUTS:
        shapes = [(3, 5, 4, 2), (2, 3, 3, 3)]
        a = [apply_layout(torch.randn(s, generator=g).to(device), layout_a).requires_grad_() for s in shapes]
        b = [apply_layout(torch.randn(s, generator=g).to(device), layout_b).requires_grad_() for s in shapes]
        a.append(torch.randn(7, generator=g).to(device).requires_grad_())
        b.append(torch.randn(7, generator=g).to(device))
        weights = [1.0, -0.5, 2.0]
        cases.append(("feature_regularizer", (a, b, p, reduction, weights)))
        grad = torch.tensor(0.5, device=device, requires_grad=True)
        cases.append(("feature_regularizer_backward", (grad, a, b, p, reduction, weights, need_a, need_b)))
    # The samples that also run under Triton's interpreter (slow per launch).
    basic = [
        (
            "feature_regularizer",
            ([r(2, 3).requires_grad_(), r(4)], [r(2, 3), r(4).requires_grad_()], 2, "mean", [1.0, 0.5]),
        ),
        ("feature_regularizer", ([r(2, 3).requires_grad_(), r(4)], [r(2, 3), r(4)], 2, "mean", [1.0, 2.0])),
        ("feature_regularizer_backward", (r(()), [r(2, 3)], [r(2, 3)], 1, "sum", [2.0], True, True)),
    ]
    return [(n, a, False) for n, a in cases] + [(n, a, True) for n, a in basic]


def gradcheck(backend: str, device: str = "cpu"):
    out = []
    for p in (1, 2):
        xs = (
            f64(2, 3, seed=0, device=device),
            f64(4, seed=1, device=device),
            f64(2, 3, seed=2, device=device),
            f64(4, seed=3, device=device),
        )
        out.append(
            (
                f"p{p}",
                lambda *t, p=p: ops.feature_regularizer(
                    list(t[:2]), list(t[2:]), p, "mean", [0.5, 2.0], backend=backend
                ),
                xs,
                True,
            )
        )
    return out


def _compile_fn(backend):
    def f(a0, a1, b0, b1):
        a, b = [a0, a1], [b0, b1]
        return ops.feature_regularizer(
            a, b, 2, "mean", [1.0, 0.5], backend=backend
        ) + ops.feature_regularizer(a, b, 1, "sum", detach_b=True, backend=backend)

    return f


def _compile_calls(device):
    return [
        [
            make((n, 3, 8, 8), torch.float32, 1, device=device).requires_grad_(),
            make((n, w), torch.float32, 2, device=device).requires_grad_(),
            make((n, 3, 8, 8), torch.float32, 3, device=device).requires_grad_(),
            make((n, w), torch.float32, 4, device=device).requires_grad_(),
        ]
        for n, w in ((4, 7), (5, 7), (3, 77))
    ]


BENCH_SIZES = {
    "paper": [(64, 256, 16, 16)] * 3,
    "model": [(64, 512, 4, 4), (64, 256, 8, 8), (64, 128, 16, 16)],
    "large": [(256, 256, 32, 32)] * 3,
}


def _bench(sizes, dtype, device):
    shapes = BENCH_SIZES[sizes]
    a = [torch.randn(*s, dtype=dtype, device=device).requires_grad_() for s in shapes]
    b = [torch.randn(*s, dtype=dtype, device=device).requires_grad_() for s in shapes]
    n = sum(t.numel() for t in a)
    el = a[0].element_size()

    def call(fn):
        return fn(a, b, 2, "mean")

    # fwd: read a, b; bwd: read a, b, write grad_a, grad_b.
    return a + b, call, 6 * n * el, 0


CASE = OpCase(
    name="feature_regularizer",
    variants=[
        Variant(
            "main",
            "feature_regularizer",
            samples,
            {"cpu/cpp": 30, "cpu/triton": 500, "cuda/cuda": 30, "cuda/triton": 30},
        ),
    ],
    opcheck=opcheck,
    gradcheck=gradcheck,
    compile=(_compile_fn, _compile_calls),
    bench_sizes=BENCH_SIZES,
    bench=[
        Bench(
            "feature_regularizer p=2 x3",
            "feature_regularizer",
            _bench,
            lambda s: f"{BENCH_SIZES[s][0]} x3",
        )
    ],
)
