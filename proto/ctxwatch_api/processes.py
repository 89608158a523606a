"""Process helpers shared by the CLI and the daemon."""

from __future__ import annotations

import os
from pathlib import Path

# ctxwatchd's exit code when another daemon already serves its state or
# socket: a client that started it waits for that one instead.
ALREADY_SERVING_EXIT = 3


def alive(pid: int) -> bool:
    """Whether a process with this pid exists (someone else's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def socket_lock_path(socket_path: Path) -> Path:
    """The lock file a daemon holds beside its socket (a socket can only be
    locked once bound); the daemon's pid is written in it."""
    return socket_path.with_name(socket_path.name + ".lock")


def lock_holder(lock_path: Path) -> int | None:
    """The pid written in a lock file, if one is (see ctxwatchd.private.hold_lock)."""
    try:
        with open(lock_path, "rb") as lock:
            written = lock.read(32).decode(errors="replace").strip()
    except OSError:
        return None
    return int(written) if written.isdigit() else None
