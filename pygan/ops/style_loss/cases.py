"""style_loss's case (with gram_matrix): the Gram difference of two feature maps (the SCoGAN
paper's perceptual loss, style term), against a feature map, a fixed one, a precomputed Gram, and
``gram_matrix`` alone with an upstream gradient."""

from __future__ import annotations

import torch

from pygan import ops
from pygan.ops._cases import DTYPES, LAYOUTS, Bench, OpCase, Sample, Variant, apply_layout, f64, make


def _sample(shape, dtype, normalize, reduction, target, layouts, seed, device):
    fx = make(shape, dtype, seed, layouts[0], device=device)
    c = shape[1]
    if target == "none":  # gram_matrix alone, with a random upstream gradient
        return Sample(
            fn=lambda backend: lambda f: ops.gram_matrix(f, normalize, backend=backend),
            ref=lambda f: ops.gram_matrix_ref(f, normalize),
            inputs=[fx],
            needs=[True],
            grad_out=make((shape[0], c, c), dtype, seed + 2, device=device),
            dtype=dtype,
            names=["gram", "grad_fx"],
        )
    if target == "gram":
        tgt = make((c, c), dtype, seed + 1, device=device)
    else:
        tgt = make(shape, dtype, seed + 1, layouts[1], device=device)
    is_gram = target == "gram"
    return Sample(
        fn=lambda backend: (
            lambda f, t: ops.style_loss(f, t, normalize, reduction, target_is_gram=is_gram, backend=backend)
        ),
        ref=lambda f, t: ops.style_loss_ref(f, t, normalize, reduction, target_is_gram=is_gram),
        inputs=[fx, tgt],
        needs=[True, target == "features"],
        grad_out=None,
        dtype=dtype,
        names=["loss", "grad_fx", "grad_target"],
    )


def samples(device: str, small: bool):
    """(N, C, H, W) and (N, C, K) feature maps with C across Triton's 64-wide tiles and K across the
    split-K threshold (``small``: the interpreter's sizes), both normalisations and reductions."""
    from hypothesis import strategies as st

    if small:
        shapes = st.one_of(
            st.tuples(
                st.sampled_from((0, 1, 2, 3)),
                st.sampled_from((1, 2, 3, 5, 17, 33, 70)),
                st.sampled_from((1, 2, 3, 5, 7)),
                st.sampled_from((1, 3, 5)),
            ),
            st.tuples(
                st.sampled_from((1, 2)), st.sampled_from((1, 3, 7, 20)), st.sampled_from((1, 65, 130, 200))
            ),
        )
    else:
        shapes = st.one_of(
            st.tuples(
                st.sampled_from((0, 1, 2, 3)),
                st.sampled_from((1, 2, 3, 5, 17, 33, 64, 65, 70, 130)),
                st.sampled_from((1, 2, 3, 5, 7, 16)),
                st.sampled_from((1, 3, 5, 8)),
            ),
            st.tuples(
                st.sampled_from((1, 2)),
                st.sampled_from((1, 3, 7, 20, 67)),
                st.sampled_from((1, 65, 130, 1000, 4097)),
            ),
        )
    return st.builds(
        _sample,
        shape=shapes,
        dtype=st.sampled_from(DTYPES),
        normalize=st.sampled_from(["chw", "hw"]),
        reduction=st.sampled_from(["mean", "sum"]),
        target=st.sampled_from(["features", "features_fixed", "gram", "none"]),
        layouts=st.tuples(st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS)),
        seed=st.integers(0, 2**31 - 1),
        device=st.just(device),
    )


def opcheck(device: str) -> list[tuple[str, tuple, bool]]:
    def r(*s):
        return torch.randn(*s, device=device)

    cases = []
    for layout in ("contiguous", "channels_last", "strided", "expanded"):
        for with_y in (False, True):
            fx = apply_layout(r(3, 5, 4, 3), layout).detach().requires_grad_()
            fy = apply_layout(r(3, 5, 4, 3), layout).detach().requires_grad_() if with_y else None
            cases.append(("gram_diff", (fx, fy, "chw")))
            cases.append(("gram_diff", (fx.detach(), fy, "hw")))
    for need in ((True, True), (True, False), (False, True), (False, False)):
        for with_y in (False, True):
            grad = r(3, 5, 5).requires_grad_()
            fx = r(3, 5, 7).requires_grad_()
            fy = r(3, 5, 7).requires_grad_() if with_y else None
            cases.append(("gram_diff_backward", (grad, fx, fy, "chw", *need)))
            stride0 = r(()).expand(3, 5, 5)
            cases.append(("gram_diff_backward", (stride0, fx, fy, "hw", *need)))
    # The samples that also run under Triton's interpreter (slow per launch).
    basic = [
        ("gram_diff", (r(2, 3, 4, 5).requires_grad_(), r(2, 3, 4, 5).requires_grad_(), "chw")),
        ("gram_diff", (r(2, 70, 130).requires_grad_(), None, "hw")),
        ("gram_diff_backward", (r(2, 3, 3), r(2, 3, 4, 5), r(2, 3, 4, 5), "hw", True, False)),
        ("gram_diff_backward", (r(2, 3, 3), r(2, 3, 4, 5), r(2, 3, 4, 5), "hw", True, True)),
    ]
    if torch.device(device).type == "cuda":  # split-K with many K blocks (minutes in the interpreter)
        cases.append(("gram_diff", (r(2, 70, 4100).requires_grad_(), None, "hw")))
    return [(n, a, False) for n, a in cases] + [(n, a, True) for n, a in basic]


def gradcheck(backend: str, device: str = "cpu"):
    out = []
    for normalize in ("chw", "hw"):
        fx, fy = f64(2, 2, 3, device=device), f64(2, 2, 3, seed=1, device=device)
        out.append(
            (
                f"style-{normalize}",
                lambda a, b, n=normalize: ops.style_loss(a, b, n, backend=backend),
                (fx, fy),
                True,
            )
        )
        out.append(
            (f"gram-{normalize}", lambda a, n=normalize: ops.gram_matrix(a, n, backend=backend), (fx,), True)
        )
    return out


def _compile_fn(backend):
    def f(fx, fy, gram):
        return (
            ops.style_loss(fx, fy, backend=backend)
            + ops.style_loss(fx, gram, "hw", "sum", backend=backend)
            + ops.gram_matrix(fy, "hw", backend=backend).square().sum()
            + ops.style_loss(fx, fy.detach(), reduction="sum", backend=backend)
        )

    return f


def _compile_calls(device):
    # C = 70 spans two of Triton's 64-wide tiles.
    return [
        [
            make(shape, torch.float32, 1, device=device).requires_grad_(),
            make(shape, torch.float32, 2, device=device).requires_grad_(),
            make((shape[1], shape[1]), torch.float32, 3, device=device).requires_grad_(),
        ]
        for shape in ((4, 6, 8, 8), (3, 6, 5, 7), (2, 40, 3, 3), (3, 70, 9, 9))
    ]


BENCH_SIZES = {"paper": (16, 256, 32, 32), "model": (64, 64, 16, 16), "large": (64, 256, 64, 64)}


def _bench(both: bool):
    def make_(sizes, dtype, device):
        shape = BENCH_SIZES[sizes]
        fx = torch.randn(*shape, dtype=dtype, device=device).requires_grad_()
        fy = torch.randn(*shape, dtype=dtype, device=device).requires_grad_(both)
        b, c = shape[:2]
        k = fx[0, 0].numel()
        el = fx.element_size()

        def call(fn):
            return fn(fx, fy, "chw", "mean")

        # fwd Gram difference (2 GEMMs), bwd one GEMM per side needing grad.
        flops = 2 * b * c * c * k * (2 + (2 if both else 1))
        return ([fx, fy] if both else [fx]), call, (4 if both else 3) * fx.numel() * el, flops

    return make_


CASE = OpCase(
    name="style_loss",
    variants=[
        Variant(
            "main",
            "gram_diff",
            samples,
            {"cpu/cpp": 30, "cpu/triton": 250, "cuda/cuda": 30, "cuda/triton": 30},
        ),
    ],
    opcheck=opcheck,
    gradcheck=gradcheck,
    compile=(_compile_fn, _compile_calls),
    bench_sizes=BENCH_SIZES,
    bench=[
        Bench("style_loss (target fixed)", "style_loss", _bench(False)),
        Bench("style_loss (both grads)", "style_loss", _bench(True)),
    ],
)
