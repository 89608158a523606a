"""Starting ctxwatchd in the background for a command that finds no daemon.

No gRPC here: the front (ctxwatch.front) calls start_early() before the command imports gRPC and the
stubs (about 0.15 s), so the daemon's own start (about 0.25 s) runs meanwhile; spawn.ensure_daemon then
waits for the daemon started here instead of starting another.
"""

from __future__ import annotations

import _socket
import os
import subprocess
import sys
from pathlib import Path

from ctxwatch_api import paths

LOG_NAME = "ctxwatchd.log"
# A daemon the CLI starts exits after this long without a client (a restart costs about a second).
IDLE_TIMEOUT_S = 3 * 3600

# The daemon start_early() started, by socket: the command waits for it.
_started_early: dict[Path, subprocess.Popen] = {}


def log_path(state_dir: str | None) -> Path:
    """Where a daemon the CLI starts logs (`state_dir`: the --state-dir flag or None)."""
    return paths.resolve_state_dir(state_dir) / LOG_NAME


def start_daemon(socket_path: Path, state_dir: str | None, log_path: Path) -> subprocess.Popen:
    """Start ctxwatchd detached from this process, logging to `log_path` (rotated by the daemon)."""
    command = [sys.executable, "-m", "ctxwatchd", "--socket", str(socket_path), "--log-file", str(log_path)]
    command += ["--idle-timeout", str(IDLE_TIMEOUT_S)]
    if state_dir:
        command += ["--state-dir", str(paths.resolve_state_dir(state_dir))]
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(log_path, "ab") as log:
        # Until its logging is set up, the daemon's stderr (e.g. an import error) goes to the log too.
        # A new session: the daemon outlives this CLI and ignores its Ctrl-C.
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )


def take_started_early(socket_path: Path) -> subprocess.Popen | None:
    """The daemon start_early() started on `socket_path`, once: a later start (after that daemon
    stopped) is a new one."""
    return _started_early.pop(socket_path, None)


def start_early() -> None:
    """Start the daemon on the default socket (or $CTXWATCH_SOCKET) when nothing listens there."""
    socket_path = paths.resolve_socket_path()
    if not listening(socket_path):
        _started_early[socket_path] = start_daemon(socket_path, None, log_path(None))


def listening(socket_path: Path) -> bool:
    """Whether a process accepts connections on the Unix socket (a stale socket file left by a daemon
    that died refuses them). Another failure (no permission) counts as listening: the command says what it is."""
    connection = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        connection.connect(os.fspath(socket_path))
    except (FileNotFoundError, ConnectionRefusedError):
        return False
    except OSError:
        return True
    finally:
        connection.close()
    return True
