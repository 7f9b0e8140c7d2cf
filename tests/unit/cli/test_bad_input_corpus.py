"""Every bad input of the corpus gets one clear line and a non-zero exit, in bounded memory.

The corpus (tests/cases/bad_input.py) covers `wattscale validate`, `wattscale simulate` and
`wattscale signals read`; each case runs through the real entry point, `wattscale.cli.main`.
"""

from __future__ import annotations

import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from tests.cases.bad_input import ALL, BadInput
from wattscale.cli import main

pytestmark = pytest.mark.unit

PEAK_BYTES = 256 * 2**20
"""Far above what any refusal needs (the largest input file is 3 MiB), far below a blow-up."""


def _run(case: BadInput, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    argv = case.write(tmp_path)
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own exit, through OneLineParser
        code = stop.code if isinstance(stop.code, int) else 2
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _error_lines(case: BadInput, output: str) -> list[str]:
    lines = [line for line in output.splitlines() if line.strip()]
    if case.command == "signals":
        # A feed that fails is still shown in the table; the error itself is one line.
        return [line for line in lines if line.startswith("error: ")]
    return lines


@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
def test_bad_input_gets_one_clear_line(
    case: BadInput, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tracemalloc.start()
    try:
        code, output = _run(case, tmp_path, capsys)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code != 0, f"{case.name}: exit 0 for bad input:\n{output}"
    assert "Traceback" not in output
    assert "unexpected" not in output, f"{case.name}: only the last-resort guard caught it"
    lines = _error_lines(case, output)
    assert len(lines) == 1, f"{case.name}: expected one error line, got:\n{output}"
    assert case.says in lines[0], f"{case.name}: {case.says!r} not in {lines[0]!r}"
    assert peak < PEAK_BYTES, f"{case.name}: peak allocation {peak / 2**20:.0f} MiB"


def test_the_corpus_has_at_least_60_cases_across_all_three_commands() -> None:
    per_command = Counter(c.command for c in ALL)
    assert sum(per_command.values()) >= 60
    assert set(per_command) == {"validate", "simulate", "signals"}
    assert min(per_command.values()) >= 15, per_command
    assert len({c.name for c in ALL}) == len(ALL), "case names repeat"
