"""Errors that mean "the user asked for something invalid" (the CLI prints one line, exit code 2).

:class:`ConfigError` is a :class:`ValueError`, so library callers that catch ``ValueError`` keep
working; the CLI tells it apart from a failure during a run (exit code 1).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting, flag or config-file value out of its allowed range; the message names it."""


__all__ = ["ConfigError"]
