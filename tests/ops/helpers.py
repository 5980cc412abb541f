"""Shared strategies and comparison rules for the op tests.

Comparison rule (flash-attention's, see ARCHITECTURE.md): a kernel's output in dtype ``d`` is
compared with the float64 reference on the same (upcast) inputs; its max abs error must be at most
twice PyTorch's own max abs error (the reference run in ``d``) plus a small atol, or within the
dtype's relative tolerance of the result's scale. float64 must match to ~1e-12 relative.
"""

from __future__ import annotations

import os

import torch
from hypothesis import strategies as st

DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)

# (relative tolerance on max|ref|, absolute floor) per dtype.
TOLS = {
    torch.float64: (1e-12, 1e-13),
    torch.float32: (1e-5, 1e-6),
    torch.bfloat16: (2e-2, 1e-3),
    torch.float16: (2e-3, 1e-4),
}

_SCALE = {"ci": 1.0, "dev": 5.0, "smoke": 0.05}[os.environ.get("PYGAN_HYPOTHESIS_PROFILE", "ci")]


def examples(n: int) -> int:
    """``n`` examples in the ci profile, scaled for the others."""
    return max(3, int(n * _SCALE))


# Odd, prime, unit and zero sizes; 0 only where the caller allows it.
SMALL = (1, 2, 3, 5, 7, 11, 13)
BATCH = (0, 1, 2, 3, 5, 7)


def shapes4(max_hw: int = 17, batch=BATCH, channels=(1, 2, 3, 5, 7)):
    return st.tuples(
        st.sampled_from(batch),
        st.sampled_from(channels),
        st.sampled_from(tuple(s for s in (1, 2, 3, 5, 7, 11, 13, 17) if s <= max_hw)),
        st.sampled_from(tuple(s for s in (1, 2, 3, 5, 7, 11, 13, 17) if s <= max_hw)),
    )


LAYOUTS = ("contiguous", "channels_last", "strided", "permuted", "expanded")


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


def make(shape, dtype, seed: int, layout: str = "contiguous", scale: float = 1.0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    t = (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)
    return apply_layout(t.to(device), layout)


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.numel() == 0:
        return 0.0
    return (a.double() - b.double()).abs().max().item()


def assert_close(name: str, got: torch.Tensor, ref64: torch.Tensor, torch_lowp: torch.Tensor | None, dtype):
    """The comparison rule above. ``torch_lowp`` is PyTorch's own result in ``dtype`` (None for
    float64)."""
    assert got.shape == ref64.shape, f"{name}: shape {tuple(got.shape)} != {tuple(ref64.shape)}"
    assert got.dtype == dtype, f"{name}: dtype {got.dtype} != {dtype}"
    if got.numel() == 0:
        return
    ref_nan = torch.isnan(ref64)
    assert torch.equal(torch.isnan(got), ref_nan), f"{name}: NaN pattern differs from the reference"
    got, ref64 = got.double()[~ref_nan], ref64[~ref_nan]
    rtol, atol = TOLS[dtype]
    err = max_err(got, ref64)
    scale = ref64.abs().max().item() if ref64.numel() else 0.0
    bound = rtol * scale + atol
    if torch_lowp is not None:
        bound = max(bound, 2 * max_err(torch_lowp.double()[~ref_nan], ref64) + atol)
    assert err <= bound, f"{name}: max abs error {err:.3e} > bound {bound:.3e} ({dtype}, scale {scale:.3e})"
