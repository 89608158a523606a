"""Explanations people can follow: steps named as BuildKit's progress output names them,
values after expansion, one line per instruction, each error said once."""

from __future__ import annotations

import uuid
from pathlib import Path

from support.contexts import make_context

from ctxwatch import render
from ctxwatch.client import build_options
from ctxwatch_api.v1 import ctxwatch_pb2 as pb


def _registered(client, folder: Path, dockerfile: str, **files: str) -> str:
    """A context made and registered under a name of its own."""
    make_context(folder, dockerfile, files)
    return client.register(str(folder), name=f"explain-{uuid.uuid4().hex[:10]}").context.name


def _report(client, name: str, options: pb.BuildOptions | None = None) -> pb.Report:
    [report] = client.reports([name], options)
    return report


def test_unnamed_stages_are_named_as_buildkit_names_them(shared_daemon, tmp_path):
    client = shared_daemon.client
    name = _registered(
        client,
        tmp_path / "ctx",
        "FROM scratch\nCOPY a.txt /a\nFROM scratch AS Final\nCOPY --from=0 /a /b\nCOPY a.txt /c\n",
        **{"a.txt": "a"},
    )
    report = _report(client, name)
    assert [(step.stage, step.line) for step in report.steps] == [("stage-0", 2), ("final", 4), ("final", 5)]


def test_a_multi_line_instruction_is_shown_on_one_line(shared_daemon, tmp_path):
    client = shared_daemon.client
    name = _registered(
        client, tmp_path / "ctx", "FROM scratch\nCOPY a.txt \\\n     b.txt /x/\n", **{"a.txt": "a", "b.txt": "b"}
    )
    [step] = _report(client, name).steps
    assert step.instruction.startswith("COPY a.txt") and step.instruction.endswith("b.txt /x/")
    assert "\\" not in step.instruction and "\n" not in step.instruction


def test_a_changed_build_arg_in_from_shows_the_values_after_expansion(shared_daemon, tmp_path):
    client = shared_daemon.client
    name = _registered(client, tmp_path / "ctx", "ARG V=3.19\nFROM alpine:${V}\nRUN true\n")
    assumed = build_options(strict_remote=False)
    client.mark_built(name, assumed)
    changed = build_options(build_args=["V=3.20"], strict_remote=False)
    from_step, run_step = _report(client, name, changed).steps
    assert from_step.cause == pb.CAUSE_INSTRUCTION_CHANGED
    assert from_step.old_instruction == ""  # the text did not change: no "was" equal to "now"
    assert [(v.name, v.old_value, v.new_value) for v in from_step.changed_values] == [
        ("image", "alpine:3.19", "alpine:3.20")
    ]
    text = render.render_report(_report(client, name, changed))
    assert "image: alpine:3.19 -> alpine:3.20" in text
    assert run_step.cause == pb.CAUSE_UPSTREAM
    assert run_step.explanation == "runs on line 2 (FROM alpine:${V}), which runs again"


def test_an_unknown_flag_is_buildkits_error_said_once(shared_daemon, tmp_path):
    client = shared_daemon.client
    name = _registered(client, tmp_path / "ctx", "FROM scratch AS build\nFROM scratch\nCOPY --frm=build /x /y\n")
    report = _report(client, name)
    assert report.error_line == 3
    assert "unknown flag: --frm" in report.error  # BuildKit: dockerfile parse error on line 3: unknown flag: --frm
    text = render.render_report(report)
    assert text.count("line 3") == 1, text
    assert "not found" not in text


def test_an_error_that_does_not_name_its_line_gets_it_from_the_renderer():
    report = pb.Report(context=pb.Context(name="c"), error="target stage 'x' could not be found", error_line=4)
    assert "error at line 4: target stage 'x' could not be found" in render.render_report(report)
