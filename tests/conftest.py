"""Shared fixtures: a real ctxwatchd on a real Unix socket in a temporary folder
(the helpers themselves live in tests/support/, which tests import)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import Daemon, start_daemon

from ctxwatch import spawn
from ctxwatch.client import connect
from ctxwatch.front import NO_RUNNER_ENV

# The suite runs every command in its own process: a runner (ctxwatch.runner) would outlive the tests and serve
# from the user's runtime folder. tests/test_cli_runner.py turns it on, with a runtime folder of its own.
os.environ[NO_RUNNER_ENV] = "1"

# The real BuildKit fixture (`buildkit`) for the tests that build.
pytest_plugins = ("support.buildkit",)


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


@pytest.fixture
def no_daemon_env(tmp_path):
    """A socket path nobody serves on, and a state folder of its own; any daemon started is stopped."""
    socket = tmp_path / "run" / "d.sock"
    env = {**os.environ, "CTXWATCH_SOCKET": str(socket), "CTXWATCH_STATE_DIR": str(tmp_path / "state")}
    assert spawn.probe(socket) is None
    yield env, socket
    if spawn.probe(socket) is not None:  # a failed test left a spawned daemon behind
        with connect(socket, spawn=False) as client:
            pid = client.daemon_status().pid
            try:
                client.shutdown()
            except Exception:
                pass
        spawn.wait_until_stopped(socket, pid)
