"""Datasets: embedded (offline) data that installed packages ship, synthetic data, and loaders for
local files a user points at. Nothing here ever downloads."""

from pygan.data.digits import DIGITS_SPLITS, load_digits

__all__ = ["DIGITS_SPLITS", "load_digits"]
