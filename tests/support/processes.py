"""Finding the processes a test started, by their command line, from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from ctxwatch.front import RUNNER_MAIN


def running(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def processes_with(*argv_items: bytes, parent: int | None = None) -> list[int]:
    """Pids of the running processes whose command line holds each of
    `argv_items` as a whole argument (and whose parent is `parent`, if given)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if all(item in argv for item in argv_items) and parent in (None, ppid) and running(int(entry)):
            found.append(int(entry))
    return found


def runners_with(environment_entry: str) -> list[int]:
    """The command line's runner processes (a runner's children included) whose environment holds
    `environment_entry` ("NAME=value"): e.g. those started with a given $XDG_RUNTIME_DIR."""
    entry = environment_entry.encode()
    found = []
    for pid in processes_with(RUNNER_MAIN.encode()):
        try:
            if entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append(pid)
        except OSError:
            pass
    return found


def run_marked(*argv: str) -> tuple[subprocess.CompletedProcess[str], list[int]]:
    """Run `python ARGV` (a bench script); its result, and the runners it started that are still alive after it
    (an environment mark they inherit tells them from any other program's runners)."""
    mark = uuid.uuid4().hex
    done = subprocess.run(
        [sys.executable, *argv],
        env={**os.environ, "CTXWATCH_TEST_MARK": mark},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return done, runners_with(f"CTXWATCH_TEST_MARK={mark}")
