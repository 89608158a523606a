"""Every case observed on a real BuildKit daemon (../shared/golden), run against the real daemon.

Each case is built once as it starts (MarkBuilt), changed phase by phase, and
after each phase the report must say what BuildKit did: cached steps cached,
re-run steps invalidated, failing builds failing on the right step. A step
that reads files of a stage that runs again is UNKNOWN (the daemon cannot see
what a re-run RUN produces); it is the only status that agrees with either
observation, and only for that cause.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.golden import GoldenBuild, GoldenCase, Workspace, load_cases

from ctxwatch.client import build_options
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

CASES = load_cases()  # raises when ../shared/golden is missing: never skipped
OUTPUT_DEPENDENT = (pb.STEP_STATUS_UNKNOWN, pb.CAUSE_UPSTREAM_OUTPUT)


def options_for(build: GoldenBuild) -> pb.BuildOptions:
    return build_options(
        [f"{k}={v}" for k, v in build.build_args.items()], build.target, build.no_cache, list(build.no_cache_filter)
    )


def describe(report: pb.Report) -> str:
    return (
        "\n".join(
            f"  line {s.line} {s.instruction!r}: {pb.StepStatus.Name(s.status)} "
            f"{pb.Cause.Name(s.cause)} {s.explanation}"
            for s in report.steps
        )
        or f"  error: {report.error}"
    )


def check_build(case: GoldenCase, build: GoldenBuild, report: pb.Report) -> None:
    where = f"{case.id} after {build.label or 'the change'}:\n{describe(report)}"
    assert not report.error, where
    got = [(s.line, s.instruction) for s in report.steps]
    want = [(e.line, e.instruction) for e in build.expected]
    assert [line for line, _ in got] == [line for line, _ in want], where
    for (_, reported), (_, first_line) in zip(got, want, strict=True):
        assert _starts_with_first_line(reported, first_line), where
    for step, expected in zip(report.steps, build.expected, strict=True):
        if (step.status, step.cause) == OUTPUT_DEPENDENT:
            continue
        if expected.error is not None:
            assert step.status == pb.STEP_STATUS_ERROR, f"line {step.line} must fail\n{where}"
        elif expected.cached:
            assert step.status == pb.STEP_STATUS_CACHED, f"line {step.line} must be cached\n{where}"
        elif not build.build_fails:
            assert step.status == pb.STEP_STATUS_INVALIDATED, f"line {step.line} must re-run\n{where}"
    failing = [s for s in report.steps if s.status == pb.STEP_STATUS_ERROR]
    assert bool(failing) == build.build_fails, where
    if build.reusing_context is not None:
        check_reused_copy_warning(build, report, where)
    else:  # a builder reusing its copy behaves the same: no such warning
        assert not any("kept its copy" in w for s in report.steps for w in s.warnings), where


def _starts_with_first_line(reported: str, first_line: str) -> bool:
    """The golden cases give an instruction's first line as written (a continued one ends with the escape
    character); reports give the whole instruction on one line, continuation lines joined."""
    written = first_line.rstrip()
    if written.endswith(("\\", "`")) and reported != written:
        return reported.startswith(written[:-1])
    return reported == written


def check_reused_copy_warning(build: GoldenBuild, report: pb.Report, where: str) -> None:
    """Where a builder reusing its copy of the context served a stale hit, the
    step whose own files changed must warn about it (its status stays)."""
    stale = [
        step
        for step, fresh, reused in zip(report.steps, build.expected, build.reusing_context, strict=True)
        if reused.cached and not fresh.cached
    ]
    assert stale, where
    own = [s for s in stale if s.cause == pb.CAUSE_INPUTS_CHANGED]
    assert own, where
    for step in own:
        assert any("kept its copy of the context" in w for w in step.warnings), f"line {step.line} must warn\n{where}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden_case(case: GoldenCase, shared_daemon, tmp_path: Path) -> None:
    client = shared_daemon.client
    workspace = Workspace(case, tmp_path)
    client.register(str(workspace.context_dir), dockerfile=str(workspace.dockerfile_path), name=case.id)
    # BuildKit caches what a failing build completed, and so does MarkBuilt.
    client.mark_built(case.id, build_options([f"{k}={v}" for k, v in case.first_build_args.items()], case.first_target))
    for index, build in enumerate(case.builds):
        workspace.apply_phase(index)
        options = options_for(build)
        (report,) = client.reports([case.id], options)
        check_build(case, build, report)
        client.mark_built(case.id, options)
    client.unregister(case.id)
