"""pygan: hybrid autoencoder/GAN systems from research papers, on fused kernels.

The fused ops live in :mod:`pygan.ops` (``residual_add``, ``feature_regularizer``,
``gram_matrix``/``style_loss``, ``gradient_penalty``); each has a pure-PyTorch reference
(``<op>_ref``) and native kernels registered as ``torch.ops.pygan.*``. :func:`load_generator`
rebuilds a generator shared with ``pygan export`` (safetensors, no pickle).
"""

from pygan import _ext, ops
from pygan._ext import info
from pygan.export import load_generator

__version__ = "0.1.0"

__all__ = ["__version__", "_ext", "info", "load_generator", "ops"]
