"""Several daemons on one state: exactly one serves it.

Ten CLI calls racing with no daemon used to leave up to ten ctxwatchd
processes; removing the socket folder under a running daemon made the next
call start a second one on the same state.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.cli import CLI
from support.daemon import Daemon, start_daemon, stop_or_kill
from support.hostile import DEADLINE_S
from support.processes import processes_with
from support.waiting import wait_until

from ctxwatch import spawn
from ctxwatch.client import CtxwatchError, connect
from ctxwatch_api.processes import ALREADY_SERVING_EXIT, alive

DAEMON = [sys.executable, "-m", "ctxwatchd"]


def daemons_of(marker: Path) -> list[int]:
    """Pids of the ctxwatchd processes started with this socket or state folder on their command line."""
    return processes_with(b"ctxwatchd", os.fsencode(marker))


def cli_on(daemon: Daemon, *args: str) -> subprocess.CompletedProcess:
    """`ctxwatch ARGS` in a process of its own, on the daemon's socket and state."""
    return subprocess.run(
        [*CLI, *args],
        env=daemon.env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_ten_racing_cli_calls_leave_one_daemon(tmp_path):
    sock = tmp_path / "run" / "d.sock"
    env = {**os.environ, "CTXWATCH_SOCKET": str(sock), "CTXWATCH_STATE_DIR": str(tmp_path / "s")}

    def call(_: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*CLI, "ls"],
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(call, range(10)))
    try:
        assert [r.returncode for r in results] == [0] * 10, [r.stderr for r in results]
        # Those that lost the race exit at once; let them go before counting.
        wait_until(lambda: len(daemons_of(sock)) == 1, 15, "one daemon left")
        (pid,) = daemons_of(sock)
        with connect(sock, spawn=False) as client:
            assert client.daemon_status().pid == pid
    finally:
        for pid in daemons_of(sock):
            os.kill(pid, 15)
        wait_until(lambda: not daemons_of(sock), 15, "every daemon gone")


def test_second_daemon_on_the_same_state_exits_at_once(tmp_path):
    first = start_daemon(tmp_path / "first")
    try:
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "ctxwatchd",
                "--socket",
                str(tmp_path / "other.sock"),
                "--state-dir",
                str(first.state_dir),
            ],
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert second.returncode == ALREADY_SERVING_EXIT, second.stderr
        assert f"already serving the state in {first.state_dir} (pid {first.process.pid})" in second.stderr
        assert not (tmp_path / "other.sock").exists()  # it stopped before binding anything
        assert first.client.daemon_status().pid == first.process.pid
    finally:
        first.stop()


def test_removed_socket_folder_is_bound_again_and_no_second_daemon_starts(tmp_path):
    daemon = start_daemon(tmp_path / "d")
    try:
        shutil.rmtree(daemon.socket.parent)
        # (gRPC may still answer over a connection made before: wait for the path itself.)
        wait_until(daemon.socket.exists, DEADLINE_S, "the daemon binding its socket again")
        assert spawn.is_serving(daemon.socket)
        assert (daemon.socket.parent.stat().st_mode & 0o777) == 0o700
        # A CLI call allowed to start a daemon finds this one.
        listed = cli_on(daemon, "daemon", "status")
        assert listed.returncode == 0, listed.stderr
        assert str(daemon.process.pid) in listed.stdout
        assert daemons_of(daemon.state_dir) == [daemon.process.pid]
        with connect(daemon.socket, spawn=False) as client:
            assert client.daemon_status().pid == daemon.process.pid
        assert "was removed; serving on it again" in daemon.log.read_text()
    finally:
        stop_or_kill(daemon.process)
    assert daemon.process.returncode == 0
    assert not alive(daemon.process.pid)


def test_a_stopped_daemon_is_named_as_such_and_no_second_one_starts(tmp_path):
    daemon = start_daemon(tmp_path / "d")
    pid = daemon.process.pid
    try:
        os.kill(pid, signal.SIGSTOP)  # Ctrl-Z, a debugger: it accepts connections and answers nothing
        try:
            for args in (["daemon", "stop"], ["daemon", "restart"], ["daemon", "start"], ["--no-spawn", "ls"]):
                result = cli_on(daemon, *args)
                assert result.returncode == 2, (args, result.stdout, result.stderr)
                assert f"ctxwatchd (pid {pid}) accepts connections on {daemon.socket} but has not" in result.stderr
                assert f"kill -CONT {pid}" in result.stderr and f"kill -KILL {pid}" in result.stderr
                assert "no daemon is running" not in result.stdout
            # A command that would start a daemon waits for this one, then says what is wrong.
            with pytest.raises(CtxwatchError, match=rf"ctxwatchd \(pid {pid}\) accepts connections .* stopped"):
                spawn.ensure_daemon(daemon.socket, state_dir=str(daemon.state_dir), timeout=1.0)
            assert daemons_of(daemon.state_dir) == [pid]
            assert "already serving" not in daemon.log.read_text()
        finally:
            os.kill(pid, signal.SIGCONT)
        # Resumed, it answers again.
        assert spawn.running(daemon.socket)
        assert cli_on(daemon, "daemon", "status").returncode == 0
    finally:
        daemon.stop()
