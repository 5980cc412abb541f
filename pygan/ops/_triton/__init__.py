"""pygan's Triton kernels (the ``triton`` backend), one module per op.

This package file is deliberately light: importing it (``pygan.ops`` does, at import) registers the
backend's availability probe with :mod:`pygan.ops._backend` and imports neither ``triton`` nor any
kernel module. The kernel modules (``residual``, ``feature_reg``, ``style``, ``gradient_penalty``)
import triton and register their ops (``torch.ops.pygan_triton.*``) on first use, when an op call
selects ``backend="triton"``.

Where the kernels run:

* CUDA tensors: compiled by Triton; ops registered with ``torch.library.triton_op`` + ``wrap_triton``
  so ``torch.compile`` traces into them.
* CPU tensors with ``TRITON_INTERPRET=1`` (set before triton is first imported): Triton's interpreter
  (numpy), for tests on machines without a GPU. There the ops are registered with
  ``torch.library.custom_op`` + ``register_fake`` instead (under the interpreter ``wrap_triton`` returns
  the raw kernel, which would run on fake tensors), so opcheck and ``torch.compile`` still work.
"""

import importlib.util
import os

import torch

from pygan.ops import _backend

__all__ = ["available_reason"]

# find_spec of a top-level package searches sys.path without importing it; read once so that
# _backend.select (and with it the probe) stays cheap and traceable by torch.compile.
_TRITON_FOUND = importlib.util.find_spec("triton") is not None


def available_reason(device: torch.device) -> str | None:
    """None when the Triton kernels can run on tensors on ``device`` here, else why not."""
    if not _TRITON_FOUND:
        return "triton is not installed (pip install triton, or pygan[gpu])"
    if device.type == "cuda":
        return None
    if device.type == "cpu":
        if os.environ.get("TRITON_INTERPRET") == "1":
            return None
        return (
            "on CPU tensors it needs Triton's interpreter (TRITON_INTERPRET=1, set before triton is "
            "imported; slow, meant for tests); use backend='cpp' on CPU"
        )
    return f"it runs on CUDA tensors (or CPU tensors under TRITON_INTERPRET=1), not on {device}"


_backend.register("triton", available_reason)
