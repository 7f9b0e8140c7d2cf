"""Errors the simulator raises for bad input: one readable line each, never a traceback."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SimInputError(Exception):
    """Something the user gave the simulator is unusable (a file, a region, a period, a flag)."""


class OutsideDataError(SimInputError):
    """The requested period is not covered by a data file."""


@contextmanager
def csv_problems(path: Path, what: str) -> Iterator[None]:
    """Turn a binary, non-UTF-8 or broken CSV (NUL bytes, a field over the csv module's limit)
    read inside the block into one SimInputError line naming ``path``."""
    try:
        yield
    except UnicodeDecodeError as err:
        raise SimInputError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x}); is it a CSV?"
        ) from None
    except csv.Error as err:
        raise SimInputError(f"{path}: not {what} ({err})") from None
