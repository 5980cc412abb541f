"""One declaration per op (the idea of PyTorch's OpInfo and FBGEMM's ``cpu_and_maybe_gpu``): an
:class:`OpCase` says how to draw inputs for an op, which function and reference to compare, which
inputs get gradients, the ``torch.library.opcheck`` samples, the gradcheck and torch.compile calls,
and the benchmark sizes with their bytes/flops model (the tolerances per dtype, :data:`TOLERANCES`,
are one table for all ops). The generic tests (tests/ops/test_ops.py) run every case over every
backend that can run here, on CPU and, when present, CUDA; ``bench/ops.py`` times the same cases.
Each op declares its case in ``pygan/ops/<op>/cases.py`` (``CASE = OpCase(...)``);
:func:`pygan.ops.op_cases` finds them all.

A case module imports only pygan's public API (``pygan.ops``) and this module, and imports
hypothesis inside functions (hypothesis is a test dependency; pygan must import without it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

# (relative tolerance on max|ref|, absolute floor) per dtype: a kernel's error against the float64
# reference may be this, or twice PyTorch's own error in that dtype plus the floor (tests/ops/helpers.py
# has the rule).
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-12, 1e-13),
    torch.float32: (1e-5, 1e-6),
    torch.bfloat16: (2e-2, 1e-3),
    torch.float16: (2e-3, 1e-4),
}
DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
LAYOUTS = ("contiguous", "channels_last", "strided", "permuted", "expanded")
# Odd, prime, unit and zero sizes.
BATCH = (0, 1, 2, 3, 5, 7)


def apply_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """Same values where possible, different strides. ``expanded`` repeats sample 0 over the batch
    (stride 0), so it changes values: build every operand of a call before comparing."""
    if layout == "contiguous":
        return t.contiguous()
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
    if layout == "strided":
        buf = torch.zeros(*t.shape[:-1], 2 * t.shape[-1] + 1, dtype=t.dtype, device=t.device)
        view = buf[..., 1::2]
        view.copy_(t)
        return view
    if layout == "permuted":
        if t.dim() < 2:
            return t
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "expanded":
        if t.dim() == 0 or t.shape[0] == 0:
            return t
        return t[:1].expand(t.shape)
    raise ValueError(layout)


def f64(*shape, seed: int = 0, device="cpu") -> torch.Tensor:
    """Uniform values in [-0.5, 0.5) drawn in float64 from ``seed``, on ``device``, requiring grad: the
    inputs of the cases' gradcheck calls."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g, dtype=torch.float64) - 0.5).to(device).requires_grad_()


def make(shape, dtype, seed: int, layout: str = "contiguous", scale: float = 1.0, device="cpu"):
    """Normal values drawn in float64 from ``seed`` (the same on every device), cast, laid out."""
    g = torch.Generator().manual_seed(seed)
    t = (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)
    return apply_layout(t.to(device), layout)


def shapes4(max_hw: int = 17, batch=BATCH, channels=(1, 2, 3, 5, 7)):
    """A strategy of (N, C, H, W) with odd, prime, unit and (in ``batch``) empty sizes."""
    from hypothesis import strategies as st

    hw = tuple(s for s in (1, 2, 3, 5, 7, 11, 13, 17) if s <= max_hw)
    return st.tuples(
        st.sampled_from(batch), st.sampled_from(channels), st.sampled_from(hw), st.sampled_from(hw)
    )


@dataclass
class Sample:
    """One call to compare: ``fn(backend)(*inputs)`` against ``ref(*inputs)`` on float64 copies (and
    in ``dtype`` for the bound), outputs and the gradients of the inputs with ``needs`` set, with the
    upstream gradient ``grad_out`` (None for a scalar). ``check(backend)``, if given, runs further
    assertions (e.g. an auxiliary output)."""

    fn: Callable[[str], Callable[..., torch.Tensor]]
    ref: Callable[..., torch.Tensor]
    inputs: list[torch.Tensor]
    needs: list[bool]
    grad_out: torch.Tensor | None
    dtype: torch.dtype
    names: list[str]
    check: Callable[[str], None] | None = None


@dataclass
class Variant:
    """A family of samples of one kernel: ``samples(device, small)`` is a hypothesis strategy of
    :class:`Sample` (``small``: shapes for Triton's interpreter); ``examples`` the number of examples
    per ``"<device type>/<backend>"`` (``default`` for the rest)."""

    name: str
    kernel: str  # the torch.ops.pygan op that pygan.ops.available checks
    samples: Callable[[str, bool], Any]
    examples: dict[str, int]
    default_examples: int = 10

    def budget(self, device: str, backend: str) -> int:
        return self.examples.get(f"{torch.device(device).type}/{backend}", self.default_examples)


@dataclass
class Bench:
    """One benchmark row: ``make(sizes, dtype, device)`` -> (inputs needing grad, ``call(fn)`` ->
    output, bytes moved by an ideal fused fwd+bwd, flops or 0); ``op`` is the public function and
    ``shape(sizes)`` the printed shape note (None: the case's ``bench_sizes[sizes]``)."""

    name: str
    op: str
    make: Callable
    shape: Callable[[str], str] | None = None


@dataclass
class OpCase:
    """Everything the tests and benchmarks need to know about one op."""

    name: str
    variants: list[Variant]
    # device -> (namespace-free op name, args, small) triples: every opcheck sample, run for the
    # pygan:: (cpp/cuda) and pygan_triton:: registrations alike; under Triton's interpreter (slow per
    # launch) only the ``small`` ones.
    opcheck: Callable[[str], list[tuple[str, tuple, bool]]]
    # backend -> [(label, f, float64 inputs, also gradgradcheck)]: tiny shapes (Triton's
    # interpreter launches a kernel per numerical-Jacobian column).
    gradcheck: Callable[[str], list[tuple[str, Callable, tuple, bool]]]
    # (backend -> f(*args) returning a scalar loss, device -> argument lists): torch.compile
    # (fullgraph, static and dynamic) must equal eager on each argument list, in turn.
    compile: tuple[Callable[[str], Callable], Callable[[str], list[list]]]
    # Benchmark sizes per size set ("paper", "model", "large") and the rows timed at them.
    bench_sizes: dict[str, Any]
    bench: list[Bench]

    @property
    def kernels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v.kernel for v in self.variants))
