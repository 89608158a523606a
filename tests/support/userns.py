"""Run a test's function in a process of its own inside a new user
namespace (`unshare --user --map-root-user`).

The kernel counts some limits per user namespace (/proc/sys/user/, e.g.
max_inotify_watches): inside one of its own, a test sets them without
touching the machine's, and they count only what runs in that namespace,
whatever else runs on the machine.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300.0  # a watchdog, not a speed bar

# The child imports the function's module the way pytest does (tests/ on the path) and calls it.
_CALL = (
    "import importlib, sys; sys.path[:0] = [sys.argv[1]]; "
    "getattr(importlib.import_module(sys.argv[2]), sys.argv[3])(*sys.argv[4:])"
)


def run_in_user_namespace(function: Callable[..., None], *args: str) -> None:
    """Call `function(*args)` (a module-level function of a test module or
    of support/) in a new process in a user namespace of its own, where the
    process is root; the caller fails with the child's output when it fails."""
    command = ["unshare", "--user", "--map-root-user", sys.executable, "-c", _CALL, str(TESTS)]
    try:
        done = subprocess.run(
            [*command, function.__module__, function.__name__, *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        pytest.fail("unshare (util-linux) is needed to run this test in a user namespace of its own")
    if done.returncode != 0:
        pytest.fail(f"{function.__name__} failed in its user namespace:\n{done.stdout}{done.stderr}", pytrace=False)
