"""bench/cli.py end to end: it runs the real `ctxwatch` program, with and without its runner, and prints every row."""

from __future__ import annotations

import re
from pathlib import Path

from support.processes import run_marked

from ctxwatch.front import NO_RUNNER_ENV

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_command_line_bench_prints_every_figure_and_stops_its_runner() -> None:
    done, runners_left = run_marked(str(BENCH / "cli.py"), "--runs", "2")
    assert done.returncode == 0, done.stderr
    rows = {
        cells[0]: cells[1:]
        for line in done.stdout.splitlines()
        if line.startswith("| `") and len(cells := [c.strip() for c in line.strip("|").split("|")]) == 4
    }
    assert list(rows) == [
        "`python -c pass`",
        '`python -c "import grpc"`',
        "`ctxwatch check -q`",
        "`ctxwatch status`",
        f"`ctxwatch check -q ({NO_RUNNER_ENV}=1)`",
        f"`ctxwatch status ({NO_RUNNER_ENV}=1)`",
        "`ctxwatch check -q, first (starts the runner)`",
    ]
    for cells in rows.values():
        assert all(re.fullmatch(r"\d+ ms", cell) for cell in cells), cells
    assert not runners_left  # the bench's runner is gone
