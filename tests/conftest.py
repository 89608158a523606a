"""Shared fixtures: a real ctxwatchd on a real Unix socket in a temporary folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.local import LocalClient

from ctxwatch import spawn
from ctxwatch.client import CtxwatchClient, connect
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

# The real BuildKit fixture (`buildkit`) for the tests that build.
pytest_plugins = ("support.buildkit",)


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
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=15)


def start_daemon(folder: Path, *extra_args: str) -> Daemon:
    folder.mkdir(parents=True, exist_ok=True)
    socket, state_dir, log = folder / "run" / "d.sock", folder / "state", folder / "ctxwatchd.log"
    # The folder's own config file (usually none): never the user's.
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
    deadline = time.monotonic() + 20
    while not spawn.is_serving(socket):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"ctxwatchd did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return Daemon(socket, state_dir, process, connect(socket, spawn=False), log)


@pytest.fixture(scope="session")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the whole run (tests register their own contexts)."""
    daemon = start_daemon(tmp_path_factory.mktemp("shared-daemon"))
    yield daemon
    daemon.stop()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon of this test's own, for tests that restart or stop it."""
    daemon = start_daemon(tmp_path / "daemon")
    yield daemon
    daemon.stop()


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
