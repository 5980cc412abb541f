"""Shared pieces of pygan's Triton kernels: op registration (triton_op on GPU, custom_op under the
interpreter), launch sizes, scalar arguments in float64 precision, and the store-side cast.

Facts this relies on (verified with triton 3.9's interpreter):

* Under ``TRITON_INTERPRET=1`` bf16 arithmetic is done on raw bits, so every kernel converts to its
  accumulation type right after ``tl.load``; and the interpreter's float32 -> bfloat16 cast truncates
  instead of rounding to nearest even, so :func:`to_out` rounds explicitly there (on a GPU the plain
  cast rounds to nearest even).
* The interpreter's ``tl.dot`` on bf16/fp16 operands is wrong: kernels upcast to float32 first when
  interpreting (``INTERP`` constexpr).
* Python float kernel arguments are passed as float32. Scalars that must keep float64 precision
  (weights, targets, 1/numel) are passed as a float32 pair ``hi + lo`` (:func:`split_f64`), which
  :func:`f64_arg` recombines (~2^-48 relative, well inside float64 tests' 1e-12).
* ``triton_op`` + ``wrap_triton`` break opcheck's fake-tensor test and ``torch.compile`` under the
  interpreter (``wrap_triton`` returns the raw kernel, which then runs on fake tensors), so there
  each op body is registered with ``torch.library.custom_op`` and an explicit fake kernel instead.
"""

import os

import numpy as np
import torch
import triton
import triton.language as tl
from torch.library import custom_op, triton_op, wrap_triton

from pygan.ops._layout import same_dense_layout

__all__ = [
    "INTERPRET",
    "NAMESPACE",
    "acc_tl",
    "acc_torch",
    "block_1d",
    "dense",
    "f64_arg",
    "launch",
    "launch_flat",
    "num_sms",
    "op",
    "split_f64",
    "to_out",
]

# Read when the kernel modules are first imported; triton itself decides interpretation then too.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
NAMESPACE = "pygan_triton"

# Elements per program of the flat (elementwise / partial-sum) kernels. Under the interpreter the
# cost is per program, so use one huge block; on a GPU 2048 elements over 4 warps gives each thread
# 16 elements (four 16-byte loads per operand in flight). GPU measurements may retune these.
GPU_BLOCK = 2048
GPU_WARPS = 4
INTERP_MAX_BLOCK = 1 << 16


def op(name: str, fake):
    """Decorator registering ``fn`` as ``pygan_triton::<name>``: ``triton_op`` when compiling for a
    GPU, ``custom_op`` with ``fake`` as its fake kernel under the interpreter. Returns the op object
    (call it like the function; ``.register_autograd`` as for any custom op)."""

    def deco(fn):
        qualname = f"{NAMESPACE}::{name}"
        if INTERPRET:
            o = custom_op(qualname, mutates_args=())(fn)
            o.register_fake(fake)
        else:
            o = triton_op(qualname, mutates_args=())(fn)
        return o

    return deco


def launch(kernel):
    """The launchable form of a jit kernel inside an op body."""
    return kernel if INTERPRET else wrap_triton(kernel)


def launch_flat(kernel, n: int, *args, dtype: torch.dtype, **meta) -> None:
    """Launches a flat (elementwise) kernel over ``n`` elements: ``cdiv(n, BLOCK)`` programs, with the
    constexprs every such kernel takes (``ACC`` for ``dtype``, ``INTERP``, ``BLOCK``) and num_warps
    from :func:`block_1d`; ``args`` and ``meta`` are the kernel's own."""
    block, warps = block_1d(n)
    launch(kernel)[(triton.cdiv(n, block),)](
        *args, **meta, ACC=acc_tl(dtype), INTERP=INTERPRET, BLOCK=block, num_warps=warps
    )


def dense(*tensors: torch.Tensor) -> tuple[bool, list[torch.Tensor]]:
    """The layout rule (:mod:`pygan.ops._layout`) on a kernel's operands: ``(keep, operands)`` with
    ``keep = same_dense_layout(*tensors)`` and the operands as they are when ``keep``, else contiguous
    copies (outputs then come from ``empty_like_layout(operand, keep)``)."""
    keep = same_dense_layout(*tensors)
    return keep, [t if keep else t.contiguous() for t in tensors]


def acc_tl(dtype: torch.dtype):
    """Accumulation type: float64 for float64 inputs, else float32."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def acc_torch(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def block_1d(n: int) -> tuple[int, int]:
    """(BLOCK, num_warps) for a flat kernel over ``n`` elements."""
    if INTERPRET:
        return min(max(triton.next_power_of_2(int(n)), 16), INTERP_MAX_BLOCK), 4
    return GPU_BLOCK, GPU_WARPS


_SMS: dict[int, int] = {}


def num_sms(device: torch.device) -> int:
    """Multiprocessors of ``device`` (a small fixed number under the interpreter)."""
    if device.type != "cuda":
        return 2
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _SMS:
        _SMS[index] = torch.cuda.get_device_properties(index).multi_processor_count
    return _SMS[index]


def split_f64(x: float) -> tuple[float, float]:
    """``x`` as two float32 values whose sum in float64 is ``x`` to ~2^-48 relative."""
    x = float(x)
    with np.errstate(over="ignore"):
        hi = float(np.float32(x))
    if not np.isfinite(hi):  # inf, nan (and |x| beyond float32's range: no such scale is sane)
        return hi, 0.0
    return hi, float(np.float32(x - hi))


@triton.jit
def f64_arg(hi, lo, ACC: tl.constexpr):
    """Recombines a :func:`split_f64` pair in the accumulation type."""
    return tl.cast(hi, ACC) + tl.cast(lo, ACC)


@triton.jit
def to_out(x, dtype: tl.constexpr, INTERP: tl.constexpr):
    """Casts a float32/float64 value to the output ``dtype``, rounding to nearest even also for
    bfloat16 under the interpreter (whose own cast truncates)."""
    if INTERP:
        if dtype == tl.bfloat16:
            bits = x.to(tl.float32).to(tl.uint32, bitcast=True)
            bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
            x = tl.where(x != x, x, bits.to(tl.float32, bitcast=True))
    return x.to(dtype)
