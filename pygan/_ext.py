"""Loading pygan's native libraries (built from csrc/ by setup.py or CMakeLists.txt).

``pygan._C`` holds every ``pygan::`` schema. The CPU kernels are built once per CPU capability
(``pygan._cpu_default``, ``_cpu_avx2``, ``_cpu_avx512``); exactly one is loaded, the best the running
CPU supports as torch reports it (``torch.backends.cpu.get_cpu_capability()``, which honours the
``ATEN_CPU_CAPABILITY`` environment variable, e.g. ``ATEN_CPU_CAPABILITY=default`` to force the
portable build). ``pygan._cuda`` holds the CUDA kernels when they were built.

setup.py records beside the libraries (``pygan/_build_info.json``) the torch they were compiled
against. A C++ extension only works with the torch it was built with, so libraries built against
another torch release are not loaded at all (loading them can fail with undefined symbols, or worse):
one warning names both versions and the exact command that rebuilds pygan, and every op runs its
pure-PyTorch reference (Triton where selected). Libraries without a record (a CMake build in place)
are loaded as before; if that fails, the warning says so and gives the same command.

Without native libraries (a pure-Python install, ``PYGAN_BUILD_NATIVE=0``; no compiler at install
time; a checkout never built) ``import pygan`` still works; :func:`info` says which kernels are
present and why the others are not.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import sys
import warnings

import torch

__all__ = [
    "BUILD_HINT",
    "MIN_TORCH",
    "cpu_capability",
    "cuda_loaded",
    "info",
    "load_error",
    "native_loaded",
    "rebuild_command",
]

MIN_TORCH = (2, 6)  # setup.py's MIN_TORCH
_HERE = os.path.dirname(os.path.abspath(__file__))
_BUILD_INFO = os.path.join(_HERE, "_build_info.json")

# Which CPU builds to try, best first, for each capability torch reports.
_CAPABILITY_ORDER = {
    "AVX512": ("avx512", "avx2", "default"),
    "AVX2": ("avx2", "default"),
}

_state: dict = {
    "native": False,
    "cpu": None,
    "cuda": False,
    "error": None,
    "cuda_error": None,
    "build": None,
}


def _release(version: str) -> tuple[tuple[int, ...], bool]:
    """(numeric release, is a pre-release/dev/nightly) of a torch version string; local part ignored."""
    base = version.split("+", 1)[0]
    m = re.match(r"(\d+(?:\.\d+)*)(.*)$", base)
    if not m:
        return (), True
    return tuple(int(p) for p in m.group(1).split(".")), bool(m.group(2))


if _release(torch.__version__)[0][:2] < MIN_TORCH:
    raise ImportError(
        f"pygan needs torch >= {'.'.join(map(str, MIN_TORCH))}; this is torch {torch.__version__}"
    )


def torch_compatible(built: str, running: str) -> bool:
    """Whether libraries built against torch ``built`` may be loaded into torch ``running``: the same
    major.minor release (PyTorch keeps its C++ ABI within a minor series; the local tag, e.g. +cpu or
    +cu130, does not change the CPU ABI), and exactly the same version for pre-releases and nightlies."""
    (b, b_pre), (r, r_pre) = _release(built), _release(running)
    if not b or not r:
        return False
    if b_pre or r_pre:
        return built.split("+", 1)[0] == running.split("+", 1)[0]
    return b[:2] == r[:2]


def _source_root() -> str | None:
    """The checkout pygan is imported from (setup.py and csrc/ beside the package), if any."""
    root = os.path.dirname(_HERE)
    if os.path.isfile(os.path.join(root, "setup.py")) and os.path.isdir(os.path.join(root, "csrc")):
        return root
    return None


def _direct_url() -> dict | None:
    try:
        text = importlib.metadata.distribution("pygan").read_text("direct_url.json")
        return json.loads(text) if text else None
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def rebuild_command() -> str:
    """The command that rebuilds pygan's native libraries against the torch this Python runs, for the
    way pygan was installed (checkout, sdist/directory, or an index)."""
    pip = f"{shlex.quote(sys.executable)} -m pip install --no-build-isolation"
    root = _source_root()
    if root is not None:
        return f"{pip} -e {shlex.quote(root)}"
    url = _direct_url()
    src = (url or {}).get("url", "")
    if src.startswith("file://"):
        path = src[len("file://") :]
        if (url or {}).get("dir_info", {}).get("editable"):
            return f"{pip} -e {shlex.quote(path)}"
        if not path.endswith(".whl"):
            return f"{pip} --force-reinstall --no-deps {shlex.quote(path)}"
    try:
        version = importlib.metadata.version("pygan")
    except importlib.metadata.PackageNotFoundError:
        from pygan import __version__ as version
    return f"{pip} --force-reinstall --no-deps --no-binary pygan pygan=={version}"


BUILD_HINT = rebuild_command()


def _read_build_info() -> dict | None:
    try:
        with open(_BUILD_INFO) as f:
            rec = json.load(f)
        return rec if isinstance(rec, dict) else None
    except (OSError, ValueError):
        return None


def _library_path(name: str) -> str | None:
    """``pygan/<name><extension suffix>`` beside this file (the libraries the build record describes)."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(_HERE, name + suffix)
        if os.path.isfile(path):
            return path
    return None


def _built_against() -> str:
    rec = _state["build"]
    return f"torch {rec['torch']}" if rec and rec.get("torch") else "an unrecorded torch"


def _incompatibility(rec: dict | None) -> str | None:
    """Why libraries with this build record must not be loaded here, or None."""
    if not rec or not rec.get("native") or not rec.get("torch"):
        return None
    if not torch_compatible(rec["torch"], torch.__version__):
        return (
            f"pygan's native kernels were built against torch {rec['torch']}, "
            f"but this is torch {torch.__version__}"
        )
    abi = rec.get("cxx11_abi")
    if abi is not None and bool(abi) != bool(torch._C._GLIBCXX_USE_CXX11_ABI):
        return (
            f"pygan's native kernels were built with _GLIBCXX_USE_CXX11_ABI={int(abi)} "
            f"(torch {rec['torch']}), but this torch {torch.__version__} uses "
            f"{int(torch._C._GLIBCXX_USE_CXX11_ABI)}"
        )
    return None


def _warn(msg: str) -> None:
    warnings.warn(msg, RuntimeWarning, stacklevel=4)


def _load() -> None:
    rec = _read_build_info()
    _state["build"] = rec
    c_path = _library_path("_C")
    if c_path is None:
        if rec is not None and not rec.get("native"):
            _state["error"] = f"pygan was installed without native kernels: {rec.get('reason')}"
            if not rec.get("chosen"):
                _warn(
                    f"{_state['error']}. Every op runs its pure-PyTorch reference (Triton with "
                    f"backend='triton'). To build the kernels, make that possible and run: {BUILD_HINT} "
                    "(or reinstall with PYGAN_BUILD_NATIVE=0 to choose the pure-Python install)."
                )
        else:
            _state["error"] = "the native extension is not built (no pygan/_C*.so)"
            _warn(
                f"pygan: {_state['error']}. Every op falls back to its pure-PyTorch reference (correct, "
                f"not fused). Build it with: {BUILD_HINT}"
            )
        return
    mismatch = _incompatibility(rec)
    if mismatch:
        _state["error"] = f"{mismatch}; not loaded"
        _warn(
            f"{mismatch}: they are not loaded (a C++ extension only works with the torch it was built "
            f"with), and every op falls back to its pure-PyTorch reference. Rebuild with: {BUILD_HINT}"
        )
        return
    try:
        importlib.import_module("pygan._C")  # registers the schemas
    except ImportError as exc:
        _state["error"] = f"{c_path} could not be loaded ({exc})"
        _warn(
            f"pygan: the native kernels could not be loaded: {exc}. They were built against "
            f"{_built_against()} and this is torch {torch.__version__} (an undefined symbol usually "
            f"means a different torch). Every op falls back to its pure-PyTorch reference. "
            f"Rebuild with: {BUILD_HINT}"
        )
        return
    capability = torch.backends.cpu.get_cpu_capability()
    for cap in _CAPABILITY_ORDER.get(capability, ("default",)):
        path = _library_path(f"_cpu_{cap}")
        if path is None:
            continue
        try:
            torch.ops.load_library(path)
        except OSError as exc:
            _state["error"] = f"{path} could not be loaded ({exc})"
            _warn(
                f"pygan: the CPU kernels could not be loaded: {exc}. They were built against "
                f"{_built_against()} and this is torch {torch.__version__}. Every op falls back to its "
                f"pure-PyTorch reference. Rebuild with: {BUILD_HINT}"
            )
            return
        _state["cpu"] = cap
        break
    else:
        _state["error"] = "no CPU kernel library (pygan/_cpu_*.so) was found next to pygan._C"
        _warn(
            f"pygan: {_state['error']}. Every op falls back to its pure-PyTorch reference. "
            f"Rebuild with: {BUILD_HINT}"
        )
        return
    _state["native"] = True
    path = _library_path("_cuda")
    if path is not None and torch.cuda.is_available():
        try:
            torch.ops.load_library(path)
        except OSError as exc:  # e.g. built against another CUDA: the CPU kernels still work
            _state["cuda_error"] = f"{path} could not be loaded ({exc})"
            _warn(
                f"pygan: the CUDA kernels could not be loaded: {_state['cuda_error']}. CUDA tensors use "
                f"the Triton or reference backends; rebuild with: {BUILD_HINT}"
            )
            return
        _state["cuda"] = True


_load()


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


def _cuda_status() -> str:
    if _state["cuda"]:
        return "loaded"
    if _state["cuda_error"]:
        return f"not loaded: {_state['cuda_error']}"
    if not _state["native"]:
        return f"not available: {_state['error']}"
    rec = _state["build"] or {}
    if _library_path("_cuda") is None:
        return f"not built: {rec.get('cuda_reason') or 'no pygan/_cuda*.so'}"
    if torch.version.cuda is None:
        return f"built, but this torch ({torch.__version__}) has no CUDA"
    return "built, but no CUDA device is visible"


def _triton_status() -> str:
    if importlib.util.find_spec("triton") is None:
        return "not installed: pip install 'pygan[gpu]' (or pip install triton)"
    try:
        version = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    where = (
        "CUDA tensors"
        if torch.cuda.is_available()
        else "no GPU here; CPU tensors only under TRITON_INTERPRET=1"
    )
    return f"installed (triton {version}): backend='triton' ({where})"


def info() -> dict:
    """What pygan runs on here: which kernels are present and, for those that are not, why."""
    cpp = f"loaded ({_state['cpu']} build)" if _state["native"] else f"not available: {_state['error']}"
    rec = _state["build"]
    return {
        "native": _state["native"],
        "cpu_capability": _state["cpu"],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda": _state["cuda"],
        "error": _state["error"],
        **({"cuda_error": _state["cuda_error"]} if _state["cuda_error"] else {}),
        "torch": torch.__version__,
        "built_against": (rec or {}).get("torch"),
        "kernels": {
            "reference": "always available",
            "cpp": cpp,
            "cuda": _cuda_status(),
            "triton": _triton_status(),
        },
    }
