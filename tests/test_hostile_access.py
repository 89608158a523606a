"""Nobody gets in: the TCP token, the state and socket folders, and what may
be registered.

Found before: an empty `tcp-token` (left by a start that hit a full disk)
let every TCP caller in with `authorization: Bearer `; a short socket folder
another user created first in /tmp was used (a symlink planted there made the
daemon chmod its target); 0644 token and state files in 0755 folders were
used as they were; `/` could be registered.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
import pytest
from support.daemon import start_daemon, stop_or_kill
from support.hostile import DEADLINE_S, cli

from ctxwatch_api import paths
from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatch_api.v1 import ctxwatch_pb2_grpc as pb_grpc
from ctxwatchd.server.main import STATE_FILE, TOKEN_FILE

NOBODY = 65534


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_over_tcp(port: int, authorization: str) -> pb.DaemonStatus:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.CtxwatchStub(channel)
        return stub.GetDaemonStatus(
            pb.GetDaemonStatusRequest(), metadata=[("authorization", authorization)], timeout=10
        )


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def run_daemon(socket_path: Path, state_dir: Path) -> subprocess.CompletedProcess:
    """A daemon start that is expected to refuse (a bounded wait either way)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ctxwatchd", "--socket", str(socket_path), "--state-dir", str(state_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        stop_or_kill(process)
        pytest.fail("the daemon started where it had to refuse")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize("left_behind", ["", "\n", "short\n"])
def test_empty_or_short_token_is_refused_and_replaced(tmp_path, left_behind):
    state = tmp_path / "d" / "state"
    state.mkdir(parents=True, mode=0o700)
    (state / TOKEN_FILE).write_text(left_behind)
    port = free_port()
    daemon = start_daemon(tmp_path / "d", "--tcp-port", str(port))
    try:
        for sent in ("Bearer ", "Bearer", f"Bearer {left_behind.strip()}"):
            with pytest.raises(grpc.RpcError) as refused:
                status_over_tcp(port, sent)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        token = (state / TOKEN_FILE).read_text().strip()
        assert len(token) >= 32 and mode(state / TOKEN_FILE) == 0o600
        assert status_over_tcp(port, f"Bearer {token}").pid == daemon.process.pid
        assert f"the token in {state / TOKEN_FILE} is" in daemon.log.read_text()
        assert not [p for p in state.iterdir() if p.name.startswith(f".{TOKEN_FILE}")]  # no temporary left
    finally:
        daemon.stop()


def test_loose_modes_are_made_private_with_a_log_line(tmp_path):
    first = start_daemon(tmp_path / "d", "--tcp-port", str(free_port()))
    first.stop()
    state = first.state_dir
    os.chmod(state, 0o755)
    os.chmod(state / STATE_FILE, 0o644)
    os.chmod(state / TOKEN_FILE, 0o644)
    daemon = start_daemon(tmp_path / "d", "--tcp-port", str(free_port()))
    try:
        assert mode(state) == 0o700
        assert mode(state / STATE_FILE) == 0o600
        assert mode(state / TOKEN_FILE) == 0o600
        log = daemon.log.read_text()
        for line in (
            f"the state folder {state} had mode 0755; made it 0700",
            f"the state file {state / STATE_FILE} had mode 0644; made it 0600",
            f"the token file {state / TOKEN_FILE} had mode 0644; made it 0600",
        ):
            assert line in log
    finally:
        daemon.stop()


def long_socket_path(tmp_path: Path) -> Path:
    """A socket path too long for a Unix socket: the daemon uses the short one in the temp folder."""
    wanted = tmp_path / ("x" * 120) / "d.sock"
    return paths.resolve_socket_path(str(wanted))


def test_short_socket_folder_created_first_by_another_user_is_refused(tmp_path):
    short = long_socket_path(tmp_path)
    assert short.parent.parent == Path(tempfile.gettempdir())
    short.parent.mkdir()
    os.chmod(short.parent, 0o777)
    try:
        os.chown(short.parent, NOBODY, NOBODY)  # the tests run as root: "another user" is nobody
        refused = run_daemon(tmp_path / ("x" * 120) / "d.sock", tmp_path / "state")
        assert refused.returncode == 1
        assert f"the socket folder {short.parent} belongs to user id {NOBODY}" in refused.stderr
        assert not short.exists()
        assert os.lstat(short.parent).st_uid == NOBODY and mode(short.parent) == 0o777  # left as it was
    finally:
        short.parent.rmdir()


def test_symlink_planted_as_the_short_socket_folder_is_refused(tmp_path):
    short = long_socket_path(tmp_path)
    target = tmp_path / "target"
    target.mkdir(mode=0o755)
    short.parent.symlink_to(target)
    try:
        refused = run_daemon(tmp_path / ("x" * 120) / "d.sock", tmp_path / "state")
        assert refused.returncode == 1
        assert f"the socket folder {short.parent} is a symbolic link" in refused.stderr
        assert mode(target) == 0o755 and not list(target.iterdir())  # never chmod-ed, nothing created in it
    finally:
        short.parent.unlink()


def test_shared_sticky_folder_is_refused_as_the_socket_folder(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    refused = run_daemon(shared / "d.sock", tmp_path / "state")
    assert refused.returncode == 1
    assert "is a shared folder (sticky bit" in refused.stderr
    assert mode(shared) == 0o1777


def test_root_and_the_daemons_own_folders_cannot_be_registered(shared_daemon):
    for path in ("/", str(shared_daemon.state_dir), str(shared_daemon.socket.parent)):
        result = cli(shared_daemon, "add", path)
        assert result.returncode == 2, (path, result.stdout, result.stderr)
        assert "INVALID_ARGUMENT" in result.stderr or "cannot be" in result.stderr, result.stderr
        assert path in result.stderr
    assert all(c.path not in ("/", str(shared_daemon.state_dir)) for c in shared_daemon.client.list())
    with pytest.raises(Exception) as refused:
        shared_daemon.client.register("/")
    assert "/ cannot be a build context" in str(refused.value)
