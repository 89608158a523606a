"""Helpers of the tests/test_hostile_* modules: a daemon of the module's own
(a hang there must not wedge the session's shared one), a client and a CLI
with a deadline, so a daemon that blocks fails the test instead of hanging
the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
from conftest import Daemon

from ctxwatch.client import CtxwatchClient, channel_target
from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatch_api.wire import channel_options

DEADLINE_S = 60.0  # a watchdog, not a speed bar: only a hung daemon gets near it
CLI = [sys.executable, "-m", "ctxwatch.cli"]


def guarded_client(socket_path: Path, timeout: float = DEADLINE_S) -> CtxwatchClient:
    channel = grpc.insecure_channel(channel_target(socket_path), options=channel_options())
    return CtxwatchClient(channel, socket_path, timeout=timeout)


def stop_or_kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def cli(daemon: Daemon, *args: str, timeout: float = DEADLINE_S) -> subprocess.CompletedProcess:
    """The real `ctxwatch` command against this daemon (never spawning another)."""
    return subprocess.run(
        [*CLI, "--no-spawn", *args],
        env=daemon.env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def make_context(folder: Path, dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "Dockerfile").write_text(dockerfile)
    for rel, content in (files or {}).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return folder


def report_of(client: CtxwatchClient, name: str) -> pb.Report:
    (report,) = client.reports([pb.ContextRef(name=name)])
    return report


def rss_kib(pid: int) -> int:
    """Resident memory of a process (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def peak_rss_kib(pid: int) -> int:
    """Peak resident memory of a process (VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def assert_serving(daemon: Daemon, client: CtxwatchClient) -> None:
    assert daemon.process.poll() is None, "ctxwatchd exited"
    assert isinstance(client.list(), list)
    assert os.path.exists(daemon.socket)
