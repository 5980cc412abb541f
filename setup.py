"""Build pygan's native libraries with the *installed* torch.

    pip install torch==2.13.0                  # or the torch you use
    pip install --no-build-isolation -e .      # or: pip install --no-build-isolation pygan-*.tar.gz

Libraries (all from csrc/, the same folders CMakeLists.txt builds):

* ``pygan._C``            csrc/ops.cpp: every ``pygan::`` schema (TORCH_LIBRARY); csrc/autograd/*.cpp:
                          their autograd, one file per op (TORCH_LIBRARY_IMPL(pygan, Autograd), one
                          for every device).
* ``pygan._cpu_<cap>``    csrc/cpu/*.cpp compiled once per CPU capability (default, avx2, avx512 on
                          x86-64), each with that capability's ISA flags and ``CPU_CAPABILITY``
                          define so ``at::vec::Vectorized`` is real SIMD code. pygan/_ext.py loads the
                          best one the running CPU supports (torch.backends.cpu.get_cpu_capability(),
                          which honours ``ATEN_CPU_CAPABILITY``).
* ``pygan._cuda``         csrc/cuda/*.cu, only when torch was built with CUDA and nvcc is found.

Beside them the build writes ``pygan/_build_info.json``: the torch it compiled against (pygan/_ext.py
refuses to load libraries built against another torch and says how to rebuild), which libraries were
built and, when none or no CUDA library was, why.

Environment knobs:

* ``PYGAN_BUILD_NATIVE``: unset = build the native libraries when torch is importable here and a C++
  compiler is found, otherwise install pure Python (reference + Triton kernels) and say so in one line
  (``pip install -v`` shows it; ``pygan.info()`` and an import-time warning say it too); ``1`` = the
  native libraries are required (a clear error instead of the fall-back); ``0`` = pure-Python install,
  chosen (no compiler, no torch needed at build time, no warning at import).
* ``PYGAN_CPU_CAPS=default,avx2`` builds a subset of the CPU capabilities (faster development builds).
* ``PYGAN_BUILD_CUDA=0|1`` forces the CUDA library off/on; ``PYGAN_NVCC_FLAGS`` adds nvcc flags (e.g.
  ``-Xptxas=-v`` for the register/spill report); ``TORCH_CUDA_ARCH_LIST`` (e.g. ``9.0``) picks the GPU
  architectures (default: those of the visible GPUs); ``MAX_JOBS``, ``CXX`` as for any torch extension.

The oldest torch pygan builds against is ``MIN_TORCH`` (below); an older one is a build error.
"""

import glob
import json
import os
import platform
import re
import shlex
import shutil
import sys

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py

ROOT = os.path.dirname(os.path.abspath(__file__))
MIN_TORCH = (2, 6)
BUILD_INFO = "_build_info.json"
# Commands that compile or install (the fall-back line is printed for these only, not for the
# metadata/sdist steps pip and `build` also run setup.py for).
_BUILD_COMMANDS = {"build", "build_ext", "build_py", "bdist_wheel", "editable_wheel", "develop", "install"}

# Flags per CPU capability: the same sets PyTorch compiles its own kernels with.
CPU_CAPABILITIES = {
    "default": [],
    "avx2": ["-mavx2", "-mfma", "-mf16c", "-mbmi", "-mbmi2", "-mlzcnt"],
    "avx512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-mf16c"],
}
COMMON_CXX = [
    "-O3",
    "-fopenmp",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-Wall",
    "-Wno-unused-function",
    "-Wno-unknown-pragmas",
]


def _rel(paths):
    return sorted(os.path.relpath(p, ROOT) for p in paths)


def _version_tuple(version: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", version)
    if not m:
        raise SystemExit(f"pygan: cannot read torch's version {version!r}")
    return int(m.group(1)), int(m.group(2))


def find_cxx(env=os.environ) -> str | None:
    """The C++ compiler torch's extension build will call (``$CXX``, else ``c++``), or None."""
    cxx = env.get("CXX", "").strip() or "c++"
    words = shlex.split(cxx)
    return shutil.which(words[0]) if words else None


def native_plan(env=os.environ) -> dict:
    """Whether to build the native libraries here: ``{"native": bool, "reason": str | None, "chosen":
    bool}`` (``chosen``: the user asked for a pure-Python install). Raises SystemExit for a torch older
    than MIN_TORCH, for a bad PYGAN_BUILD_NATIVE, and when PYGAN_BUILD_NATIVE=1 cannot be honoured."""
    want = env.get("PYGAN_BUILD_NATIVE", "").strip()
    if want not in ("", "0", "1"):
        raise SystemExit(f"pygan: PYGAN_BUILD_NATIVE must be 0 or 1 (or unset), got {want!r}")
    if want == "0":
        return {"native": False, "reason": "PYGAN_BUILD_NATIVE=0 at install time", "chosen": True}
    try:
        import torch
    except ImportError:
        why = (
            "torch was not importable while pygan was built (pip's build isolation hides your torch: "
            "install with --no-build-isolation)"
        )
        if want == "1":
            raise SystemExit(f"pygan: PYGAN_BUILD_NATIVE=1 but {why}") from None
        return {"native": False, "reason": why, "chosen": False}
    if _version_tuple(torch.__version__) < MIN_TORCH:
        minimum = ".".join(map(str, MIN_TORCH))
        raise SystemExit(
            f"pygan: torch {torch.__version__} is too old: pygan needs torch >= {minimum} "
            f"(install a newer torch, or set PYGAN_BUILD_NATIVE=0 for a pure-Python install, which "
            f"still needs torch >= {minimum} to run)"
        )
    if find_cxx(env) is None:
        cxx = env.get("CXX", "").strip() or "c++"
        why = f"no C++ compiler was found at install time ({cxx!r} is not on PATH; set CXX to one)"
        if want == "1":
            raise SystemExit(f"pygan: PYGAN_BUILD_NATIVE=1 but {why}")
        return {"native": False, "reason": why, "chosen": False}
    return {"native": True, "reason": None, "chosen": False}


def _cpu_caps():
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return ["default"]
    wanted = os.environ.get("PYGAN_CPU_CAPS")
    if not wanted:
        return list(CPU_CAPABILITIES)
    caps = [c.strip().lower() for c in wanted.split(",") if c.strip()]
    unknown = sorted(set(caps) - set(CPU_CAPABILITIES))
    if unknown:
        raise SystemExit(
            f"PYGAN_CPU_CAPS: unknown capability {unknown}; choose from {list(CPU_CAPABILITIES)}"
        )
    return caps


def _cuda_plan() -> tuple[bool, str | None]:
    """Whether to build pygan._cuda, and why not when not."""
    import torch
    from torch.utils.cpp_extension import CUDA_HOME

    if not glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu")):
        return False, "no CUDA sources in this source tree"
    want = os.environ.get("PYGAN_BUILD_CUDA")
    if want == "0":
        return False, "PYGAN_BUILD_CUDA=0 at install time"
    if want == "1":
        return True, None
    if torch.version.cuda is None:
        return False, f"the torch it was built with ({torch.__version__}) has no CUDA"
    if CUDA_HOME is None:
        return False, "nvcc was not found at install time (set CUDA_HOME)"
    return True, None


def _extensions(caps, build_cuda):
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    exts = [
        CppExtension(
            "pygan._C",
            _rel(
                [
                    os.path.join(ROOT, "csrc", "ops.cpp"),
                    *sorted(glob.glob(os.path.join(ROOT, "csrc", "autograd", "*.cpp"))),
                ]
            ),
            extra_compile_args={"cxx": ["-O2"]},
            py_limited_api=True,
        )
    ]
    cpu_sources = _rel(glob.glob(os.path.join(ROOT, "csrc", "cpu", "*.cpp")))
    for cap in caps:
        exts.append(
            CppExtension(
                f"pygan._cpu_{cap}",
                cpu_sources,
                include_dirs=[os.path.join(ROOT, "csrc", "cpu")],
                extra_compile_args={
                    "cxx": COMMON_CXX
                    + CPU_CAPABILITIES[cap]
                    + [f"-DCPU_CAPABILITY={cap.upper()}", f"-DCPU_CAPABILITY_{cap.upper()}"]
                },
                extra_link_args=["-fopenmp"],
                py_limited_api=True,
            )
        )
    if build_cuda:
        exts.append(
            CUDAExtension(
                "pygan._cuda",
                _rel(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu"))),
                include_dirs=[os.path.join(ROOT, "csrc", "cuda")],
                extra_compile_args={
                    "cxx": ["-O3"],
                    "nvcc": [
                        "-O3",
                        "--expt-relaxed-constexpr",
                        "-lineinfo",
                        *os.environ.get("PYGAN_NVCC_FLAGS", "").split(),
                    ],
                },
                py_limited_api=True,
            )
        )
    return exts


def build_record(plan: dict, caps=(), cuda: tuple[bool, str | None] = (False, None)) -> dict:
    """The contents of pygan/_build_info.json."""
    rec = {"native": plan["native"], "reason": plan["reason"], "chosen": plan["chosen"]}
    if plan["native"]:
        import torch

        rec.update(
            torch=torch.__version__,
            torch_cuda=torch.version.cuda,
            cxx11_abi=bool(torch._C._GLIBCXX_USE_CXX11_ABI),
            cpu_capabilities=list(caps),
            cuda=cuda[0],
            cuda_reason=cuda[1],
        )
    return rec


def _write_record(record: dict, dirs) -> None:
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    for d in dict.fromkeys(dirs):  # unique, in order
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, BUILD_INFO), "w") as f:
            f.write(text)


def _cmdclass(plan, record):
    class BuildPy(_build_py):
        """A pure-Python build writes its record (native: false, and why) beside the package."""

        def run(self):
            if not self.editable_mode:
                super().run()
            if not self.distribution.has_ext_modules():
                target = self.get_package_dir("pygan") if self.editable_mode else None
                _write_record(record, [target or os.path.join(self.build_lib, "pygan")])

    cmds = {"build_py": BuildPy}
    if not plan["native"]:
        return cmds

    from torch.utils.cpp_extension import BuildExtension

    class Build(BuildExtension):
        """One build_temp per library (the CPU kernels compile the same sources with different flags,
        so their objects must not share a directory); the record is written only after every
        library built, next to them (the wheel's tree, and the source package when in place)."""

        def build_extension(self, ext):
            base = self.build_temp
            self.build_temp = os.path.join(base, ext.name.rsplit(".", 1)[-1])
            try:
                super().build_extension(ext)
            finally:
                self.build_temp = base

        def run(self):
            super().run()
            dirs = [os.path.join(self.build_lib, "pygan")]
            if self.inplace:
                dirs.append(self.get_finalized_command("build_py").get_package_dir("pygan"))
            _write_record(record, dirs)

    cmds["build_ext"] = Build.with_options(no_python_abi_suffix=False)
    return cmds


def main() -> None:
    plan = native_plan()
    if not plan["native"]:
        if not plan["chosen"] and _BUILD_COMMANDS & set(sys.argv[1:]):
            print(
                f"pygan: installing WITHOUT native kernels: {plan['reason']}. Ops use their PyTorch "
                "reference (and Triton kernels where installed); set PYGAN_BUILD_NATIVE=0 to choose this.",
                file=sys.stderr,
                flush=True,
            )
        setup(cmdclass=_cmdclass(plan, build_record(plan)))
        return
    caps = _cpu_caps()
    cuda = _cuda_plan()
    setup(
        ext_modules=_extensions(caps, cuda[0]),
        cmdclass=_cmdclass(plan, build_record(plan, caps, cuda)),
        options={"bdist_wheel": {"py_limited_api": "cp39"}},
    )


if __name__ == "__main__":
    main()
