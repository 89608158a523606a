"""Bytes as they are: names that are not UTF-8 travel escaped (`\\xNN`) and
never cause INTERNAL; the command line escapes control characters in every
name it prints.

Found before: `COPY \\xfe.txt /x` turned every GetReports, MarkBuilt and
watch of the context into `INTERNAL: ... surrogates not allowed`, and the
all-contexts `status` failed for every context; a file named with terminal
escape sequences was printed raw by `ctxwatch status`, retitling and clearing
the terminal, and a name with a newline forged report lines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import Daemon, guarded_client, start_daemon, stop_or_kill
from support.hostile import assert_serving, cli, report_of

from ctxwatch.client import CtxwatchClient
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

ESCAPES = "\x1b]0;title\x07\x1b[2J"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, CtxwatchClient]]:
    daemon = start_daemon(tmp_path_factory.mktemp("hostile-bytes-daemon"))
    client = guarded_client(daemon.socket)
    yield daemon, client
    client.close()
    daemon.client.close()
    stop_or_kill(daemon.process)


def bytes_context(folder: Path, dockerfile: bytes, files: dict[bytes, bytes]) -> Path:
    folder.mkdir(parents=True)
    (folder / "Dockerfile").write_bytes(dockerfile)
    for name, content in files.items():
        with open(os.path.join(os.fsencode(folder), name), "wb") as f:
            f.write(content)
    return folder


def test_invalid_utf8_in_a_copy_source_is_escaped_never_internal(served, tmp_path):
    daemon, client = served
    ctx = bytes_context(tmp_path / "latin", b"FROM scratch\nCOPY \xfe.txt /x\nRUN echo \xff\n", {b"\xfe.txt": b"one\n"})
    client.register(str(ctx), name="latin")
    report = report_of(client, "latin")
    assert report.error == "", report.error
    copy, run = report.steps
    assert copy.instruction == "COPY \\xfe.txt /x" and copy.error == ""
    assert run.instruction == "RUN echo \\xff"
    built = client.mark_built(pb.ContextRef(name="latin"))
    assert built.failed == "" and built.steps_recorded == 2
    with open(os.path.join(os.fsencode(ctx), b"\xfe.txt"), "ab") as f:
        f.write(b"two\n")
    (after,) = client.reports([pb.ContextRef(name="latin")])
    assert [c.path for c in after.steps[0].changed_paths] == ["\\xfe.txt"]
    stream = client.watch(pb.ContextRef(name="latin"))
    assert next(iter(stream)).steps[0].status == pb.STEP_STATUS_INVALIDATED
    # Every context at once, the others included, and through the CLI.
    assert all(r.error == "" for r in client.reports([]))
    shown = cli(daemon, "status")
    assert shown.returncode in (0, 1) and "INTERNAL" not in shown.stderr, shown.stderr
    assert "\\xfe.txt" in shown.stdout
    assert_serving(daemon, client)


def test_control_characters_in_names_are_escaped_in_human_output(served, tmp_path):
    daemon, client = served
    evil = f"evil{ESCAPES}\nline 1  COPY  cached  forged.txt"
    ctx = bytes_context(
        tmp_path / "evil", b"FROM scratch\nCOPY . /app/\n", {os.fsencode(evil): b"a\n", b"plain.txt": b"b\n"}
    )
    client.register(str(ctx), name="evil")
    client.mark_built(pb.ContextRef(name="evil"))
    with open(os.path.join(os.fsencode(ctx), os.fsencode(evil)), "ab") as f:
        f.write(b"changed\n")
    for args in (("status", "evil"), ("status",), ("check", "evil"), ("ls",)):
        shown = cli(daemon, *args)
        for raw in ("\x1b", "\x07"):
            assert raw not in shown.stdout + shown.stderr, (args, shown.stdout)
    shown = cli(daemon, "status", "evil")
    assert "\\x1b]0;title\\x07\\x1b[2J\\nline 1" in shown.stdout, shown.stdout
    assert not any(line.startswith("line 1  COPY") for line in shown.stdout.splitlines())
    assert_serving(daemon, client)


def test_stage_names_images_and_urls_that_are_not_utf8_are_escaped(served, tmp_path):
    """Every answer's text from a Dockerfile travels escaped (the fields the
    proto's header lists): a stage name, a base image and a URL with a byte
    that is not UTF-8 once made GetReports, MarkBuilt and FindReaders fail
    with INTERNAL, for every context at once."""
    daemon, client = served
    ctx = bytes_context(
        tmp_path / "stages",
        b"FROM img\xfe:1 AS st\xfeage\nADD https://example.com/\xfe /x\nCOPY \xfe.txt /y\n",
        {b"\xfe.txt": b"one\n"},
    )
    client.register(str(ctx), name="stages")
    report = report_of(client, "stages")
    assert report.error == "", report.error
    assert [s.stage for s in report.steps] == ["st\\xfeage"] * 3
    assert sorted(report.assumed_remote) == ["https://example.com/\\xfe", "img\\xfe:1"]
    assert any("img\\xfe:1" in note for note in report.notes), report.notes
    built = client.mark_built(pb.ContextRef(name="stages"))
    assert built.steps_recorded == 3, built
    # The context's folder: every step reading below it, the one reading \xfe.txt included.
    readers = client.find_readers(str(ctx), [pb.ContextRef(name="stages")])
    assert not readers.unknown, readers.unknown
    assert [(r.step.stage, r.source) for r in readers.readers] == [("st\\xfeage", "\\xfe.txt")]
    assert_serving(daemon, client)


def test_an_extended_attribute_whose_name_is_not_utf8_is_hashed_as_its_bytes(served, tmp_path):
    daemon, client = served
    ctx = bytes_context(tmp_path / "xattr", b"FROM scratch\nCOPY a.txt /a\n", {b"a.txt": b"one\n"})
    file = os.path.join(os.fsencode(ctx), b"a.txt")
    os.setxattr(file, b"user.\xff\xfe", b"first")
    assert b"user.\xff\xfe" in map(os.fsencode, os.listxattr(file))
    client.register(str(ctx), name="xattr")
    report = report_of(client, "xattr")
    assert report.error == "" and report.steps[0].error == "", report
    built = client.mark_built(pb.ContextRef(name="xattr"))
    assert built.failed == "" and built.steps_recorded == 1
    # The attribute's value is part of the file's digest: changed, the step is invalidated and the name is shown.
    os.setxattr(file, b"user.\xff\xfe", b"second")
    (step,) = report_of(client, "xattr").steps
    assert step.status == pb.STEP_STATUS_INVALIDATED
    assert [(c.path, c.detail) for c in step.changed_paths] == [("a.txt", "extended attributes user.\\xff\\xfe")]
    # Put back, the step is cached again: the name went to the record and back as the same bytes.
    os.setxattr(file, b"user.\xff\xfe", b"first")
    assert report_of(client, "xattr").steps[0].status == pb.STEP_STATUS_CACHED
    assert_serving(daemon, client)
