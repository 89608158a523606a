"""bench/compose.py end to end on a small project: it runs the real CLI (through its runner) and daemon, prints its
table, and stops the runner it started."""

from __future__ import annotations

import re
from pathlib import Path

from support.processes import run_marked

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_compose_bench_prints_every_figure_and_stops_its_runner(tmp_path: Path) -> None:
    done, runners_left = run_marked(
        str(BENCH / "compose.py"), "--services", "3", "--files-per-service", "4", "--queries", "3"
    )
    assert done.returncode == 0, done.stderr
    rows = {
        cells[0]: cells[1]
        for line in done.stdout.splitlines()
        if line.startswith("| ") and len(cells := [c.strip() for c in line.strip("|").split("|")]) == 2
    }
    for figure in ("registration", "`ctxwatch check -q --all`", "`ctxwatch ls`", "GetReports", "daemon RSS"):
        [value] = [value for name, value in rows.items() if figure in name]
        assert re.search(r"\d", value), (figure, value)
    assert "3 services (12 files)" in done.stdout
    assert not runners_left  # the bench's runner is gone
