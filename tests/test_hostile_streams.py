"""Streams that cost no worker thread: 500 open WatchInvalidations streams,
and the health check and the queries still answer, every stream gets the
change pushed, and the daemon's threads do not grow with the streams.

Found before: each stream held one of the 16 gRPC worker threads for its
whole life, so 16 `ctxwatch watch` (or 16 editor windows) made every other
call, the health check included, wait.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.contexts import make_context
from support.daemon import DEADLINE_S, Daemon, guarded_client, start_daemon, stop_or_kill
from support.hostile import assert_serving, report_of

from ctxwatch.client import CtxwatchClient, channel_target
from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatch_api.v1 import ctxwatch_pb2_grpc as pb_grpc
from ctxwatch_api.wire import channel_options

STREAMS = 500
CHANNELS = 10  # several connections, as many clients would open


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, CtxwatchClient]]:
    daemon = start_daemon(tmp_path_factory.mktemp("hostile-streams-daemon"))
    client = guarded_client(daemon.socket)
    yield daemon, client
    client.close()
    daemon.client.close()
    stop_or_kill(daemon.process)


def threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_500_open_watch_streams_leave_every_call_answering(served, tmp_path):
    daemon, client = served
    watched = make_context(tmp_path / "watched", "FROM scratch\nCOPY a /a\n", {"a": "one\n"})
    client.register(str(watched), name="watched")
    client.register(str(make_context(tmp_path / "other", "FROM scratch\n")), name="other")
    client.mark_built(pb.ContextRef(name="watched"))
    threads_before = threads_of(daemon.process.pid)
    channels = [
        grpc.insecure_channel(channel_target(daemon.socket), options=channel_options()) for _ in range(CHANNELS)
    ]
    request = pb.WatchInvalidationsRequest(context=pb.ContextRef(name="watched"))
    streams = [
        pb_grpc.CtxwatchStub(channels[i % CHANNELS]).WatchInvalidations(request, timeout=10 * DEADLINE_S)
        for i in range(STREAMS)
    ]
    try:
        # Every stream is open and has its first report.
        assert all(next(s).all_cached for s in streams)
        # With all of them open: the health check, a list and a query answer.
        health = health_pb2_grpc.HealthStub(channels[0]).Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE_S)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert {c.name for c in client.list()} == {"watched", "other"}
        assert report_of(client, "other").error == ""
        # No thread per stream: the daemon has about as many threads as before them.
        assert threads_of(daemon.process.pid) < threads_before + 20
        # A change reaches every stream.
        (watched / "a").write_text("two\n")
        pushed = [next(s) for s in streams]
        assert all(not r.all_cached and r.steps[-1].status == pb.STEP_STATUS_INVALIDATED for r in pushed)
    finally:
        for s in streams:
            s.cancel()
        for channel in channels:
            channel.close()
    assert report_of(client, "watched").steps[-1].status == pb.STEP_STATUS_INVALIDATED
    assert_serving(daemon, client)
