"""The root of every error Loopgate raises on purpose (`except LoopgateError` catches them all and
nothing else): a bad configuration file or setting, a refused startup, a domain error of the
resolution API (resolution_api/domain_errors.py), a failed export. Each subclass's message names
the problem (the file, key or setting) as a person reads it."""

from __future__ import annotations


class LoopgateError(Exception):
    """An error Loopgate raises on purpose; `str(err)` names the problem."""
