"""pygan's fused ops. Each has a pure-PyTorch reference (``<op>_ref``, the ground truth) and native
kernels registered as ``torch.ops.pygan.*`` (C++ on CPU; CUDA C++ and Triton on GPU), chosen per call
by ``backend=``, the ``PYGAN_BACKEND`` environment variable, or the device default."""

from pygan._ext import cpu_capability, cuda_loaded, native_loaded
from pygan.ops._backend import BACKENDS, available
from pygan.ops.residual import residual_add, residual_add_ref

__all__ = [
    "BACKENDS",
    "available",
    "cpu_capability",
    "cuda_loaded",
    "native_loaded",
    "residual_add",
    "residual_add_ref",
]
