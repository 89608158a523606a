"""Caps on untrusted input, each a clear error while the daemon serves the rest
(README.md, "Limits").

Found before: an ARG expansion bomb of 16 lines reached 64 MiB values and
1 GB RSS, then MemoryError; 100,000 .dockerignore patterns took 78 s and
1.44 GB; a 10 MB Dockerfile of 200,000 steps had no answer in 60 s; one
GetReports naming a context 1,000 times made a 495 MB reply; build args made
`ctxwatch ls` too large for the client to receive.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.contexts import make_context
from support.daemon import Daemon, guarded_client, start_daemon, stop_or_kill
from support.hostile import assert_serving, cli, peak_rss_kib, report_of

from ctxwatch.client import CtxwatchClient
from ctxwatch_api import wire
from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatchd import limits
from ctxwatchd.server import service

RSS_BOUND_KIB = 200 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, CtxwatchClient]]:
    daemon = start_daemon(tmp_path_factory.mktemp("hostile-caps-daemon"))
    client = guarded_client(daemon.socket)
    client.register(str(make_context(tmp_path_factory.mktemp("innocent") / "ctx", "FROM scratch\n")), name="innocent")
    yield daemon, client
    client.close()
    daemon.client.close()
    stop_or_kill(daemon.process)


def assert_contained(daemon: Daemon, client: CtxwatchClient) -> None:
    """The daemon serves the others, and its memory never went near what the input asked for."""
    assert report_of(client, "innocent").error == ""
    assert peak_rss_kib(daemon.process.pid) < RSS_BOUND_KIB
    assert_serving(daemon, client)


def test_arg_expansion_bomb_is_an_error_naming_the_line(served, tmp_path):
    daemon, client = served
    lines = ["ARG A0=" + "x" * 16] + [f"ARG A{i}=${{A{i - 1}}}${{A{i - 1}}}" for i in range(1, 40)]
    ctx = make_context(tmp_path / "bomb", "\n".join(["FROM scratch", *lines, "RUN echo $A39", ""]))
    client.register(str(ctx), name="bomb")
    report = report_of(client, "bomb")
    assert f"expands to more than {limits.MAX_EXPANSION_CHARS} characters" in report.error
    assert report.error_line == 2 + 17  # A17 (line 19) is the first value over 1 MiB: 16 * 2**17 characters
    assert_contained(daemon, client)


def test_many_expansions_under_the_word_limit_hit_the_dockerfile_budget(served, tmp_path):
    daemon, client = served
    # A15 has 16 * 2**15 characters (half the word limit); forty copies of it are over the budget.
    lines = ["ARG A0=" + "x" * 16] + [f"ARG A{i}=${{A{i - 1}}}${{A{i - 1}}}" for i in range(1, 16)]
    lines += [f"ENV E{i}=$A15" for i in range(40)]
    ctx = make_context(tmp_path / "budget", "\n".join(["FROM scratch", *lines, ""]))
    client.register(str(ctx), name="budget")
    report = report_of(client, "budget")
    assert f"exceed {limits.MAX_PLAN_EXPANSION_CHARS} characters together" in report.error
    assert_contained(daemon, client)


@pytest.mark.parametrize(
    ("patterns", "expected", "line"),
    [
        ("".join(f"dir{i}/*.tmp\n" for i in range(100_000)), f"larger than {limits.MAX_IGNORE_FILE_BYTES} bytes", 0),
        ("".join(f"d{i}\n" for i in range(20_000)), f"more than {limits.MAX_IGNORE_PATTERNS} patterns", 10_001),
    ],
    ids=["100000-patterns", "20000-short-patterns"],
)
def test_too_many_ignore_patterns_are_an_error(served, tmp_path, patterns, expected, line):
    daemon, client = served
    ctx = make_context(tmp_path / "patterns", "FROM scratch\nCOPY . /\n", {".dockerignore": patterns})
    client.register(str(ctx), name=f"patterns-{line}")
    report = report_of(client, f"patterns-{line}")
    assert expected in report.error
    assert report.error_line == line
    assert_contained(daemon, client)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (50_000, f"more than {limits.MAX_INSTRUCTIONS} instructions"),
        (200_000, f"larger than {limits.MAX_DOCKERFILE_BYTES} bytes"),
    ],
)
def test_huge_dockerfiles_are_an_error(served, tmp_path, steps, expected):
    daemon, client = served
    ctx = make_context(tmp_path / "huge", "FROM scratch\n" + "".join(f"RUN echo {i}\n" for i in range(steps)))
    added = cli(daemon, "add", str(ctx), "--name", f"huge-{steps}")
    assert expected in added.stdout + added.stderr, added
    assert_contained(daemon, client)


def test_a_context_named_twice_in_one_request_is_refused(served):
    daemon, client = served
    with pytest.raises(Exception) as refused:
        client.reports([pb.ContextRef(name="innocent")] * 1000)
    assert "'innocent' is named more than once" in str(refused.value)
    assert_contained(daemon, client)


def test_build_args_over_the_size_limit_are_refused(served, tmp_path):
    daemon, client = served
    ctx = make_context(tmp_path / "args", "FROM scratch\n")
    args = {f"A{i}": "v" * 3900 for i in range(999)}
    with pytest.raises(Exception) as refused:
        client.register(str(ctx), name="args", build_args=args)
    assert f"at most {limits.MAX_BUILD_ARG_BYTES}" in str(refused.value)
    listed = cli(daemon, "ls")
    assert listed.returncode == 0, listed.stderr
    assert_contained(daemon, client)


def test_replies_over_4_mib_are_received_whole(daemon, tmp_path):
    # A daemon of its own: 54,000 steps kept in memory are no bomb, and would count in the others' peak.
    client = guarded_client(daemon.socket)
    ctx = make_context(tmp_path / "wide", "FROM scratch\n" + "".join(f"RUN echo {i}\n" for i in range(9000)))
    names = [f"wide-{i}" for i in range(6)]
    for name in names:
        client.register(str(ctx), name=name, build_args={"N": name})
    reports = client.reports([pb.ContextRef(name=n) for n in names])
    # More than the 4 MiB a gRPC client receives by default.
    assert sum(r.ByteSize() for r in reports) > 4 << 20
    assert all(len(r.steps) == 9000 and not any("left out" in n for n in r.notes) for r in reports)
    assert wire.MAX_REPLY_BYTES > limits.REPLY_BUDGET_BYTES
    assert dict(wire.channel_options())["grpc.max_receive_message_length"] == wire.MAX_REPLY_BYTES
    assert_serving(daemon, client)
    client.close()


def test_reports_past_the_reply_budget_are_sent_without_steps_and_say_so(monkeypatch):
    reports = [pb.Report(steps=[pb.Step(instruction=f"RUN echo {i}") for i in range(100)]) for _ in range(3)]
    budget = reports[0].ByteSize() + 10
    monkeypatch.setattr(service, "REPLY_BUDGET_BYTES", budget)
    sent = service._within_budget(reports)
    assert [len(r.steps) for r in sent] == [100, 0, 0]
    assert [list(r.notes) for r in sent[1:]] == [
        [f"100 steps left out: the reply would exceed {budget} bytes; ask for this context alone"]
    ] * 2
    assert all(len(r.steps) == 100 for r in reports)  # the engine's own reports are left whole
