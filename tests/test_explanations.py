"""Explanations people can follow: steps named as BuildKit's progress output names them,
values after expansion, one line per instruction, each error said once."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from support.buildkit import Builder
from support.cli import InProcessCli
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


def test_a_changed_build_arg_in_from_shows_the_instruction_before_and_after_expansion(shared_daemon, tmp_path):
    client = shared_daemon.client
    name = _registered(client, tmp_path / "ctx", "ARG V=3.19\nFROM alpine:${V} AS base\nRUN true\n")
    assumed = build_options(strict_remote=False)
    client.mark_built(name, assumed)
    changed = build_options(build_args=["V=3.20"], strict_remote=False)
    from_step, run_step = _report(client, name, changed).steps
    assert from_step.cause == pb.CAUSE_INSTRUCTION_CHANGED
    assert from_step.old_instruction == ""  # the text as written did not change
    assert (from_step.old_expanded_instruction, from_step.expanded_instruction) == (
        "FROM alpine:3.19",
        "FROM alpine:3.20",
    )
    assert list(from_step.changed_values) == []  # the expanded instruction says it all
    text = render.render_report(_report(client, name, changed))
    assert "was: FROM alpine:3.19\n" in text and "now: FROM alpine:3.20\n" in text
    assert "as written: FROM alpine:${V} AS base" in text
    # A single stage: BuildKit numbers its steps without a stage name, the FROM of an image first.
    assert (from_step.progress, run_step.progress) == ("[1/2]", "[2/2]")
    assert run_step.cause == pb.CAUSE_UPSTREAM
    assert run_step.explanation == "runs on [1/2] FROM alpine:3.20 (line 2), which runs again"


def test_a_changed_build_arg_in_run_shows_the_command_as_buildkit_prints_it(shared_daemon, tmp_path):
    client = shared_daemon.client
    dockerfile = "FROM scratch AS base\nFROM scratch\nARG MODE=dev\nRUN echo \"$MODE\" '$MODE' \\\n    $UNSET\n"
    name = _registered(client, tmp_path / "ctx", dockerfile)
    client.mark_built(name)
    [run] = _report(client, name, build_options(build_args=["MODE=prod"])).steps
    assert run.cause == pb.CAUSE_BUILD_ARG_CHANGED
    assert [(v.name, v.old_value, v.new_value) for v in run.changed_values] == [("MODE", "dev", "prod")]
    # Quotes kept, unset names left as written, continuation lines joined: as BuildKit's progress prints it.
    assert run.old_expanded_instruction == "RUN echo \"dev\" '$MODE'     $UNSET"
    assert run.expanded_instruction == "RUN echo \"prod\" '$MODE'     $UNSET"
    assert run.progress == "[stage-1 1/1]"
    text = render.render_report(_report(client, name, build_options(build_args=["MODE=prod"])))
    assert "INVALIDATED  [stage-1 1/1]" in text
    assert "MODE: dev -> prod" in text
    assert "was: RUN echo \"dev\" '$MODE'     $UNSET" in text


def test_the_json_output_carries_the_numbering_and_the_expanded_instructions(
    shared_daemon, tmp_path, monkeypatch, capsys
):
    run_cli = InProcessCli(shared_daemon, monkeypatch, capsys)
    client = shared_daemon.client
    name = _registered(
        client, tmp_path / "ctx", "FROM scratch AS build\nARG D=a\nWORKDIR /$D\nCOPY a.txt .\n", **{"a.txt": "a"}
    )
    client.mark_built(name)
    [report] = json.loads(run_cli("status", "--json", name, "--build-arg", "D=b").stdout)["reports"]
    workdir, copy = report["steps"]
    assert (workdir["progress"], workdir["expandedInstruction"], workdir["oldExpandedInstruction"]) == (
        "[1/2]",
        "WORKDIR /b",
        "WORKDIR /a",
    )
    assert copy["explanation"] == "runs on [1/2] WORKDIR /b (line 3), which runs again"


# Named and unnamed stages, a FROM of a named context (counted, not shown), a
# WORKDIR that stays at / (counted, not shown), quotes and unset names in a RUN,
# continuation lines, a variable in a COPY and a WORKDIR, and more than nine
# steps in a stage (the position is padded to the width of the total).
NUMBERED_DOCKERFILE = """\
ARG V=1
FROM busybox AS Build
ARG V
WORKDIR /src
COPY a.txt \\
     ./
RUN echo "$V" '$V' ${V} $UNSET > v && \\
    cat v
WORKDIR /
FROM scratch
ARG V
COPY --from=build /src/a.txt /a
WORKDIR /w$V
COPY a.txt 1
COPY a.txt 2
COPY a.txt 3
COPY a.txt 4
COPY a.txt 5
COPY a.txt 6
COPY a.txt ${V}7
COPY a.txt 8
"""


def test_steps_are_numbered_and_printed_as_the_real_buildkit_prints_them(shared_daemon, buildkit: Builder, tmp_path):
    folder = tmp_path / "ctx"
    name = _registered(shared_daemon.client, folder, NUMBERED_DOCKERFILE, **{"a.txt": "a"})
    image = buildkit.busybox()
    shared_daemon.client.register(
        str(folder),
        name=name,
        build_args={"V": "2"},
        build_contexts={"busybox": f"oci-layout://bb@{image.digest}"},
    )
    build = buildkit.buildctl(folder, build_args={"V": "2"}, busybox=True).check()
    printed = sorted(
        f"[{s.stage + ' ' if s.stage else ''}{s.index:>{len(str(s.total))}}/{s.total}] {s.text}" for s in build.steps
    )
    steps = _report(shared_daemon.client, name).steps
    predicted = sorted(f"{s.progress} {s.expanded_instruction}" for s in steps if s.progress)
    assert predicted == printed
    assert (
        "[stage-1  1/10] COPY --from=build /src/a.txt /a" in predicted
        and "[build 3/5] RUN echo \"2\" '$V' 2 $UNSET > v &&     cat v" in predicted
    )
    # Not numbered: the FROM of the named context, and the WORKDIR that stays at /.
    assert [s.line for s in steps if not s.progress] == [2, 9]


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
