"""Reading a local weights file (shared by the loaders in :mod:`pygan.backbones`; a module of its own
so that :mod:`~pygan.backbones.taps`, :mod:`~pygan.backbones.vgg` and
:mod:`~pygan.backbones.inception` all use it without importing one another)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["load_state_dict_file"]


def load_state_dict_file(path: str | os.PathLike, what: str, *, name_type: bool = False) -> dict:
    """The state dict in the local file ``path`` (a bare state dict, or a dict holding one under
    ``"state_dict"``), read with ``weights_only=True``; ``FileNotFoundError`` / ``ValueError`` name
    the file and ``what`` it was meant to be (``name_type``: the ``ValueError`` also names the type
    the file held). Nothing is downloaded. Loaders with a friendlier message for a missing file check
    for it first."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} weights file {str(p)!r} does not exist")
    state = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        got = f" (got {type(state).__name__})" if name_type else ""
        raise ValueError(f"{str(p)!r} does not hold a state dict{got}")
    return state
