"""Errors the simulator raises for bad input: one readable line each, never a traceback."""

from __future__ import annotations


class SimInputError(Exception):
    """Something the user gave the simulator is unusable (a file, a region, a period, a flag)."""


class OutsideDataError(SimInputError):
    """The requested period is not covered by a data file."""
