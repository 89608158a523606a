"""Hostile gRPC clients: every RPC validates its input, odd bytes on the wire
are handled the proto3 way, clients that vanish mid-stream cost nothing, and
a crowd of clients querying while files change always gets consistent answers.

Raw stubs and raw channels are used where the Python client would not build
the request (it makes paths absolute, it serializes valid messages only).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from support.contexts import make_context
from support.local import LocalClient

from ctxwatch.client import CtxwatchClient, channel_target
from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatch_api.v1 import ctxwatch_pb2_grpc as pb_grpc

DEADLINE_S = 60.0  # a watchdog for hung calls, not a speed bar
SERVICE = "/ctxwatch.v1.Ctxwatch/"
DOCKERFILE = """\
FROM scratch
ARG FLAVOR=plain
COPY app.txt /app/app.txt
COPY other.txt /app/other.txt
RUN ["/bin/true"]
"""
FILES = {"app.txt": "version A\n", "other.txt": "other\n"}
COPY_APP = "COPY app.txt /app/app.txt"
MiB = 1 << 20


def step_of(report: pb.Report, instruction: str) -> pb.Step:
    return next(s for s in report.steps if s.instruction == instruction)


@pytest.fixture(scope="module")
def registered(shared_daemon, tmp_path_factory) -> Iterator[tuple[object, str, Path]]:
    """The shared daemon with one context of this module's, built once."""
    ctx = make_context(tmp_path_factory.mktemp("hostile-clients") / "ctx", DOCKERFILE, FILES)
    name = "hostile-clients"
    shared_daemon.client.register(str(ctx), name=name)
    shared_daemon.client.mark_built(pb.ContextRef(name=name))
    yield shared_daemon, name, ctx
    shared_daemon.client.unregister(pb.ContextRef(name=name))


def assert_still_serving(daemon) -> None:
    assert daemon.process.poll() is None, "ctxwatchd exited"
    with grpc.insecure_channel(channel_target(daemon.socket)) as channel:
        stub = pb_grpc.CtxwatchStub(channel)
        stub.ListContexts(pb.ListContextsRequest(), timeout=DEADLINE_S)
        assert stub.GetDaemonStatus(pb.GetDaemonStatusRequest(), timeout=DEADLINE_S).pid == daemon.process.pid


def call(daemon, method: str, request):
    """One RPC through the generated stub on a channel of its own (a stream: its first message)."""
    with grpc.insecure_channel(channel_target(daemon.socket)) as channel:
        result = getattr(pb_grpc.CtxwatchStub(channel), method)(request, timeout=DEADLINE_S)
        if method == "WatchInvalidations":
            try:
                return next(result)
            finally:
                result.cancel()
        return result


def rpc_error(daemon, method: str, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(daemon, method, request)
    return caught.value


def raw_call(daemon, method: str, payload: bytes, response_type):
    """Send bytes as they are, as a client in another language could."""
    with grpc.insecure_channel(channel_target(daemon.socket)) as channel:
        rpc = channel.unary_unary(
            SERVICE + method, request_serializer=lambda b: b, response_deserializer=response_type.FromString
        )
        return rpc(payload, timeout=DEADLINE_S)


def decisions(report: pb.Report) -> tuple:
    """What a report decides, not its wording."""
    return (
        report.error,
        report.all_cached,
        report.builds_recorded,
        tuple(
            (
                s.instruction,
                s.key,
                s.status,
                s.cause,
                s.upstream_step,
                s.error,
                tuple((c.path, c.kind) for c in s.changed_paths),
            )
            for s in report.steps
        ),
    )


# -- paths and names ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["relative/dir", ".", "./ctx", "~/ctx"])
def test_relative_register_path_is_invalid_argument(shared_daemon, path):
    err = rpc_error(shared_daemon, "RegisterContext", pb.RegisterContextRequest(path=path, name="hostile-rel"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "path" in err.details() and "absolute" in err.details()
    assert_still_serving(shared_daemon)


@pytest.mark.parametrize("kind", ["relative to the daemon's cwd", "empty"])
def test_context_ref_path_must_be_absolute(registered, kind):
    """A relative (or empty) ContextRef.path is INVALID_ARGUMENT, as in
    RegisterContext. Found failing: Engine.resolve() ran os.path.realpath on it
    without checking, so it was resolved against the daemon's working
    directory ("" being that directory) and silently named a registered
    context."""
    daemon, name, ctx = registered
    cwd = os.readlink(f"/proc/{daemon.process.pid}/cwd")
    path = os.path.relpath(ctx, cwd) if kind != "empty" else ""
    assert not os.path.isabs(path)
    try:
        response = call(daemon, "GetReports", pb.GetReportsRequest(contexts=[pb.ContextRef(path=path)]))
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
        assert "context" in err.details() and "absolute" in err.details()
    else:
        pytest.fail(
            f"a relative context path {path!r} was accepted and resolved against the daemon's cwd "
            f"{cwd}: {[r.context.name for r in response.reports]}"
        )
    assert_still_serving(daemon)


def test_nul_byte_in_context_ref_path_is_invalid_argument(registered):
    """Found failing: Engine.resolve() passed ContextRef.path to
    os.path.realpath, which raised ValueError("embedded null byte"), and the
    call failed with INTERNAL."""
    daemon, name, ctx = registered
    err = rpc_error(daemon, "GetReports", pb.GetReportsRequest(contexts=[pb.ContextRef(path=f"{ctx}\0x")]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert "context" in err.details() and "NUL" in err.details()
    assert_still_serving(daemon)


def test_nul_byte_in_register_path_is_invalid_argument(shared_daemon, tmp_path):
    err = rpc_error(shared_daemon, "RegisterContext", pb.RegisterContextRequest(path=f"{tmp_path}\0x"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "NUL" in err.details()
    assert_still_serving(shared_daemon)


@pytest.mark.parametrize(
    "method, request_",
    [
        ("GetReports", pb.GetReportsRequest(contexts=[pb.ContextRef()])),
        ("MarkBuilt", pb.MarkBuiltRequest()),
        ("UnregisterContext", pb.UnregisterContextRequest()),
        ("WatchInvalidations", pb.WatchInvalidationsRequest()),
        ("PruneBuilds", pb.PruneBuildsRequest(contexts=[pb.ContextRef()])),
    ],
)
def test_context_ref_with_neither_name_nor_path_is_invalid_argument(registered, method, request_):
    daemon, name, ctx = registered
    err = rpc_error(daemon, method, request_)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "context" in err.details()
    (report,) = call(daemon, "GetReports", pb.GetReportsRequest(contexts=[pb.ContextRef(name=name)])).reports
    assert report.builds_recorded == 1  # nothing was recorded or pruned by the bad call
    assert_still_serving(daemon)


@pytest.mark.parametrize(
    "method, request_",
    [
        ("GetReports", pb.GetReportsRequest(contexts=[pb.ContextRef(name="")])),
        ("MarkBuilt", pb.MarkBuiltRequest(context=pb.ContextRef(name=""))),
        ("UnregisterContext", pb.UnregisterContextRequest(context=pb.ContextRef(name=""))),
        ("WatchInvalidations", pb.WatchInvalidationsRequest(context=pb.ContextRef(name=""))),
    ],
)
def test_empty_context_name_is_refused_naming_the_field(registered, method, request_):
    daemon, name, ctx = registered
    err = rpc_error(daemon, method, request_)
    assert err.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    assert "context" in err.details()
    assert_still_serving(daemon)


@pytest.mark.parametrize("bad_name", [" ", "\t\n", "a/b"])
def test_blank_or_slashed_register_name_is_invalid_argument(registered, bad_name):
    daemon, name, ctx = registered
    err = rpc_error(daemon, "RegisterContext", pb.RegisterContextRequest(path=str(ctx), name=bad_name))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in err.details()
    assert bad_name not in [c.name for c in call(daemon, "ListContexts", pb.ListContextsRequest()).contexts]
    assert_still_serving(daemon)


# -- build args ---------------------------------------------------------------------------


def with_args(method: str, name: str, ctx: Path, args: dict[str, str]):
    ref = pb.ContextRef(name=name)
    options = pb.BuildOptions(build_args=args)
    return {
        "RegisterContext": pb.RegisterContextRequest(path=str(ctx), name=name, build_args=args),
        "GetReports": pb.GetReportsRequest(contexts=[ref], options=options),
        "MarkBuilt": pb.MarkBuiltRequest(context=ref, options=options),
        "WatchInvalidations": pb.WatchInvalidationsRequest(context=ref, options=options),
    }[method]


ARG_METHODS = ["RegisterContext", "GetReports", "MarkBuilt", "WatchInvalidations"]


@pytest.mark.parametrize("method", ARG_METHODS)
def test_100000_build_args_are_invalid_argument_naming_the_limit(registered, method):
    daemon, name, ctx = registered
    args = {f"ARG_{i}": "v" for i in range(100_000)}
    err = rpc_error(daemon, method, with_args(method, name, ctx, args))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "build_args" in err.details() and "100000" in err.details() and "1000" in err.details().replace("100000", "")
    (report,) = call(daemon, "GetReports", pb.GetReportsRequest(contexts=[pb.ContextRef(name=name)])).reports
    assert report.builds_recorded == 1 and dict(report.context.build_args) == {}
    assert_still_serving(daemon)


def test_build_args_at_the_limit_are_accepted_and_one_more_is_not(registered):
    daemon, name, ctx = registered
    at_limit = {f"ARG_{i}": "v" for i in range(1000)}
    (report,) = call(daemon, "GetReports", with_args("GetReports", name, ctx, at_limit)).reports
    assert report.error == "" and any("ARG_999" in note for note in report.notes)
    err = rpc_error(daemon, "GetReports", with_args("GetReports", name, ctx, {**at_limit, "ONE_MORE": "v"}))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "1001" in err.details()


@pytest.mark.parametrize("method", ARG_METHODS)
@pytest.mark.parametrize("arg", ["A=B", "A B", " A", "A\tB", "A\nB", ""])
def test_bad_build_arg_names_are_invalid_argument(registered, method, arg):
    daemon, name, ctx = registered
    err = rpc_error(daemon, method, with_args(method, name, ctx, {arg: "value", "GOOD": "x"}))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "build_args" in err.details() and repr(arg) in err.details()
    (report,) = call(daemon, "GetReports", pb.GetReportsRequest(contexts=[pb.ContextRef(name=name)])).reports
    assert report.builds_recorded == 1 and dict(report.context.build_args) == {}


# -- bytes on the wire --------------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, wire_type: int, payload: bytes) -> bytes:
    tag = varint(number << 3 | wire_type)
    if wire_type == 2:
        return tag + varint(len(payload)) + payload
    return tag + payload


UNKNOWN_FIELDS = (
    field(999, 0, varint(123456789))
    + field(1000, 2, b"unknown bytes \xff\x00")
    + field(1001, 5, b"\x01\x02\x03\x04")
    + field(1002, 1, b"\x00" * 8)
    + field(536_870_911, 0, varint(1))
)  # the largest field number


def test_unknown_fields_are_ignored(registered):
    daemon, name, ctx = registered
    listed = raw_call(daemon, "ListContexts", UNKNOWN_FIELDS, pb.ListContextsResponse)
    assert name in [c.name for c in listed.contexts]

    ref = pb.ContextRef(name=name).SerializeToString() + UNKNOWN_FIELDS  # unknown fields nested too
    options = pb.BuildOptions(build_args={"FLAVOR": "spicy"}).SerializeToString() + UNKNOWN_FIELDS
    payload = field(1, 2, ref) + UNKNOWN_FIELDS + field(2, 2, options)
    odd = raw_call(daemon, "GetReports", payload, pb.GetReportsResponse)
    plain = call(
        daemon,
        "GetReports",
        pb.GetReportsRequest(
            contexts=[pb.ContextRef(name=name)], options=pb.BuildOptions(build_args={"FLAVOR": "spicy"})
        ),
    )
    assert [decisions(r) for r in odd.reports] == [decisions(r) for r in plain.reports]
    run = odd.reports[0].steps[-1]  # the build arg was read, not dropped with the unknown fields
    assert (run.status, run.cause) == (pb.STEP_STATUS_INVALIDATED, pb.CAUSE_BUILD_ARG_CHANGED)

    status = raw_call(daemon, "GetDaemonStatus", UNKNOWN_FIELDS, pb.DaemonStatus)
    assert status.pid == daemon.process.pid
    assert_still_serving(daemon)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff\xff",  # wire type 7 does not exist
        field(1, 2, b"")[:1] + varint(1000) + b"short",  # a length past the end
        b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # a varint longer than 10 bytes
    ],
)
def test_malformed_request_bytes_are_refused_and_the_daemon_still_serves(registered, payload):
    daemon, name, ctx = registered
    with pytest.raises(grpc.RpcError) as caught:
        raw_call(daemon, "GetReports", payload, pb.GetReportsResponse)
    assert caught.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL)
    assert_still_serving(daemon)


@pytest.mark.parametrize(
    "method, request_",
    [
        ("GetReports", pb.GetReportsRequest(contexts=[pb.ContextRef(name="x" * (5 * MiB))])),
        ("RegisterContext", None),
    ],
)
def test_request_over_4_mib_is_resource_exhausted(registered, method, request_):
    daemon, name, ctx = registered
    if request_ is None:
        request_ = pb.RegisterContextRequest(path=str(ctx), name="oversized", build_args={"BIG": "v" * (5 * MiB)})
    err = rpc_error(daemon, method, request_)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "oversized" not in [c.name for c in call(daemon, "ListContexts", pb.ListContextsRequest()).contexts]
    assert_still_serving(daemon)


@pytest.mark.parametrize("keep", [-1, -(2**31)])
def test_negative_keep_is_invalid_argument_and_prunes_nothing(registered, keep):
    daemon, name, ctx = registered
    for refs in ([], [pb.ContextRef(name=name)]):
        err = rpc_error(daemon, "PruneBuilds", pb.PruneBuildsRequest(contexts=refs, keep=keep))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "keep" in err.details()
    (report,) = call(daemon, "GetReports", pb.GetReportsRequest(contexts=[pb.ContextRef(name=name)])).reports
    assert report.builds_recorded == 1 and report.all_cached
    assert_still_serving(daemon)


# -- streams that are abandoned ------------------------------------------------------------


def test_watch_clients_that_disconnect_mid_stream_cost_nothing(daemon, tmp_path):
    """More abandoned streams than the daemon has RPC worker threads (16): a
    stream that outlived its client would hold a worker for good, and after
    16 of them no call would be answered."""
    ctx = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
    daemon.client.register(str(ctx), name="watched")
    request = pb.WatchInvalidationsRequest(context=pb.ContextRef(name="watched"))
    target = channel_target(daemon.socket)
    for round_no in range(8):
        # Gone before reading anything.
        channel = grpc.insecure_channel(target)
        pb_grpc.CtxwatchStub(channel).WatchInvalidations(request, timeout=DEADLINE_S)
        channel.close()
        # Gone after the first report.
        channel = grpc.insecure_channel(target)
        stream = pb_grpc.CtxwatchStub(channel).WatchInvalidations(request, timeout=DEADLINE_S)
        assert next(stream).context.name == "watched"
        channel.close()
        # Gone after a pushed report (the stream was waiting for file events).
        channel = grpc.insecure_channel(target)
        stream = pb_grpc.CtxwatchStub(channel).WatchInvalidations(request, timeout=DEADLINE_S)
        first = next(stream)
        (ctx / "app.txt").write_text(f"round {round_no}\n")
        pushed = next(stream)
        assert step_of(pushed, COPY_APP).key != step_of(first, COPY_APP).key
        channel.close()

    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.CtxwatchStub(channel)
        assert stub.GetDaemonStatus(pb.GetDaemonStatusRequest(), timeout=DEADLINE_S).contexts == 1
        # Every worker is free: 16 calls at once, each on its own stream, all answered.
        streams = [stub.WatchInvalidations(request, timeout=DEADLINE_S) for _ in range(16)]
        try:
            assert all(next(s).context.name == "watched" for s in streams)
        finally:
            for s in streams:
                s.cancel()
    (ctx / "app.txt").write_text("after the crowd left\n")
    (report,) = daemon.client.reports([pb.ContextRef(name="watched")])
    assert step_of(report, COPY_APP).status == pb.STEP_STATUS_INVALIDATED and report.error == ""
    assert daemon.process.poll() is None


# -- a crowd ------------------------------------------------------------------------------

CLIENTS = 100
REPORTS_PER_CLIENT = 5
WRITES = 41


def test_100_concurrent_clients_get_consistent_reports_while_files_change(daemon, tmp_path):
    ctx = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
    staging = tmp_path / "staging"  # same file system: os.replace is atomic
    staging.mkdir()
    version_a, version_b = "version A\n", "version B\n"
    ref = pb.ContextRef(name="crowd")
    client = daemon.client
    client.register(str(ctx), name="crowd")
    client.mark_built(ref)

    def put(content: str) -> None:
        (staging / "app.txt").write_text(content)
        os.replace(staging / "app.txt", ctx / "app.txt")

    (state_a,) = client.reports([ref])
    put(version_b)
    (state_b,) = client.reports([ref])
    put(version_a)
    assert state_a.all_cached and not state_b.all_cached
    assert step_of(state_b, COPY_APP).cause == pb.CAUSE_INPUTS_CHANGED
    assert [(c.path, c.kind) for c in step_of(state_b, COPY_APP).changed_paths] == [("app.txt", pb.CHANGE_KIND_CONTENT)]
    expected = {decisions(state_a): "A", decisions(state_b): "B"}

    start = threading.Barrier(CLIENTS + 1)
    progress = threading.Condition()
    answered = [0]
    seen: list[pb.Report] = []
    failures: list[str] = []

    def query() -> None:
        with grpc.insecure_channel(channel_target(daemon.socket)) as channel:
            own = CtxwatchClient(channel, daemon.socket, timeout=DEADLINE_S)
            try:
                start.wait(timeout=DEADLINE_S)
                for _ in range(REPORTS_PER_CLIENT):
                    (report,) = own.reports([ref])
                    with progress:
                        seen.append(report)
                        answered[0] += 1
                        progress.notify_all()
            except Exception as e:
                with progress:
                    failures.append(f"{type(e).__name__}: {e}")
                    progress.notify_all()

    def rewrite() -> None:
        total = CLIENTS * REPORTS_PER_CLIENT
        start.wait(timeout=DEADLINE_S)
        for i in range(WRITES):
            with progress:  # spread the writes over the queries, paced by answers, not by time
                progress.wait_for(
                    lambda i=i: answered[0] + len(failures) >= i * total // (WRITES + 4), timeout=DEADLINE_S
                )
            put(version_b if i % 2 == 0 else version_a)

    threads = [threading.Thread(target=query, daemon=True) for _ in range(CLIENTS)]
    threads.append(threading.Thread(target=rewrite, daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=DEADLINE_S * 2)
    assert not any(t.is_alive() for t in threads), "a client or the writer never finished"
    assert failures == []
    assert len(seen) == CLIENTS * REPORTS_PER_CLIENT
    odd = [decisions(r) for r in seen if decisions(r) not in expected]
    assert odd == [], f"{len(odd)} report(s) match neither state, e.g. {odd[0]}"

    # The writes have stopped (last one: version B): the answer equals a fresh scan.
    (final,) = client.reports([ref])
    assert decisions(final) == decisions(state_b)
    image = tmp_path / "state-image"
    shutil.copytree(daemon.state_dir, image)
    with LocalClient(image) as local:
        (fresh,) = local.reports([ref])
    assert decisions(final) == decisions(fresh)
    assert daemon.process.poll() is None


@pytest.mark.parametrize("name", ["a\x00b", "two\nlines", "x" * 129, "-rf", " "])
def test_unprintable_long_or_option_like_names_are_invalid_argument(shared_daemon, tmp_path, name):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    err = rpc_error(shared_daemon, "RegisterContext", pb.RegisterContextRequest(path=str(ctx), name=name))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in err.details()
    assert_still_serving(shared_daemon)


def test_too_many_context_refs_in_one_request_are_invalid_argument(shared_daemon):
    refs = [pb.ContextRef(name=f"n{i}") for i in range(1001)]
    err = rpc_error(shared_daemon, "GetReports", pb.GetReportsRequest(contexts=refs))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1000" in err.details()
    assert_still_serving(shared_daemon)
