"""The daemon as a process: its socket, signals, restarts, systemd notify, the
standard gRPC services, its status, and answers that are never stale."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support.contexts import make_context
from support.daemon import start_daemon

import ctxwatchd
from ctxwatch.client import CtxwatchError, channel_target
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

DOCKERFILE = """\
FROM scratch
COPY app.txt /app/app.txt
COPY src/ /app/src/
RUN ["/bin/true"]
"""
FILES = {"app.txt": "hello\n", "src/a.py": "print('a')\n"}


def unique(prefix: str = "life") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def terminate(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=15)


# -- socket ---------------------------------------------------------------------------


def test_socket_is_0600_in_a_0700_folder(shared_daemon):
    sock = os.stat(shared_daemon.socket)
    assert stat.S_ISSOCK(sock.st_mode)
    assert stat.S_IMODE(sock.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(shared_daemon.socket.parent).st_mode) == 0o700


def test_second_daemon_on_the_same_socket_refuses_and_the_first_keeps_serving(shared_daemon, tmp_path):
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctxwatchd",
            "--socket",
            str(shared_daemon.socket),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert second.returncode != 0
    assert "another ctxwatchd is already serving" in second.stderr
    assert str(shared_daemon.socket) in second.stderr
    assert shared_daemon.process.poll() is None
    assert shared_daemon.socket.exists()
    assert shared_daemon.client.daemon_status().pid == shared_daemon.process.pid


def test_sigterm_exits_0_and_removes_the_socket(daemon):
    assert daemon.socket.exists()
    assert terminate(daemon.process) == 0
    assert not daemon.socket.exists()
    assert not daemon.socket.is_symlink()


def test_a_stale_socket_file_does_not_stop_a_new_daemon(tmp_path):
    folder = tmp_path / "d"
    stale = folder / "run" / "d.sock"  # where start_daemon puts its socket
    stale.parent.mkdir(parents=True, mode=0o700)
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(stale))
    leftover.close()  # the file stays, nobody listens: what a crash leaves behind
    assert stat.S_ISSOCK(os.stat(stale).st_mode)
    with pytest.raises(ConnectionRefusedError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.connect(str(stale))

    daemon = start_daemon(folder)
    try:
        assert daemon.client.list() == []
        assert daemon.client.daemon_status().pid == daemon.process.pid
    finally:
        assert daemon.stop() == 0
    assert not stale.exists()


# -- restart ---------------------------------------------------------------------------


def test_restart_keeps_contexts_and_recorded_builds(daemon, tmp_path):
    kept, edited = (
        make_context(tmp_path / "kept", DOCKERFILE, FILES),
        make_context(tmp_path / "edited", DOCKERFILE, FILES),
    )
    names = {kept: unique("kept"), edited: unique("edited")}
    built = {}
    for folder, name in names.items():
        daemon.client.register(str(folder), build_args={"V": "1"}, name=name)
        built[folder] = daemon.client.mark_built(pb.ContextRef(name=name))
        assert built[folder].report.all_cached and built[folder].steps_recorded == 3
    assert daemon.stop() == 0
    (edited / "src" / "a.py").write_text("print('changed while the daemon was down')\n")

    again = start_daemon(daemon.socket.parent.parent)  # same socket, same state folder
    try:
        assert again.state_dir == daemon.state_dir
        assert again.process.pid != daemon.process.pid
        listed = {(c.name, c.path, c.dockerfile, tuple(c.build_args.items())) for c in again.client.list()}
        assert listed == {
            (name, str(folder), str(folder / "Dockerfile"), (("V", "1"),)) for folder, name in names.items()
        }

        [report] = again.client.reports([pb.ContextRef(name=names[kept])])
        assert not report.error
        assert [s.status for s in report.steps] == [pb.STEP_STATUS_CACHED] * 3
        assert report.all_cached and report.builds_recorded == 1
        assert [s.key for s in report.steps] == [s.key for s in built[kept].report.steps]

        # The restarted daemon re-checks the files: an edit made while it was down shows.
        [report] = again.client.reports([pb.ContextRef(name=names[edited])])
        assert [s.status for s in report.steps] == [
            pb.STEP_STATUS_CACHED,
            pb.STEP_STATUS_INVALIDATED,
            pb.STEP_STATUS_INVALIDATED,
        ]
        assert report.steps[1].cause == pb.CAUSE_INPUTS_CHANGED
        assert [c.path for c in report.steps[1].changed_paths] == ["src/a.py"]
    finally:
        assert again.stop() == 0


# -- standard gRPC services --------------------------------------------------------------


def test_health_service_answers_serving(shared_daemon):
    with grpc.insecure_channel(channel_target(shared_daemon.socket)) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_server_reflection_lists_and_describes_the_service(shared_daemon):
    with grpc.insecure_channel(channel_target(shared_daemon.socket)) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="ctxwatch.v1.Ctxwatch"),
        ]
        listed, described = list(stub.ServerReflectionInfo(iter(requests), timeout=10))
    services = {s.name for s in listed.list_services_response.service}
    assert "ctxwatch.v1.Ctxwatch" in services
    assert "grpc.health.v1.Health" in services
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(b)
        for b in described.file_descriptor_response.file_descriptor_proto
    ]
    [service] = [s for f in files if f.package == "ctxwatch.v1" for s in f.service]
    assert service.name == "Ctxwatch"
    assert {"RegisterContext", "GetReports", "MarkBuilt", "GetDaemonStatus", "Shutdown"} <= {
        m.name for m in service.method
    }


# -- systemd notify ----------------------------------------------------------------------


def test_systemd_notify_ready_then_stopping(tmp_path, monkeypatch):
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(address))
        notify.settimeout(20)  # a bound on waiting, not an assertion on speed
        monkeypatch.setenv("NOTIFY_SOCKET", str(address))
        daemon = start_daemon(tmp_path / "d")
        monkeypatch.delenv("NOTIFY_SOCKET")
        try:
            # Sent once serving: the first datagram, before anything asked it to stop.
            assert "READY=1" in notify.recv(4096).decode().split("\n")
            assert daemon.client.list() == []
            assert terminate(daemon.process) == 0
        finally:
            daemon.stop()
        notify.setblocking(False)
        later: list[str] = []
        while True:
            try:
                later += notify.recv(4096).decode().split("\n")
            except BlockingIOError:
                break
    assert "STOPPING=1" in later
    assert "READY=1" not in later


# -- status and shutdown -----------------------------------------------------------------


def test_daemon_status(shared_daemon, tmp_path):
    folder = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
    name = unique()
    shared_daemon.client.register(str(folder), name=name)
    [report] = shared_daemon.client.reports([pb.ContextRef(name=name)])
    assert not report.error
    status = shared_daemon.client.daemon_status()
    assert status.version == ctxwatchd.__version__
    assert status.pid == shared_daemon.process.pid
    assert status.socket_path == str(shared_daemon.socket)
    assert status.state_dir == str(shared_daemon.state_dir)
    assert status.contexts == len(shared_daemon.client.list()) >= 1
    roots = {root.path: root for root in status.roots}
    root = roots.get(os.path.realpath(folder))
    assert root is not None, f"{folder} is not among the watched roots {sorted(roots)}"
    assert root.files > 0 and root.directories > 0
    assert root.healthy and not root.message
    assert status.memory_rss_bytes > 0
    assert status.uptime_seconds > 0


def test_shutdown_rpc_makes_the_daemon_exit_0(daemon):
    daemon.client.shutdown()
    assert daemon.process.wait(timeout=15) == 0
    assert not daemon.socket.exists()
    with pytest.raises(CtxwatchError) as caught:
        daemon.client.list()
    assert caught.value.code == "UNAVAILABLE"


# -- answers after writes -------------------------------------------------------------------


def registered(daemon, folder: Path) -> pb.ContextRef:
    name = unique()
    daemon.client.register(str(folder), name=name)
    return pb.ContextRef(name=name)


def report_of(daemon, ref: pb.ContextRef) -> pb.Report:
    [report] = daemon.client.reports([ref])
    assert not report.error, report.error
    return report


def test_a_query_right_after_a_write_sees_it(shared_daemon, tmp_path):
    folder = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
    ref = registered(shared_daemon, folder)
    app = folder / "app.txt"
    app.write_text("v-built\n")
    built_key = shared_daemon.client.mark_built(ref).report.steps[0].key
    seen_keys = {built_key}
    for i in range(20):
        # Same size every time, written and queried at once: only content tells them apart.
        app.write_text(f"v-{i:05d}\n")
        step = report_of(shared_daemon, ref).steps[0]
        assert step.status == pb.STEP_STATUS_INVALIDATED, f"write {i} not seen"
        assert [c.path for c in step.changed_paths] == ["app.txt"]
        assert step.key not in seen_keys, f"write {i} answered with an older key"
        seen_keys.add(step.key)
        app.write_text("v-built\n")
        assert report_of(shared_daemon, ref).all_cached, f"restore after write {i} not seen"


def test_a_query_right_after_a_dockerfile_edit_sees_it(shared_daemon, tmp_path):
    folder = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
    ref = registered(shared_daemon, folder)
    shared_daemon.client.mark_built(ref)
    for i in range(20):
        run = f'RUN ["/bin/echo", "{i:05d}"]'  # same size every time
        (folder / "Dockerfile").write_text(DOCKERFILE.replace('RUN ["/bin/true"]', run))
        report = report_of(shared_daemon, ref)
        last = report.steps[-1]
        assert last.instruction == run, f"edit {i} not seen"
        assert last.status == pb.STEP_STATUS_INVALIDATED
        assert last.cause == pb.CAUSE_INSTRUCTION_CHANGED
        assert [s.status for s in report.steps[:2]] == [pb.STEP_STATUS_CACHED] * 2
    (folder / "Dockerfile").write_text(DOCKERFILE)
    assert report_of(shared_daemon, ref).all_cached


def test_a_query_right_after_a_dockerignore_edit_sees_it(shared_daemon, tmp_path):
    folder = make_context(tmp_path / "ctx", "FROM scratch\nCOPY . /app\n", FILES)
    (folder / "notes.log").write_text("log\n")
    ignore = folder / ".dockerignore"
    ignore.write_text("*.log\n")
    ref = registered(shared_daemon, folder)
    shared_daemon.client.mark_built(ref)
    for i in range(10):
        ignore.write_text("*.lox\n")  # same size: stops excluding notes.log
        step = report_of(shared_daemon, ref).steps[0]
        assert step.status == pb.STEP_STATUS_INVALIDATED, f"edit {i} not seen"
        added = {c.path for c in step.changed_paths if c.kind == pb.CHANGE_KIND_ADDED}
        assert added == {"notes.log"}
        ignore.write_text("*.log\n")
        assert report_of(shared_daemon, ref).all_cached, f"restore after edit {i} not seen"
