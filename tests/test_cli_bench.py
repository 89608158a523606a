"""bench/cli.py end to end: it runs the real `ctxwatch` program, with and without its runner, and prints every row."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from support.processes import runners_with

from ctxwatch.front import NO_RUNNER_ENV

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_command_line_bench_prints_every_figure_and_stops_its_runner() -> None:
    mark = uuid.uuid4().hex  # in the environment of the runners this run starts, and theirs alone
    done = subprocess.run(
        [sys.executable, str(BENCH / "cli.py"), "--runs", "2"],
        env={**os.environ, "CTXWATCH_TEST_MARK": mark},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
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
    assert not runners_with(f"CTXWATCH_TEST_MARK={mark}")  # the bench's runner is gone
