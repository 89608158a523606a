"""The API for editors, against the real daemon: step ranges, a query with an
unsaved Dockerfile's text, which steps read a file (FindReaders), the health
service by the service's name and server reflection v1."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from support.contexts import make_context

from ctxwatch.client import CtxwatchError, channel_target
from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatch_api.v1 import ctxwatch_pb2_grpc as pb_grpc
from ctxwatchd.dockerfile.parser import Span, parse

MULTILINE = """\
# syntax=docker/dockerfile:1
FROM alpine:3.20 AS base
  RUN apk add \\
      curl \\
   # a comment inside
      jq
COPY <<EOF /etc/motd
hello
EOF
COPY app.py /app/
"""


def _range(step: pb.Step) -> tuple[int, int, int, int]:
    r = step.range
    return r.start_line, r.start_column, r.end_line, r.end_column


def _error_range(report: pb.Report) -> tuple[int, int, int, int]:
    r = report.error_range
    return r.start_line, r.start_column, r.end_line, r.end_column


def test_parser_spans_cover_multi_line_instructions_exactly():
    spans = [ins.span for ins in parse(MULTILINE).instructions]
    assert spans == [
        Span(2, 0, 2, 24),  # FROM alpine:3.20 AS base
        Span(3, 2, 6, 8),  # indented RUN, continuations, a comment inside: ends after "jq"
        Span(7, 0, 9, 3),  # heredoc: ends after its terminator
        Span(10, 0, 10, 17),
    ]


def test_report_steps_carry_their_range(shared_daemon, tmp_path):
    ctx = make_context(tmp_path / "ranges", MULTILINE, {"app.py": "print(1)\n"})
    client = shared_daemon.client
    client.register(str(ctx), name="ranges")
    [report] = client.reports(["ranges"])
    assert report.error == ""
    assert [(s.instruction.split()[0], _range(s)) for s in report.steps] == [
        ("FROM", (2, 0, 2, 24)),
        ("RUN", (3, 2, 6, 8)),
        ("COPY", (7, 0, 9, 3)),
        ("COPY", (10, 0, 10, 17)),
    ]


def test_unsaved_dockerfile_content_is_planned_instead_of_the_file(shared_daemon, tmp_path):
    ctx = make_context(tmp_path / "draft", "FROM scratch\nCOPY a.txt /\n", {"a.txt": "a", "b.txt": "b"})
    client = shared_daemon.client
    client.register(str(ctx), name="draft")
    client.mark_built("draft")
    draft = "FROM scratch\nCOPY a.txt /\nCOPY b.txt /\n"
    [report] = client.reports(["draft"], pb.BuildOptions(dockerfile_content=draft))
    assert [(s.line, s.status) for s in report.steps] == [
        (2, pb.STEP_STATUS_CACHED),
        (3, pb.STEP_STATUS_INVALIDATED),
    ]
    assert report.steps[1].cause == pb.CAUSE_NEVER_BUILT
    # The file on disk still answers for itself, and was not changed.
    [saved] = client.reports(["draft"])
    assert [(s.line, s.status) for s in saved.steps] == [(2, pb.STEP_STATUS_CACHED)]
    assert (ctx / "Dockerfile").read_text() == "FROM scratch\nCOPY a.txt /\n"
    # A build reads the saved file: recording one for a draft is refused.
    with pytest.raises(CtxwatchError) as err:
        client.mark_built("draft", pb.BuildOptions(dockerfile_content=draft))
    assert err.value.code == "INVALID_ARGUMENT"
    assert "dockerfile_content" in err.value.message


def test_errors_carry_the_range_of_what_fails(shared_daemon, tmp_path):
    ctx = make_context(tmp_path / "broken", "FROM scratch\nCOPY a.txt /\n", {"a.txt": "a"})
    client = shared_daemon.client
    client.register(str(ctx), name="broken")

    def report_for(text: str) -> pb.Report:
        return client.reports(["broken"], pb.BuildOptions(dockerfile_content=text))[0]

    # A parse error: the line that does not parse.
    report = report_for("FROM scratch\n  COPY <<EOF /x\nnever ends\n")
    assert "unterminated heredoc" in report.error
    assert (report.error_line, _error_range(report)) == (2, (2, 2, 2, 15))
    # An instruction BuildKit refuses, written over two lines.
    report = report_for("FROM scratch\nCOPPY a.txt \\\n  /x\n")
    assert "unknown instruction" in report.error.lower()
    assert _error_range(report) == (2, 0, 3, 4)
    # A source that does not exist: an error of that step, with the step's range.
    [step] = report_for("FROM scratch\nCOPY missing.txt /\n").steps
    assert step.status == pb.STEP_STATUS_ERROR and "not found" in step.error
    assert _range(step) == (2, 0, 2, 18)


def find_readers(daemon, path: Path, *names: str) -> pb.FindReadersResponse:
    with grpc.insecure_channel(channel_target(daemon.socket)) as channel:
        request = pb.FindReadersRequest(path=str(path), contexts=[pb.ContextRef(name=n) for n in names])
        return pb_grpc.CtxwatchStub(channel).FindReaders(request, timeout=30)


def test_find_readers_returns_steps_of_both_contexts_in_build_order(shared_daemon, tmp_path):
    repo = make_context(
        tmp_path / "repo",
        "FROM scratch\nCOPY shared/ /shared/\nCOPY api/ /api/\n",
        {"shared/lib.py": "x = 1\n", "api/main.py": "", "web/index.html": "", "shared/notes.log": ""},
    )
    (repo / ".dockerignore").write_text("**/*.log\n")
    (repo / "web.Dockerfile").write_text(
        "FROM scratch AS build\nCOPY web/ /web/\nCOPY shared/*.py /lib/\nRUN true\n"
        "FROM scratch\nCOPY --from=build /web /web\n"
    )
    client = shared_daemon.client
    client.register(str(repo), name="readers-api")
    client.register(str(repo), dockerfile="web.Dockerfile", name="readers-web")
    names = ("readers-api", "readers-web")

    found = find_readers(shared_daemon, repo / "shared" / "lib.py", *names)
    assert [(r.context.name, r.step.line, r.step.instruction, r.source) for r in found.readers] == [
        ("readers-api", 2, "COPY shared/ /shared/", "shared"),
        ("readers-web", 3, "COPY shared/*.py /lib/", "shared/lib.py"),
    ]
    assert found.readers[1].context.dockerfile == str(repo / "web.Dockerfile")
    # What follows each: api's COPY api/; web's RUN, and the final stage's
    # copy of /web, which reads what that RUN may have written.
    assert [r.steps_after for r in found.readers] == [1, 2]
    assert _range(found.readers[0].step) == (2, 0, 2, 21)

    # A folder: every step reading something inside it, in build order.
    folder = find_readers(shared_daemon, repo / "shared", *names)
    assert [(r.context.name, r.step.line) for r in folder.readers] == [("readers-api", 2), ("readers-web", 3)]
    # An ignored file is not sent, so nothing reads it.
    assert list(find_readers(shared_daemon, repo / "shared" / "notes.log", *names).readers) == []
    # A file not there yet is read by the steps that would pick it up.
    new = find_readers(shared_daemon, repo / "shared" / "new.py", *names)
    assert [(r.context.name, r.step.line) for r in new.readers] == [("readers-api", 2), ("readers-web", 3)]
    # A file only one context copies.
    web = find_readers(shared_daemon, repo / "web" / "index.html", *names)
    assert [(r.context.name, r.step.line) for r in web.readers] == [("readers-web", 2)]


def test_find_readers_checks_its_path(shared_daemon):
    with pytest.raises(grpc.RpcError) as err:
        find_readers(shared_daemon, Path("relative/path"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "path" in err.value.details()


def test_health_answers_for_the_service_name(shared_daemon):
    with grpc.insecure_channel(channel_target(shared_daemon.socket)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service="ctxwatch.v1.Ctxwatch"), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as err:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_server_reflection_v1_lists_and_describes(shared_daemon):
    """grpc.reflection.v1 (what current grpcurl asks first): v1alpha's messages under another name."""
    with grpc.insecure_channel(channel_target(shared_daemon.socket)) as channel:
        call = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="ctxwatch.v1.Ctxwatch"),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
        ]
        listed, described, itself = list(call(iter(requests), timeout=10))
    services = {s.name for s in listed.list_services_response.service}
    assert {"ctxwatch.v1.Ctxwatch", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} <= services
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(b)
        for b in described.file_descriptor_response.file_descriptor_proto
    ]
    [service] = [s for f in files if f.package == "ctxwatch.v1" for s in f.service]
    assert "FindReaders" in {m.name for m in service.method}
    [v1] = [
        descriptor_pb2.FileDescriptorProto.FromString(b) for b in itself.file_descriptor_response.file_descriptor_proto
    ]
    assert v1.package == "grpc.reflection.v1"
    [method] = v1.service[0].method
    assert method.input_type == ".grpc.reflection.v1.ServerReflectionRequest"
