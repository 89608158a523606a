"""Helpers of the tests/test_hostile_* modules: a daemon of the module's own
(a hang there must not wedge the session's shared one), a client and a CLI
with a deadline, so a daemon that blocks fails the test instead of hanging
the run."""

from __future__ import annotations

import os
import subprocess

from ctxwatch.client import CtxwatchClient
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

from .cli import CLI
from .daemon import DEADLINE_S, Daemon


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
