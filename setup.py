"""Build pygan's native libraries with the *installed* torch.

    pip install torch==2.13.0
    pip install --no-build-isolation -e .

Libraries (all from csrc/, the same folders CMakeLists.txt builds):

* ``pygan._C``            csrc/ops.cpp: every ``pygan::`` schema (TORCH_LIBRARY); csrc/autograd.cpp:
                          their autograd (TORCH_LIBRARY_IMPL(pygan, Autograd), one for every device).
* ``pygan._cpu_<cap>``    csrc/cpu/*.cpp compiled once per CPU capability (default, avx2, avx512 on
                          x86-64), each with that capability's ISA flags and ``CPU_CAPABILITY``
                          define so ``at::vec::Vectorized`` is real SIMD code. pygan/_ext.py loads the
                          best one the running CPU supports (torch.backends.cpu.get_cpu_capability(),
                          which honours ``ATEN_CPU_CAPABILITY``).
* ``pygan._cuda``         csrc/cuda/*.cu, only when torch was built with CUDA and nvcc is found.

Environment knobs: ``PYGAN_CPU_CAPS=default,avx2`` builds a subset (faster development builds);
``PYGAN_BUILD_NATIVE=0`` skips every native library (pure-Python install, reference kernels only);
``PYGAN_BUILD_CUDA=0|1`` forces the CUDA library off/on; ``PYGAN_NVCC_FLAGS`` adds nvcc flags (e.g.
``-Xptxas=-v`` for the register/spill report); ``TORCH_CUDA_ARCH_LIST`` (e.g. ``9.0``) picks the GPU
architectures (default: those of the visible GPUs); ``MAX_JOBS`` as for any torch extension.
"""

import glob
import os
import platform

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))

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


def _extensions():
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, CppExtension, CUDAExtension

    exts = [
        CppExtension(
            "pygan._C",
            _rel([os.path.join(ROOT, "csrc", "ops.cpp"), os.path.join(ROOT, "csrc", "autograd.cpp")]),
            extra_compile_args={"cxx": ["-O2"]},
            py_limited_api=True,
        )
    ]
    cpu_sources = _rel(glob.glob(os.path.join(ROOT, "csrc", "cpu", "*.cpp")))
    for cap in _cpu_caps():
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
    cuda_sources = _rel(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu")))
    want_cuda = os.environ.get("PYGAN_BUILD_CUDA")
    has_cuda = torch.version.cuda is not None and CUDA_HOME is not None
    if cuda_sources and (want_cuda == "1" or (want_cuda is None and has_cuda)):
        exts.append(
            CUDAExtension(
                "pygan._cuda",
                cuda_sources,
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


def _cmdclass():
    from torch.utils.cpp_extension import BuildExtension

    class Build(BuildExtension):
        """One build_temp per library: the CPU kernels compile the same sources with different
        flags, so their objects must not share a directory."""

        def build_extension(self, ext):
            base = self.build_temp
            self.build_temp = os.path.join(base, ext.name.rsplit(".", 1)[-1])
            try:
                super().build_extension(ext)
            finally:
                self.build_temp = base

    return {"build_ext": Build.with_options(no_python_abi_suffix=False)}


if os.environ.get("PYGAN_BUILD_NATIVE", "1") == "0":
    setup()
else:
    setup(
        ext_modules=_extensions(),
        cmdclass=_cmdclass(),
        options={"bdist_wheel": {"py_limited_api": "cp39"}},
    )
