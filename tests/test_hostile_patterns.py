"""Hostile patterns: a .dockerignore, COPY --exclude or ${VAR/pattern/} that
would make a backtracking matcher take exponential time answers at once,
with Docker's answer, while another context keeps answering.

(Matching used to take 0.15 s at a 30-character name, 2.6 s at 40, 15.6 s
at 50, and never returned at 200: the daemon sat at 100% CPU holding its
lock.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.contexts import make_context
from support.daemon import Daemon, guarded_client, start_daemon, stop_or_kill
from support.hostile import assert_serving, cli, report_of

from ctxwatch.client import CtxwatchClient
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

POISON = "*a*a*a*a*a*a*a*x"
LONG_A = "a" * 200


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, CtxwatchClient]]:
    daemon = start_daemon(tmp_path_factory.mktemp("hostile-patterns-daemon"))
    client = guarded_client(daemon.socket)
    yield daemon, client
    client.close()
    daemon.client.close()
    stop_or_kill(daemon.process)


def copied_paths_change(client: CtxwatchClient, name: str, ctx: Path, rel: str) -> bool:
    """Record a build, append to rel: does the COPY step re-run because of it?"""
    assert client.mark_built(pb.ContextRef(name=name)).failed == ""
    with open(ctx / rel, "a") as f:
        f.write("changed\n")
    report = report_of(client, name)
    assert report.error == "", report.error
    (copy,) = [s for s in report.steps if s.instruction.startswith("COPY")]
    return copy.status == pb.STEP_STATUS_INVALIDATED


def test_poisoned_dockerignore_answers_with_dockers_selection(served, tmp_path):
    daemon, client = served
    files = {LONG_A: "kept\n", LONG_A + "x": "ignored\n", ".dockerignore": POISON + "\n"}
    ctx = make_context(tmp_path / "poisoned", "FROM scratch\nCOPY . /app/\n", files)
    other = make_context(tmp_path / "other", "FROM scratch\nCOPY . /app/\n", {"f.txt": "x\n"})
    client.register(str(other), name="innocent")

    # While the poisoned context is added through the CLI, the other one answers.
    answers: list[pb.Report] = []
    stop = threading.Event()

    def ask_other() -> None:
        while not stop.is_set():
            answers.append(report_of(guarded_client(daemon.socket, timeout=30), "innocent"))

    asker = threading.Thread(target=ask_other)
    asker.start()
    try:
        added = cli(daemon, "add", str(ctx), "--name", "poisoned")
    finally:
        stop.set()
        asker.join()
    assert added.returncode in (0, 1), added.stderr
    assert answers and all(r.error == "" for r in answers)

    # Docker's answer: "a"*200 does not match (no "x"), "a"*200 + "x" does.
    assert not copied_paths_change(client, "poisoned", ctx, LONG_A + "x")
    assert copied_paths_change(client, "poisoned", ctx, LONG_A)
    assert_serving(daemon, client)


def test_poisoned_copy_exclude_answers(served, tmp_path):
    daemon, client = served
    dockerfile = f"# syntax=docker/dockerfile:1.7-labs\nFROM scratch\nCOPY --exclude={POISON} . /app/\n"
    ctx = make_context(tmp_path / "exclude", dockerfile, {LONG_A: "kept\n", LONG_A + "x": "excluded\n"})
    client.register(str(ctx), name="exclude")
    assert not copied_paths_change(client, "exclude", ctx, LONG_A + "x")
    assert copied_paths_change(client, "exclude", ctx, LONG_A)
    assert_serving(daemon, client)


def test_poisoned_shell_patterns_expand_as_buildkit_does(served, tmp_path):
    daemon, client = served
    # Neither pattern matches (no "x"): both leave V as it is, the name of a file.
    dockerfile = f"FROM scratch\nARG V={LONG_A}\nENV W=${{V/{POISON}/-}} Z=${{V#{POISON}}}\nCOPY $W /w/\nCOPY $Z /z/\n"
    ctx = make_context(tmp_path / "shell", dockerfile, {LONG_A: "kept\n"})
    client.register(str(ctx), name="shell")
    assert client.mark_built(pb.ContextRef(name="shell")).failed == ""
    (ctx / LONG_A).write_text("changed\n")
    report = report_of(client, "shell")
    assert report.error == "", report.error
    copies = [s for s in report.steps if s.instruction.startswith("COPY")]
    assert [s.status for s in copies] == [pb.STEP_STATUS_INVALIDATED] * 2, copies
    assert LONG_A in {c.path for c in copies[0].changed_paths}  # the second re-runs because the first does
    assert_serving(daemon, client)
