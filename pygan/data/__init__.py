"""Datasets: embedded (offline) data that installed packages ship, synthetic data, and loaders for
local files a user points at. Nothing here ever downloads.

Everything comes back in one shape (:mod:`pygan.data.core`): a :class:`Dataset` of ``kind``
``images`` / ``points`` / ``paired`` / ``two-domain`` (images ``[N, C, H, W]`` float32 in [-1, 1],
optional labels, paired targets or domain ids), which a :class:`Loader` turns into :class:`Batch`
objects for ``model.training_step`` (image files can be decoded in worker processes:
``Loader(..., workers=N)``). :func:`load_data` takes a name or a path (see
:mod:`pygan.data.registry`; ``pygan list`` prints them).
"""

from pygan.data import transforms
from pygan.data.core import (
    KINDS,
    Batch,
    DataError,
    DataInfo,
    Dataset,
    LazyRows,
    Loader,
    check_workers,
    default_workers,
)
from pygan.data.digits import DIGITS_SPLITS, load_digits
from pygan.data.files import ImageFiles, celeba, image_folder, mnist, pix2pix, read_idx, svhn
from pygan.data.photos import faces, photo_patches
from pygan.data.registry import DATASETS, DataSpec, list_datasets, load_data, parse_spec
from pygan.data.synthetic import mixture, mixture_centers, sample_mixture

__all__ = [
    "DATASETS",
    "DIGITS_SPLITS",
    "KINDS",
    "Batch",
    "DataError",
    "DataInfo",
    "DataSpec",
    "Dataset",
    "ImageFiles",
    "LazyRows",
    "Loader",
    "celeba",
    "check_workers",
    "default_workers",
    "faces",
    "image_folder",
    "list_datasets",
    "load_data",
    "load_digits",
    "mixture",
    "mixture_centers",
    "mnist",
    "parse_spec",
    "photo_patches",
    "pix2pix",
    "read_idx",
    "sample_mixture",
    "svhn",
    "transforms",
]
