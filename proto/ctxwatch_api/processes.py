"""Process helpers shared by the CLI and the daemon."""

from __future__ import annotations

import os

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
