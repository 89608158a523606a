"""Find the daemon on its socket, and start it on demand (as watchman and turbo do).

"Answers" means the standard gRPC health service replies at all; "ready"
means it replies SERVING. A daemon that answers but is not ready yet (still
loading its state) is waited for, never started a second time.
"""

from __future__ import annotations

import collections
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ctxwatch import launch
from ctxwatch.client import CtxwatchError, channel_target
from ctxwatch_api import paths
from ctxwatch_api.processes import ALREADY_SERVING_EXIT, alive, lock_holder, socket_lock_path

DEFAULT_START_TIMEOUT = 10.0
# A stopping daemon saves its hash cache first: 0.7 s at 100,000 files, 5.8 s
# at a million on the bench's machine.
STOP_TIMEOUT = 60.0
LOG_TAIL_LINES = 20
_FOLLOW_POLL_S = 0.25
_PROBE_TIMEOUT = 1.0
_FIRST_DELAY = 0.01
_MAX_DELAY = 0.25
# A daemon the CLI starts serves in about 0.3 s: probed this often, the command goes on at once,
# not up to a backoff step (0.16 s) later. A probe before the socket exists fails in a millisecond.
_START_POLL_S = 0.01

SERVING = health_pb2.HealthCheckResponse.SERVING


def probe(socket_path: Path, timeout: float = _PROBE_TIMEOUT) -> int | None:
    """The health status the daemon reports for service "", or None when nothing answers."""
    # A fresh channel per probe: a reused one would sit in gRPC's reconnect
    # backoff (a second or more) after the first refused connection.
    with grpc.insecure_channel(channel_target(socket_path)) as channel:
        return health(channel, timeout)


def health(channel: grpc.Channel, timeout: float = _PROBE_TIMEOUT) -> int | None:
    """The health status the daemon on `channel` reports for service "", or None when nothing answers."""
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
    except grpc.RpcError:
        return None
    return reply.status


def is_serving(socket_path: Path) -> bool:
    return probe(socket_path) == SERVING


def not_running_error(socket_path: Path) -> CtxwatchError:
    """The error for "no daemon and not allowed to start one", with how to start it."""
    command = "ctxwatchd"
    if socket_path != paths.resolve_socket_path():
        command += f" --socket {socket_path}"
    return CtxwatchError(
        "UNAVAILABLE",
        f"no daemon is running on {socket_path}; start one with `{command}` or `systemctl --user start ctxwatchd`",
    )


def not_answering_error(socket_path: Path, waited: float) -> CtxwatchError:
    """The error for a process that accepts connections on the socket but does not answer."""
    pid = lock_holder(socket_lock_path(socket_path))
    who, pid_text = (f"ctxwatchd (pid {pid})", str(pid)) if pid is not None else ("a process", "PID")
    return CtxwatchError(
        "UNAVAILABLE",
        f"{who} accepts connections on {socket_path} but has not answered for {waited:g} s: it is stopped "
        f"(Ctrl-Z, SIGSTOP, a debugger) or hung; `kill -CONT {pid_text}` resumes a stopped one, "
        f"`kill -KILL {pid_text}` ends it (what it hashed since it last started is then read again)",
    )


def running(socket_path: Path) -> bool:
    """Whether a daemon answers on the socket; not_answering_error when a
    process accepts connections there without answering (a stopped daemon:
    another one would only give way to it)."""
    if probe(socket_path) is not None:
        return True
    if launch.listening(socket_path):
        raise not_answering_error(socket_path, _PROBE_TIMEOUT)
    return False


def ensure_daemon(
    socket_path: Path,
    state_dir: str | None = None,
    spawn: bool = True,
    timeout: float = DEFAULT_START_TIMEOUT,
) -> None:
    """Return once a daemon is SERVING on `socket_path`, starting one if allowed.

    `state_dir` is the --state-dir flag (None: $CTXWATCH_STATE_DIR or the default).
    """
    status = probe(socket_path)
    if status == SERVING:
        return
    log = launch.log_path(state_dir)
    process = launch.take_started_early(socket_path)  # by the front, before this process imported gRPC
    if status is None and process is None:
        if launch.listening(socket_path):
            # A daemon too busy to answer at once, or stopped: another would only give way to it.
            if not spawn:
                raise not_answering_error(socket_path, _PROBE_TIMEOUT)
            # Waited for, as a daemon being started would be.
            if not _poll(lambda: is_serving(socket_path), timeout, max_delay=_START_POLL_S):
                raise not_answering_error(socket_path, _PROBE_TIMEOUT + timeout)
            return
        if not spawn:
            raise not_running_error(socket_path)
        process = launch.start_daemon(socket_path, state_dir, log)
    wait_until_serving(socket_path, timeout, process, log)


def wait_until_serving(
    socket_path: Path,
    timeout: float,
    process: subprocess.Popen | None,
    log_path: Path,
) -> None:
    """Poll the health check until SERVING; raise with the log's tail on failure."""

    def ready() -> bool:
        nonlocal process
        if is_serving(socket_path):
            return True
        if process is not None and process.poll() is not None:
            if process.returncode == ALREADY_SERVING_EXIT:
                # Another client started a daemon first and ours gave way: wait for that one.
                process = None
                return False
            raise _start_failed(f"ctxwatchd exited with code {process.returncode}", log_path)
        return False

    if not _poll(ready, timeout, max_delay=_START_POLL_S):
        raise _start_failed(f"ctxwatchd on {socket_path} was not ready within {timeout:g} s", log_path)


def wait_until_stopped(socket_path: Path, pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """Poll until nothing answers on the socket and the process has exited; False on timeout."""
    return _poll(lambda: probe(socket_path) is None and not alive(pid), timeout)


def wait_until_serving_again(socket_path: Path, timeout: float) -> bool:
    """Poll until a daemon serves on the socket (one restarting); False on timeout. Starts none."""
    return _poll(lambda: is_serving(socket_path), timeout)


def log_lines(path: Path, count: int, follow: bool = False) -> Iterator[str]:
    """The last `count` lines of the log, then (`follow`) each new line, across rotations, until interrupted."""
    try:
        log = open(path, errors="replace")  # noqa: SIM115 - reopened when the daemon rotates it
    except FileNotFoundError:
        raise CtxwatchError("NOT_FOUND", f"no log at {path} (a daemon the CLI starts logs there)") from None
    try:
        yield from (line.rstrip("\n") for line in collections.deque(log, maxlen=count))
        while follow:
            line = log.readline()
            if line:
                yield line.rstrip("\n")
            elif _rotated(path, log):
                log.close()
                log = open(path, errors="replace")  # noqa: SIM115
            else:
                time.sleep(_FOLLOW_POLL_S)
    finally:
        log.close()


def _rotated(path: Path, log: TextIO) -> bool:
    """Whether `path` is now another file than the one `log` reads (the daemon rotated it)."""
    try:
        return os.stat(path).st_ino != os.fstat(log.fileno()).st_ino
    except FileNotFoundError:
        return False


def _poll(done: Callable[[], bool], timeout: float, max_delay: float = _MAX_DELAY) -> bool:
    """Call `done` with a short exponential backoff (up to `max_delay`) until it is true or time runs out."""
    deadline = time.monotonic() + timeout
    delay = min(_FIRST_DELAY, max_delay)
    while True:
        if done():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, max_delay)


def _start_failed(reason: str, log_path: Path) -> CtxwatchError:
    return CtxwatchError("UNAVAILABLE", f"{reason}\n{_log_tail(log_path)}")


def _log_tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return f"(no log at {log_path})"
    if not lines:
        return f"({log_path} is empty)"
    return f"last lines of {log_path}:\n" + "\n".join(f"  {line}" for line in lines)
