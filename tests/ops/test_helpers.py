"""The comparison rule itself: it must reject errors beyond its bound (a checker that cannot fail
would make every op test vacuous)."""

import pytest
import torch

from tests.ops.helpers import LAYOUTS, apply_layout, assert_close


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_assert_close_accepts_rounding_and_rejects_real_errors(dtype):
    ref = torch.linspace(-3, 3, 101, dtype=torch.float64)
    low = ref.to(dtype)  # PyTorch's own rounding
    assert_close("ok", low, ref, None if dtype == torch.float64 else low, dtype)
    bad = low.clone()
    bad[17] += 0.05 * 3 if dtype != torch.float64 else 1e-9
    with pytest.raises(AssertionError, match="max abs error"):
        assert_close("bad", bad, ref, None if dtype == torch.float64 else low, dtype)


def test_assert_close_checks_shape_dtype_and_nan_pattern():
    ref = torch.ones(3, dtype=torch.float64)
    with pytest.raises(AssertionError, match="shape"):
        assert_close("s", torch.ones(4), ref, None, torch.float32)
    with pytest.raises(AssertionError, match="dtype"):
        assert_close("d", torch.ones(3, dtype=torch.float64), ref, None, torch.float32)
    with pytest.raises(AssertionError, match="NaN"):
        assert_close("n", torch.tensor([1.0, float("nan"), 1.0]), ref, None, torch.float32)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_keep_values_and_change_strides(layout):
    t = torch.randn(3, 4, 5, 6)
    v = apply_layout(t, layout)
    want = t[:1].expand(t.shape) if layout == "expanded" else t
    assert torch.equal(v, want)
    if layout != "contiguous":
        assert v.stride() != t.stride()
