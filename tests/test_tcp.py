"""TCP is off unless asked for; then it listens on loopback only and every
call needs the token from the state folder. The Unix socket needs none."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import grpc
import pytest
from support.daemon import start_daemon

from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatch_api.v1 import ctxwatch_pb2_grpc as pb_grpc
from ctxwatchd.server.main import TOKEN_FILE

# 127.0.0.1 as /proc/net/tcp and /proc/net/tcp6 (IPv4-mapped) write it.
LOOPBACK_HEX = {"0100007F", "0000000000000000FFFF00000100007F"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) in LISTEN state on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if int(port_hex, 16) == port and state == "0A":
                found.add(address)
    return found


def status_over_tcp(port: int, token: str | None) -> pb.DaemonStatus:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        metadata = [("authorization", f"Bearer {token}")] if token is not None else None
        return pb_grpc.CtxwatchStub(channel).GetDaemonStatus(pb.GetDaemonStatusRequest(), metadata=metadata, timeout=10)


def test_tcp_needs_the_token_and_listens_on_loopback_only(tmp_path: Path) -> None:
    port = free_port()
    daemon = start_daemon(tmp_path / "d", "--tcp-port", str(port))
    try:
        token_file = daemon.state_dir / TOKEN_FILE
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        listening = listening_addresses(port)
        assert listening and listening <= LOOPBACK_HEX, listening  # 127.0.0.1 (maybe IPv4-mapped), nothing else
        for wrong in (None, "not-the-token"):
            with pytest.raises(grpc.RpcError) as refused:
                status_over_tcp(port, wrong)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert TOKEN_FILE in refused.value.details()
        assert status_over_tcp(port, token).pid == daemon.process.pid
        assert daemon.client.daemon_status().pid == daemon.process.pid  # the socket needs no token
    finally:
        daemon.stop()


def test_without_the_flag_nothing_listens_on_tcp(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "d")
    try:
        inodes = {
            line.split()[9]
            for table in ("/proc/net/tcp", "/proc/net/tcp6")
            for line in Path(table).read_text().splitlines()[1:]
            if line.split()[3] == "0A"
        }
        fds = Path(f"/proc/{daemon.process.pid}/fd")
        sockets = {
            p.readlink().name[len("socket:[") : -1] for p in fds.iterdir() if str(p.readlink()).startswith("socket:")
        }
        assert not sockets & inodes, "the daemon listens on a TCP port without --tcp-port"
        assert not (daemon.state_dir / TOKEN_FILE).exists()
    finally:
        daemon.stop()
