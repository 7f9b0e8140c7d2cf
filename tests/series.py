"""Replica-count series as the tests judge them: whether one flaps, and a short form of one
for a failure message. Shared by the unit outage tests and the end-to-end ones."""

from __future__ import annotations

import itertools


def direction_changes(values: list[int]) -> int:
    """How often a sequence turns from rising to falling or back (0: monotonic)."""
    moves = [b - a for a, b in itertools.pairwise(values) if b != a]
    return sum(1 for a, b in itertools.pairwise(moves) if (a > 0) != (b > 0))


def runs(values: list[int]) -> str:
    """A series, short: "4x12 5x3 3x40" (value x how many samples in a row)."""
    return " ".join(f"{v}x{len(list(g))}" for v, g in itertools.groupby(values))
