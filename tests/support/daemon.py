"""A real ctxwatchd on a real Unix socket in a folder of its own, for tests and bench/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import grpc

from ctxwatch import spawn
from ctxwatch.client import CtxwatchClient, channel_target, connect
from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatch_api.wire import channel_options

from .local import LocalClient
from .waiting import wait_until

START_TIMEOUT_S = 30.0
START_POLL_S = 0.01  # the bench times restarts and cold indexes from the start: a coarser poll would add to them
DEADLINE_S = 60.0  # on each call of a guarded client: a watchdog, not a speed bar


@dataclass
class Daemon:
    """A running ctxwatchd subprocess and a client connected to it."""

    socket: Path
    state_dir: Path
    process: subprocess.Popen
    client: CtxwatchClient
    log: Path

    def env(self) -> dict[str, str]:
        """Environment for running the `ctxwatch` CLI against this daemon."""
        return {**os.environ, "CTXWATCH_SOCKET": str(self.socket), "CTXWATCH_STATE_DIR": str(self.state_dir)}

    def stop(self) -> int:
        """SIGTERM (the daemon saves its state and exits), SIGKILL past `daemon stop`'s wait; the exit code."""
        self.client.close()
        stop_or_kill(self.process)
        return self.process.returncode


def stop_or_kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=spawn.STOP_TIMEOUT)  # it saves its hash cache first: killed, it would save none
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def guarded_client(socket_path: Path, timeout: float = DEADLINE_S) -> CtxwatchClient:
    """A client whose every call has a deadline: a daemon that hangs fails the caller instead of hanging it."""
    channel = grpc.insecure_channel(channel_target(socket_path), options=channel_options())
    return CtxwatchClient(channel, socket_path, timeout=timeout)


def start_daemon(
    folder: Path, *extra_args: str, socket: Path | None = None, call_timeout: float | None = None
) -> Daemon:
    """ctxwatchd serving `socket` (default: folder/run/d.sock) with its state, log and
    config file (usually none: never the user's) in `folder`; with `call_timeout`,
    its client gives every call that deadline."""
    folder.mkdir(parents=True, exist_ok=True)
    socket = socket or folder / "run" / "d.sock"
    state_dir, log = folder / "state", folder / "ctxwatchd.log"
    config = ["--config", str(folder / "config.toml")]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ctxwatchd",
                "--socket",
                str(socket),
                "--state-dir",
                str(state_dir),
                *config,
                *extra_args,
            ],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_until(
            lambda: process.poll() is not None or spawn.is_serving(socket),
            START_TIMEOUT_S,
            "ctxwatchd serving",
            interval=START_POLL_S,
        )
    except AssertionError:
        pass  # said below, with the log
    if process.poll() is not None or not spawn.is_serving(socket):
        stop_or_kill(process)
        raise RuntimeError(f"ctxwatchd did not start:\n{log.read_text()[-4000:]}")
    client = guarded_client(socket, call_timeout) if call_timeout else connect(socket, spawn=False)
    return Daemon(socket, state_dir, process, client, log)


def fresh_report(context: Path) -> pb.Report:
    """The report of a first-time scan: a new engine over an empty state folder."""
    state = Path(tempfile.mkdtemp(prefix="fresh-state-"))
    try:
        with LocalClient(state) as local:
            local.register(str(context), name="fresh")
            [report] = local.reports(["fresh"])
            return report
    finally:
        shutil.rmtree(state, ignore_errors=True)


def answer(report: pb.Report) -> dict:
    """What must not depend on build history: steps, keys, errors, the context digest."""
    return {
        "error": (report.error, report.error_line),
        "context_digest": report.context_digest,
        "steps": [(s.line, s.instruction, s.key, s.status == pb.STEP_STATUS_ERROR, s.error) for s in report.steps],
    }
