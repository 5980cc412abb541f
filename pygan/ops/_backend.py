"""Which implementation an op call runs on, returned as the callable that runs it.

Order of precedence: the call's ``backend=`` argument, then the ``PYGAN_BACKEND`` environment
variable, then the default for the tensors' device. Backends:

* ``reference`` - the pure-PyTorch reference (``pygan.ops.<op>_ref``); runs anywhere.
* ``cpp``       - the C++ CPU kernels (``torch.ops.pygan.*`` on CPU tensors).
* ``cuda``      - the CUDA C++ kernels (``torch.ops.pygan.*`` on CUDA tensors).
* ``triton``    - the Triton kernels (CUDA tensors; CPU tensors under ``TRITON_INTERPRET=1``).

Each op package registers its implementations once, at import (:func:`register_op`: the reference,
the native ``pygan::`` op, a loader of the Triton op), all with one signature per schema. An op call
asks :func:`implementation` for the callable and calls it. The decision (:func:`select` gives its
name) is memoised per (op, device, ``backend=``, ``PYGAN_BACKEND``) for the backends whose
availability is fixed once pygan is imported (``reference``, ``cpp``, ``cuda``): a call then costs
one dict lookup instead of re-deriving the answer (pygan issue 13). Size-dependent CUDA defaults
(the Gram) and ``triton`` (whose CPU probe reads ``TRITON_INTERPRET`` at call time; its kernels are
imported on first use, so importing pygan never imports triton) are re-derived on every call; so is
everything while ``torch.compile`` traces (the uncached path is the traceable one).

An unknown name, or a backend that cannot run on the tensors' device here, raises ``ValueError``
saying why and what to use instead. Defaults: ``cpp`` on CPU when the native extension is built
and has the op's kernel (``reference`` otherwise); on CUDA the per-op default in
:data:`CUDA_DEFAULTS` (set from H100 measurements, ``bench/results/nvidia-h100-80gb-hbm3.md``), except
that large or 16-bit Gram differences go to Triton (:data:`GRAM_TRITON_MIN_WORK`); ``reference``
where the chosen backend cannot run. ``op`` names are the ``pygan::``
schema names (``residual_add``, ``feature_regularizer``, ``gram_diff``, ``interpolate``,
``grad_norm_penalty``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable
from typing import Any

import torch

from pygan import _ext

__all__ = [
    "BACKENDS",
    "CUDA_DEFAULTS",
    "ENV_VAR",
    "GRAM_TRITON_MIN_WORK",
    "available",
    "cuda_default",
    "has_kernel",
    "implementation",
    "named",
    "register_op",
    "select",
    "triton_reason",
]

BACKENDS = ("reference", "cpp", "triton", "cuda")
ENV_VAR = "PYGAN_BACKEND"

# Per-op default on CUDA tensors, from `bash bench/gpu.sh` on an H100 (bench/results/
# nvidia-h100-80gb-hbm3.md, bench/gpu-notes.md). The memory-bound ops are within 3% of each other
# at large sizes (both 93-100% of copy bandwidth in float32), but the CUDA C++ path costs about half
# the host time per call (fwd+bwd of a (64,3,32,32) residual_add: 233 us vs Triton's 453 us, eager
# 139 us) and holds its bandwidth in bfloat16 (Triton: 71% for feature_regularizer, 48% for the GP
# tail), so "cuda" is the default for all of them. The Gram difference is compute-bound: see
# :func:`cuda_default`. An entry whose backend cannot run here falls back to "reference".
CUDA_DEFAULTS: dict[str, str] = {
    "residual_add": "cuda",
    "feature_regularizer": "cuda",
    "gram_diff": "cuda",
    "interpolate": "cuda",
    "grad_norm_penalty": "cuda",
}

# Gram difference of features [B, C, K]: Triton (tensor cores: 3xTF32 for float32, bf16/fp16 MMA)
# when B*C*C*K reaches this many multiply-adds (float32) or a 16th of it (16-bit), else CUDA C++.
# H100, fwd+bwd with both grads: (64,256,64,64) float32 (1.7e10 MACs) Triton 3.03 ms vs CUDA 4.56 ms
# (eager bmm 5.58 ms); bfloat16 Triton 1.09 ms vs CUDA 4.92 ms (the CUDA kernel upcasts to FFMA);
# (64,64,16,16) float32 (6.7e7 MACs) CUDA 0.24 ms vs Triton 1.13 ms (host-bound).
GRAM_TRITON_MIN_WORK = 1 << 31


def cuda_default(op: str, tensors: Iterable[torch.Tensor]) -> str:
    """The default backend of ``op`` for these CUDA tensors (before the availability check)."""
    name = CUDA_DEFAULTS.get(op, "reference")
    if op == "gram_diff":
        f = next((t for t in tensors if isinstance(t, torch.Tensor)), None)
        if f is not None and f.dim() >= 2 and f.is_floating_point():
            work = f.numel() * f.shape[1]
            small_float = f.dtype in (torch.float16, torch.bfloat16)
            if work >= (GRAM_TRITON_MIN_WORK >> 4 if small_float else GRAM_TRITON_MIN_WORK):
                device = f.device
                if _why_not("triton", device, op) is None:
                    return "triton"
    return name


# find_spec of a top-level package searches sys.path without importing it; read once so that
# select (and with it the probe) stays cheap and traceable by torch.compile.
_TRITON_FOUND = importlib.util.find_spec("triton") is not None


def triton_reason(device: torch.device) -> str | None:
    """None when the Triton kernels can run on tensors on ``device`` here, else why not. On CPU
    tensors they need Triton's interpreter (``TRITON_INTERPRET=1``, set before triton is first
    imported; meant for tests): ``pygan_triton::`` ops are then registered with ``custom_op`` and a
    fake kernel instead of ``triton_op`` (see :mod:`pygan.ops._triton_common`)."""
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


def _native_kernels() -> frozenset[tuple[str, str]]:
    """(op, dispatch key) pairs with a loaded native kernel, read once: the libraries load at import
    (pygan/_ext.py), and a constant set keeps :func:`select` traceable by torch.compile."""
    if not _ext.native_loaded():
        return frozenset()
    found = set()
    for key in ("CPU", "CUDA"):
        for name in torch._C._dispatch_get_registrations_for_dispatch_key(key):
            if name.startswith("pygan::"):
                found.add((name.split("::", 1)[1].split(".", 1)[0], key))
    return frozenset(found)


_KERNELS = _native_kernels()


def has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether ``pygan::<op>`` has a native kernel for ``dispatch_key`` ('CPU' or 'CUDA') loaded."""
    return (op, dispatch_key) in _KERNELS


def _why_not(name: str, device: torch.device, op: str | None = None) -> str | None:
    if name == "reference":
        return None
    if name == "cpp":
        if not _ext.native_loaded():
            return (
                f"the native extension is not built ({_ext.load_error()}); build it with: {_ext.BUILD_HINT}"
            )
        if device.type != "cpu":
            return f"it runs on CPU tensors and these are on {device}; use backend='cuda' or 'triton'"
        if op is not None and not has_kernel(op, "CPU"):
            return "this build has no C++ CPU kernel for it (rebuild pygan from a newer checkout)"
        return None
    if name == "cuda":
        if device.type != "cuda":
            return f"it runs on CUDA tensors and these are on {device}; use backend='cpp' on CPU"
        if not _ext.cuda_loaded():
            return "pygan's CUDA kernels are not built (torch without CUDA, or no nvcc at build time)"
        if op is not None and not has_kernel(op, "CUDA"):
            return "this build has no CUDA kernel for it"
        return None
    return triton_reason(device)


def available(name: str, device: torch.device | str = "cpu", op: str | None = None) -> bool:
    """Whether backend ``name`` can run (``op``, if given) on tensors on ``device`` here."""
    return name in BACKENDS and _why_not(name, torch.device(device), op) is None


def _device_of(tensors: Iterable[torch.Tensor]) -> torch.device:
    for t in tensors:
        if isinstance(t, torch.Tensor):
            return t.device
    return torch.device("cpu")


def select(op: str, tensors: Iterable[torch.Tensor], backend: str | None = None) -> str:
    """The backend's name for one call of ``op`` on ``tensors`` (not memoised: the choice
    :func:`implementation` makes and memoises, for callers that need the name)."""
    tensors = tuple(tensors)
    return _select(op, _device_of(tensors), tensors, backend, _env_plain(backend))


# os.environ keeps its raw entries in a dict (`_data`, POSIX: bytes -> bytes); reading that dict costs
# a sixth of os.environ.get, and os.environ's own setters (monkeypatch.setenv included) update it.
_ENV_DATA = getattr(os.environ, "_data", None)
try:
    _ENV_KEY = os.environ.encodekey(ENV_VAR)  # type: ignore[attr-defined]
    _ENV_DECODE = os.environ.decodevalue  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover - not CPython's os._Environ
    _ENV_DATA = None


def _env_plain(backend) -> str | None:
    """``PYGAN_BACKEND`` when ``backend`` is None (the plain read, for the uncached paths)."""
    return None if backend is not None else os.environ.get(ENV_VAR)


# Backends whose availability cannot change in this process: their decisions are memoised.
_FIXED = frozenset(("reference", "cpp", "cuda"))
# Ops whose CUDA default depends on the tensors' size and dtype (see cuda_default).
_SIZED = frozenset(("gram_diff",))
_is_compiling = torch.compiler.is_compiling


def named(backend: str | None) -> bool:
    """Whether this call names its backend: ``backend=`` or a non-empty ``PYGAN_BACKEND``. Ops whose
    default runs plain PyTorch for some arguments (``residual_add`` without activation) ask this."""
    if backend is not None:
        return True
    if _ENV_DATA is None or _is_compiling():
        return bool(os.environ.get(ENV_VAR))
    return bool(_ENV_DATA.get(_ENV_KEY))


# ---- the implementations: one table per op, filled by the op packages at import --------------------

# op -> {backend name: callable}; "triton" maps to a loader (see register_op).
_IMPLS: dict[str, dict[str, Callable]] = {}
# (op, device, backend=, raw PYGAN_BACKEND) -> the callable chosen, for decisions that cannot change
# in this process: backends in _FIXED, and not a size-dependent default.
_CACHE: dict[tuple, Callable] = {}


def register_op(op: str, reference: Callable, triton_module: Callable[[], Any]) -> None:
    """Registers the implementations of the ``pygan::<op>`` schema, all callable with one signature:
    ``reference`` (pure PyTorch), the native op ``torch.ops.pygan.<op>.default`` (serving ``cpp`` and
    ``cuda``; None without the C++ library, when neither is ever selected) and, for ``triton``, the
    attribute ``<op>`` of the module ``triton_module()`` returns (the op package's function that
    imports its ``triton.py``: called on each Triton call, which is never memoised, so triton is
    imported on first use only; an import statement, which torch.compile traces)."""
    native = getattr(torch.ops.pygan, op).default if _ext.native_loaded() else None

    def triton():
        return getattr(triton_module(), op)

    _IMPLS[op] = {"reference": reference, "cpp": native, "cuda": native, "triton": triton}


def _callable(op: str, name: str) -> Callable:
    fn = _IMPLS[op][name]
    return fn() if name == "triton" else fn


def implementation(
    op: str, device: torch.device, tensors: tuple = (), backend: str | None = None
) -> Callable:
    """The callable that runs a call of ``op`` on tensors on ``device`` (``tensors`` are read only by
    the size-dependent CUDA defaults): :func:`select`'s choice, memoised as the module docstring
    says (one dict lookup per call when the decision is fixed). Raises ``ValueError`` for an
    unknown or unavailable backend, naming ``backend`` or ``PYGAN_BACKEND``; errors are never
    memoised."""
    if _ENV_DATA is None or _is_compiling() or not (backend is None or isinstance(backend, str)):
        return _callable(op, _select(op, device, tensors, backend, _env_plain(backend)))
    raw = None if backend is not None else _ENV_DATA.get(_ENV_KEY)
    key = (op, device, backend, raw)
    fn = _CACHE.get(key)
    if fn is not None:
        return fn
    env = None if raw is None else _ENV_DECODE(raw)
    name = _select(op, device, tensors, backend, env)
    fn = _callable(op, name)
    if name in _FIXED and not (backend is None and not env and device.type == "cuda" and op in _SIZED):
        _CACHE[key] = fn
    return fn


def _select(op: str, device: torch.device, tensors: tuple, backend: str | None, env: str | None) -> str:
    source = "backend"
    name = backend
    if name is None and env:
        name, source = env.strip().lower(), ENV_VAR
    if name is None:
        default = "cpp" if device.type == "cpu" else cuda_default(op, tensors)
        return default if _why_not(default, device, op) is None else "reference"
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"{source} must be one of {list(BACKENDS)}, got {name!r}")
    reason = _why_not(name, device, op)
    if reason is not None:
        raise ValueError(f"{source}={name!r} cannot run {op} here: {reason}")
    return name
