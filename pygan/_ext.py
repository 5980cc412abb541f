"""Loading pygan's native libraries (built from csrc/ by setup.py or CMakeLists.txt).

``pygan._C`` holds every ``pygan::`` schema. The CPU kernels are built once per CPU capability
(``pygan._cpu_default``, ``_cpu_avx2``, ``_cpu_avx512``); exactly one is loaded, the best the running
CPU supports as torch reports it (``torch.backends.cpu.get_cpu_capability()``, which honours the
``ATEN_CPU_CAPABILITY`` environment variable, e.g. ``ATEN_CPU_CAPABILITY=default`` to force the
portable build). ``pygan._cuda`` holds the CUDA kernels when they were built.

When the libraries are missing (a source checkout that was never built), ``import pygan`` still works:
every op runs its pure-PyTorch reference and one warning says how to build.
"""

from __future__ import annotations

import importlib.util
import warnings

import torch

__all__ = ["BUILD_HINT", "cpu_capability", "cuda_loaded", "info", "load_error", "native_loaded"]

BUILD_HINT = "pip install torch==<your torch> && pip install --no-build-isolation -e ."

# Which CPU builds to try, best first, for each capability torch reports.
_CAPABILITY_ORDER = {
    "AVX512": ("avx512", "avx2", "default"),
    "AVX2": ("avx2", "default"),
}

_state: dict = {"native": False, "cpu": None, "cuda": False, "error": None, "cuda_error": None}


def _library_path(name: str) -> str | None:
    spec = importlib.util.find_spec(f"pygan.{name}")
    return spec.origin if spec is not None and spec.origin else None


def _load() -> None:
    try:
        from pygan import _C  # noqa: F401  (registers the schemas)
    except ImportError as exc:
        _state["error"] = f"pygan._C could not be imported ({exc})"
        return
    capability = torch.backends.cpu.get_cpu_capability()
    for cap in _CAPABILITY_ORDER.get(capability, ("default",)):
        path = _library_path(f"_cpu_{cap}")
        if path is None:
            continue
        try:
            torch.ops.load_library(path)
        except OSError as exc:  # pragma: no cover - a broken build
            _state["error"] = f"{path} could not be loaded ({exc})"
            return
        _state["cpu"] = cap
        break
    else:
        _state["error"] = "no CPU kernel library (pygan/_cpu_*.so) was found next to pygan._C"
        return
    _state["native"] = True
    path = _library_path("_cuda")
    if path is not None and torch.cuda.is_available():
        try:
            torch.ops.load_library(path)
        except OSError as exc:  # e.g. built against another torch/CUDA: the CPU kernels still work
            _state["cuda_error"] = f"{path} could not be loaded ({exc})"
            warnings.warn(
                f"pygan: the CUDA kernels could not be loaded: {_state['cuda_error']}. CUDA tensors use "
                f"the Triton or reference backends; rebuild with: {BUILD_HINT}",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        _state["cuda"] = True


_load()
if not _state["native"]:
    warnings.warn(
        f"pygan: the native extension is not built: {_state['error']}. Every op falls back to its "
        f"pure-PyTorch reference (correct, not fused). Build it with: {BUILD_HINT}",
        RuntimeWarning,
        stacklevel=2,
    )


def native_loaded() -> bool:
    """True when the C++ kernels (``torch.ops.pygan.*`` on CPU) are available."""
    return _state["native"]


def cuda_loaded() -> bool:
    """True when the CUDA C++ kernels are loaded (a CUDA build on a machine with a GPU)."""
    return _state["cuda"]


def cpu_capability() -> str | None:
    """The CPU kernel build in use: ``'avx512'``, ``'avx2'``, ``'default'`` or None (not built)."""
    return _state["cpu"]


def load_error() -> str | None:
    """Why the native extension is not available, or None."""
    return _state["error"]


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere), for benchmark records."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "cpu"


def info() -> dict:
    """A summary of what pygan runs on here."""
    return {
        "native": _state["native"],
        "cpu_capability": _state["cpu"],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda": _state["cuda"],
        "error": _state["error"],
        **({"cuda_error": _state["cuda_error"]} if _state["cuda_error"] else {}),
    }
