"""The human output of reports, context lists and daemon status (no daemon needed)."""

from __future__ import annotations

import pytest

from ctxwatch import render
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

CONTEXT = pb.Context(
    name="web",
    path="/src/web",
    dockerfile="/src/web/Dockerfile",
    build_args={"VERSION": "1.1"},
    target="prod",
)


def step(index: int, status: int, instruction: str, **fields) -> pb.Step:
    fields.setdefault("stage", "build")
    return pb.Step(index=index, line=index + 1, status=status, instruction=instruction, **fields)


def report_of(*steps: pb.Step, **fields) -> pb.Report:
    fields.setdefault("context", CONTEXT)
    return pb.Report(steps=steps, **fields)


def lines_under(text: str, row_start: str) -> list[str]:
    """The indented detail lines after the row that starts with `row_start`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(row_start))
    details = []
    for line in lines[start + 1 :]:
        if not line.startswith(render.DETAIL_INDENT):
            break
        details.append(line.strip())
    return details


def test_rows_show_status_stage_line_and_instruction():
    text = render.render_report(
        report_of(
            step(0, pb.STEP_STATUS_CACHED, "FROM alpine@sha256:abc"),
            step(1, pb.STEP_STATUS_INVALIDATED, "COPY . .", explanation="files it copies changed"),
            step(2, pb.STEP_STATUS_UNKNOWN, "ADD https://x/y.tgz /", explanation="remote file"),
            step(3, pb.STEP_STATUS_ERROR, "COPY missing /", error="no source files matched"),
        )
    )
    rows = [line.split() for line in text.splitlines() if line[:1].isalpha() and "  " in line]
    assert ["cached", "build", "1", "FROM", "alpine@sha256:abc"] in rows
    assert ["INVALIDATED", "build", "2", "COPY", ".", "."] in rows
    assert ["unknown", "build", "3", "ADD", "https://x/y.tgz", "/"] in rows
    assert ["ERROR", "build", "4", "COPY", "missing", "/"] in rows


def test_header_names_context_options_counts_and_notes():
    context = pb.Context()
    context.CopyFrom(CONTEXT)
    context.build_contexts.update({"shared": "/src/shared", "base": "docker-image://alpine:3"})
    text = render.render_report(
        report_of(
            step(0, pb.STEP_STATUS_CACHED, "FROM alpine"),
            step(1, pb.STEP_STATUS_INVALIDATED, "RUN make"),
            step(2, pb.STEP_STATUS_UNKNOWN, "ADD https://x /"),
            step(3, pb.STEP_STATUS_ERROR, "COPY nope /"),
            notes=["base images assumed unchanged"],
            context=context,
        )
    )
    header = text.split("\n\n")[0].splitlines()
    assert header == [
        "web: /src/web",
        "  Dockerfile: /src/web/Dockerfile",
        "  target: prod",
        "  build args: VERSION=1.1",
        "  named contexts: base=docker-image://alpine:3 shared=/src/shared",
        "  4 steps: 1 cached, 1 invalidated, 1 unknown, 1 error",
        "  note: base images assumed unchanged",
    ]


def test_cached_steps_get_no_details():
    text = render.render_report(
        report_of(step(0, pb.STEP_STATUS_CACHED, "RUN true", explanation="should not be shown"))
    )
    assert "should not be shown" not in text


def test_changed_paths_are_capped_with_and_n_more():
    changes = [pb.PathChange(path=f"src/f{i}.go", kind=pb.CHANGE_KIND_CONTENT) for i in range(8)]
    text = render.render_report(
        report_of(
            step(
                0,
                pb.STEP_STATUS_INVALIDATED,
                "COPY src/ /src/",
                explanation="files it copies changed",
                changed_paths=changes,
                changed_paths_total=12,
            )
        )
    )
    details = lines_under(text, "INVALIDATED")
    assert details[0] == "files it copies changed"
    assert details[1:6] == [f"content  src/f{i}.go" for i in range(5)]
    assert "src/f5.go" not in text
    assert details[6] == "… and 7 more"


def test_and_n_more_counts_the_list_when_no_total_is_given():
    changes = [pb.PathChange(path=f"f{i}", kind=pb.CHANGE_KIND_ADDED) for i in range(7)]
    text = render.render_report(report_of(step(0, pb.STEP_STATUS_INVALIDATED, "COPY . .", changed_paths=changes)))
    assert "… and 2 more" in text


def test_path_change_kind_and_detail():
    changes = [
        pb.PathChange(path="run.sh", kind=pb.CHANGE_KIND_MODE, detail="mode 0644 -> 0755"),
        pb.PathChange(path="link", kind=pb.CHANGE_KIND_SYMLINK_TARGET, detail="a -> b"),
        pb.PathChange(path="old.txt", kind=pb.CHANGE_KIND_REMOVED),
    ]
    text = render.render_report(report_of(step(0, pb.STEP_STATUS_INVALIDATED, "COPY . .", changed_paths=changes)))
    assert lines_under(text, "INVALIDATED") == [
        "mode     run.sh  (mode 0644 -> 0755)",
        "symlink  link  (a -> b)",
        "removed  old.txt",
    ]
    assert "more" not in text


def test_value_changes_show_old_and_new_with_unset():
    values = [
        pb.ValueChange(name="VERSION", old_value="1.0", new_value="1.1", old_set=True, new_set=True),
        pb.ValueChange(name="DEBUG", new_value="1", old_set=False, new_set=True),
        pb.ValueChange(name="EMPTY", old_value="", old_set=True, new_set=False),
    ]
    text = render.render_report(
        report_of(
            step(0, pb.STEP_STATUS_INVALIDATED, "RUN make", cause=pb.CAUSE_BUILD_ARG_CHANGED, changed_values=values)
        )
    )
    assert lines_under(text, "INVALIDATED") == [
        "build arg changed",
        "VERSION: 1.0 -> 1.1",
        "DEBUG: (unset) -> 1",
        'EMPTY: "" -> (unset)',
    ]


def test_instruction_change_shows_was_and_now():
    text = render.render_report(
        report_of(
            step(
                0,
                pb.STEP_STATUS_INVALIDATED,
                "RUN make all",
                cause=pb.CAUSE_INSTRUCTION_CHANGED,
                old_instruction="RUN make",
            )
        )
    )
    assert lines_under(text, "INVALIDATED")[-2:] == ["was: RUN make", "now: RUN make all"]


def test_upstream_without_explanation_points_at_the_step_that_reruns():
    text = render.render_report(
        report_of(
            step(0, pb.STEP_STATUS_INVALIDATED, "COPY . .", explanation="files changed"),
            step(1, pb.STEP_STATUS_INVALIDATED, "RUN make", cause=pb.CAUSE_UPSTREAM, upstream_step=0),
        )
    )
    assert "runs again because line 1 (COPY . .) does" in text


def test_steps_are_numbered_and_referred_to_as_buildkit_numbers_them():
    text = render.render_report(
        report_of(
            step(0, pb.STEP_STATUS_INVALIDATED, "COPY . .", progress="[build 1/2]", explanation="files changed"),
            step(
                1,
                pb.STEP_STATUS_INVALIDATED,
                "RUN make $T",
                progress="[build 2/2]",
                expanded_instruction="RUN make all",
                cause=pb.CAUSE_UPSTREAM,
                upstream_step=0,
            ),
            step(2, pb.STEP_STATUS_CACHED, "WORKDIR /", stage="final"),
        )
    )
    lines = text.splitlines()
    assert lines[lines.index("") + 1].split() == ["STATUS", "STEP", "LINE", "INSTRUCTION"]
    rows = [line.split() for line in lines if line[:1].isalpha() and "  " in line]
    assert ["INVALIDATED", "[build", "2/2]", "2", "RUN", "make", "$T"] in rows
    assert ["cached", "final", "3", "WORKDIR", "/"] in rows  # BuildKit gives it no number: its stage instead
    assert lines_under(text, "INVALIDATED  [build 2/2]") == ["runs again because [build 1/2] COPY . . (line 1) does"]


def test_was_and_now_are_shown_expanded_and_as_written_where_that_differs():
    from_step = step(
        0,
        pb.STEP_STATUS_INVALIDATED,
        "FROM node:${NODE}-alpine AS build",
        cause=pb.CAUSE_INSTRUCTION_CHANGED,
        expanded_instruction="FROM node:22-alpine",
        old_expanded_instruction="FROM node:20-alpine",
    )
    assert lines_under(render.render_report(report_of(from_step)), "INVALIDATED")[-3:] == [
        "was: FROM node:20-alpine",
        "now: FROM node:22-alpine",
        "as written: FROM node:${NODE}-alpine AS build",
    ]
    rewritten = step(
        0,
        pb.STEP_STATUS_INVALIDATED,
        "RUN make $T",
        cause=pb.CAUSE_INSTRUCTION_CHANGED,
        old_instruction="RUN make all",
        expanded_instruction="RUN make all",
        old_expanded_instruction="RUN make all",
    )
    # The expanded text may stay the same while the text as written changed: both are shown.
    assert lines_under(render.render_report(report_of(rewritten)), "INVALIDATED")[-3:] == [
        "was: RUN make all",
        "now: RUN make all",
        "now written: RUN make $T",
    ]


def test_warnings_are_listed_under_their_step():
    text = render.render_report(
        report_of(step(0, pb.STEP_STATUS_UNKNOWN, "COPY . .", warnings=[".git is sent with the context"]))
    )
    assert lines_under(text, "unknown")[-1] == "warning: .git is sent with the context"


def test_step_error_is_listed_under_its_row_with_the_line():
    text = render.render_report(
        report_of(step(6, pb.STEP_STATUS_ERROR, "COPY nope /", cause=pb.CAUSE_ERROR, error='"nope" matches no file'))
    )
    row = next(line for line in text.splitlines() if line.startswith("ERROR"))
    assert row.split()[:3] == ["ERROR", "build", "7"]
    assert 'error: "nope" matches no file' in lines_under(text, "ERROR")


def test_report_error_is_printed_with_its_line():
    report = report_of(error="unknown instruction: FOOBAR", error_line=3)
    assert "error at line 3: unknown instruction: FOOBAR" in render.render_report(report)
    assert render.render_summary(report) == "web: error at line 3: unknown instruction: FOOBAR"


def test_report_error_without_a_line_does_not_invent_one():
    report = report_of(error="Dockerfile not found")
    assert render.render_summary(report) == "web: error: Dockerfile not found"


@pytest.mark.parametrize("render_fn", [render.render_report, render.render_check])
def test_colour_codes_only_when_asked(render_fn):
    report = report_of(
        step(0, pb.STEP_STATUS_CACHED, "FROM alpine"),
        step(1, pb.STEP_STATUS_INVALIDATED, "RUN make"),
    )
    assert "\x1b[" not in render_fn(report, color=False)
    assert "\x1b[1;33mINVALIDATED\x1b[0m" in render_fn(report, color=True)


def test_colour_keeps_columns_aligned():
    report = report_of(step(0, pb.STEP_STATUS_CACHED, "FROM alpine"))
    plain = render.render_report(report, color=False)
    coloured = render.render_report(report, color=True)
    assert coloured.replace("\x1b[32m", "").replace("\x1b[0m", "") == plain


def test_instruction_is_truncated_to_the_width_only_when_given():
    long = "RUN " + "x" * 200
    report = report_of(step(0, pb.STEP_STATUS_CACHED, long))
    narrow = render.render_report(report, width=40)
    row = next(line for line in narrow.splitlines() if line.startswith("cached"))
    assert len(row) == 40 and row.endswith("…")
    assert long in render.render_report(report, width=None)


def test_check_lists_only_steps_that_are_not_cached():
    text = render.render_check(
        report_of(
            step(0, pb.STEP_STATUS_CACHED, "FROM alpine"),
            step(1, pb.STEP_STATUS_INVALIDATED, "RUN make", explanation="build arg VERSION changed"),
        )
    )
    lines = text.splitlines()
    assert lines[0] == "web: 2 steps: 1 cached, 1 invalidated, 0 unknown"
    assert "FROM alpine" not in text
    assert lines[1].split()[:3] == ["INVALIDATED", "build", "2"]
    assert lines[2].strip() == "build arg VERSION changed"


def test_contexts_table():
    other = pb.Context(name="api", path="/src/api", dockerfile="/elsewhere/api.Dockerfile")
    lines = render.render_contexts([CONTEXT, other]).splitlines()
    assert lines[0].split() == ["NAME", "PATH", "DOCKERFILE", "TARGET", "BUILD", "ARGS", "OPTIONS"]
    assert lines[1].split() == ["web", "/src/web", "Dockerfile", "prod", "VERSION=1.1", "-"]
    assert lines[2].split() == ["api", "/src/api", "/elsewhere/api.Dockerfile", "-", "-", "-"]
    strict = pb.Context(name="s", path="/s", dockerfile="/s/Dockerfile", strict_remote=True)
    assert render.render_contexts([strict]).splitlines()[1].split()[-1] == "strict-remote"


def test_no_contexts_says_how_to_add_one():
    assert "ctxwatch add PATH" in render.render_contexts([])


def test_daemon_status():
    status = pb.DaemonStatus(
        version="0.1.0",
        pid=4242,
        socket_path="/run/user/1000/ctxwatch/ctxwatchd.sock",
        state_dir="/home/u/.local/state/ctxwatch",
        contexts=2,
        memory_rss_bytes=52_400_000,
        queue_depth=3,
        uptime_seconds=3 * 3600 + 7 * 60 + 5,
        roots=[
            pb.WatchedRoot(
                path="/src/web", files=1200, directories=80, healthy=True, files_hashed=1100, bytes_hashed=52_000_000
            ),
            pb.WatchedRoot(path="/src/api", files=1, directories=1, healthy=False, message="events lost; re-scanning"),
        ],
    )
    text = render.render_daemon_status(status)
    assert text.splitlines()[0] == "ctxwatchd 0.1.0, pid 4242, up 3h 07m"
    assert "/run/user/1000/ctxwatch/ctxwatchd.sock" in text
    assert "/home/u/.local/state/ctxwatch" in text
    assert "52.4 MB RSS" in text
    assert "3 events not yet applied" in text
    roots = [line.split() for line in text.splitlines() if line.startswith("  /")]
    assert roots[0] == ["/src/web", "1200", "files", "80", "dirs", "1100", "files", "hashed", "(52.0", "MB)", "ok"]
    assert roots[1][:10] == ["/src/api", "1", "file", "1", "dir", "0", "files", "hashed", "(0.0", "MB)"]
    assert roots[1][10] == "UNHEALTHY"
    assert "events lost; re-scanning" in text
    assert "activity   idle" in text
    busy = render.render_daemon_status(pb.DaemonStatus(activity="answering for web (/src/web)"))
    assert "activity   answering for web (/src/web)" in busy


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(5.9, "5s"), (65, "1m 05s"), (3600, "1h 00m"), (2 * 86400 + 4 * 3600 + 59, "2d 04h")],
)
def test_format_duration(seconds, expected):
    assert render.format_duration(seconds) == expected


def test_mark_built_line():
    response = pb.MarkBuiltResponse(
        build_id=7,
        steps_recorded=3,
        report=report_of(*(step(i, pb.STEP_STATUS_CACHED, "RUN true") for i in range(3))),
    )
    assert render.render_mark_built(response) == "recorded build 7 of web: 3 steps"


def test_mark_built_of_a_build_that_failed_before_any_step_says_nothing_was_recorded():
    response = pb.MarkBuiltResponse(
        failed='line 2 (COPY x /x): "/x": not found', report=report_of(step(0, pb.STEP_STATUS_ERROR, "COPY x /x"))
    )
    assert render.render_mark_built(response) == (
        'nothing recorded for web: no step completed before the build failed: line 2 (COPY x /x): "/x": not found'
    )


def test_mark_built_of_a_failing_build_says_what_was_recorded():
    response = pb.MarkBuiltResponse(
        build_id=2,
        steps_recorded=1,
        failed='line 4 (COPY x /x): "/x": not found',
        report=report_of(step(0, pb.STEP_STATUS_CACHED, "RUN true")),
    )
    text = render.render_mark_built(response)
    assert text.startswith("recorded build 2 of web: 1 step\n")
    assert 'the build fails: line 4 (COPY x /x): "/x": not found' in text
    assert "only the steps before the failure were recorded" in text
