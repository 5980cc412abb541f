"""Which implementation an op call runs on.

Order of precedence: the call's ``backend=`` argument, then the ``PYGAN_BACKEND`` environment
variable, then the default for the tensors' device. Backends:

* ``reference`` - the pure-PyTorch reference (``pygan.ops.<op>_ref``); runs anywhere.
* ``cpp``       - the C++ CPU kernels (``torch.ops.pygan.*`` on CPU tensors).
* ``cuda``      - the CUDA C++ kernels (``torch.ops.pygan.*`` on CUDA tensors).
* ``triton``    - the Triton kernels (CUDA tensors; CPU tensors under ``TRITON_INTERPRET=1``).

An unknown name, or a backend that cannot run on the tensors' device here, raises ``ValueError``
saying why and what to use instead. Defaults: ``cpp`` on CPU when the native extension is built
(``reference`` otherwise); on CUDA the per-op default in :data:`CUDA_DEFAULTS`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import torch

from pygan import _ext

__all__ = ["BACKENDS", "CUDA_DEFAULTS", "ENV_VAR", "available", "register", "select"]

BACKENDS = ("reference", "cpp", "triton", "cuda")
ENV_VAR = "PYGAN_BACKEND"

# Per-op default on CUDA tensors (fastest measured backend; see bench/results/).
CUDA_DEFAULTS: dict[str, str] = {}

# Extra availability checks contributed by optional backends (e.g. triton), name -> fn(device) -> str|None
# returning None when runnable or the reason it is not.
_PROBES: dict[str, Callable[[torch.device], str | None]] = {}


def register(name: str, probe: Callable[[torch.device], str | None]) -> None:
    """Registers the availability probe of an optional backend (used by the Triton kernels)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}")
    _PROBES[name] = probe


def _why_not(name: str, device: torch.device) -> str | None:
    if name == "reference":
        return None
    if name == "cpp":
        if not _ext.native_loaded():
            return (
                f"the native extension is not built ({_ext.load_error()}); build it with: {_ext.BUILD_HINT}"
            )
        if device.type != "cpu":
            return f"it runs on CPU tensors and these are on {device}; use backend='cuda' or 'triton'"
        return None
    if name == "cuda":
        if device.type != "cuda":
            return f"it runs on CUDA tensors and these are on {device}; use backend='cpp' on CPU"
        if not _ext.cuda_loaded():
            return "pygan's CUDA kernels are not built (torch without CUDA, or no nvcc at build time)"
        return None
    probe = _PROBES.get(name)
    if probe is None:
        return f"the {name} kernels are not available in this install"
    return probe(device)


def available(name: str, device: torch.device | str = "cpu") -> bool:
    """Whether backend ``name`` can run on tensors on ``device`` here."""
    return name in BACKENDS and _why_not(name, torch.device(device)) is None


def _device_of(tensors: Iterable[torch.Tensor]) -> torch.device:
    for t in tensors:
        if isinstance(t, torch.Tensor):
            return t.device
    return torch.device("cpu")


def select(op: str, tensors: Iterable[torch.Tensor], backend: str | None = None) -> str:
    """Resolves the backend for one call of ``op`` on ``tensors``."""
    device = _device_of(tensors)
    source = "backend"
    name = backend
    if name is None:
        env = os.environ.get(ENV_VAR)
        if env:
            name, source = env.strip().lower(), ENV_VAR
    if name is None:
        if device.type == "cpu":
            return "cpp" if _ext.native_loaded() else "reference"
        default = CUDA_DEFAULTS.get(op, "reference")
        return default if _why_not(default, device) is None else "reference"
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"{source} must be one of {list(BACKENDS)}, got {name!r}")
    reason = _why_not(name, device)
    if reason is not None:
        raise ValueError(f"{source}={name!r} cannot run {op} here: {reason}")
    return name
