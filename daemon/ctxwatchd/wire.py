"""The domain's results as protobuf messages, for the answers that still
speak the wire (answers.py, engine.py); nothing below them imports this."""

from __future__ import annotations

from ctxwatch_api.v1 import ctxwatch_pb2 as pb

from .cache.diff import ADDED, CONTENT, MODE, REMOVED, SYMLINK_TARGET, TYPE, XATTR
from .cache.report import Cause, StepReport, StepStatus, printable
from .dockerfile.parser import Span

STATUSES = {
    StepStatus.CACHED: pb.STEP_STATUS_CACHED,
    StepStatus.INVALIDATED: pb.STEP_STATUS_INVALIDATED,
    StepStatus.UNKNOWN: pb.STEP_STATUS_UNKNOWN,
    StepStatus.ERROR: pb.STEP_STATUS_ERROR,
}
CAUSES = {
    Cause.NONE: pb.CAUSE_UNSPECIFIED,
    Cause.NEVER_BUILT: pb.CAUSE_NEVER_BUILT,
    Cause.INPUTS_CHANGED: pb.CAUSE_INPUTS_CHANGED,
    Cause.INSTRUCTION_CHANGED: pb.CAUSE_INSTRUCTION_CHANGED,
    Cause.BUILD_ARG_CHANGED: pb.CAUSE_BUILD_ARG_CHANGED,
    Cause.UPSTREAM: pb.CAUSE_UPSTREAM,
    Cause.NO_CACHE: pb.CAUSE_NO_CACHE,
    Cause.REMOTE: pb.CAUSE_REMOTE,
    Cause.UPSTREAM_OUTPUT: pb.CAUSE_UPSTREAM_OUTPUT,
    Cause.ERROR: pb.CAUSE_ERROR,
    Cause.NOT_IN_LAST_BUILD: pb.CAUSE_NOT_IN_LAST_BUILD,
    Cause.RUNS_ANYWAY: pb.CAUSE_RUNS_ANYWAY,
}
CHANGE_KINDS = {
    ADDED: pb.CHANGE_KIND_ADDED,
    REMOVED: pb.CHANGE_KIND_REMOVED,
    CONTENT: pb.CHANGE_KIND_CONTENT,
    MODE: pb.CHANGE_KIND_MODE,
    SYMLINK_TARGET: pb.CHANGE_KIND_SYMLINK_TARGET,
    TYPE: pb.CHANGE_KIND_TYPE,
    XATTR: pb.CHANGE_KIND_XATTR,
}


def range_message(span: Span) -> pb.Range:
    return pb.Range(
        start_line=span.start_line, start_column=span.start_column, end_line=span.end_line, end_column=span.end_column
    )


def step_message(step: StepReport) -> pb.Step:
    return pb.Step(
        stage=step.stage,
        stage_index=step.stage_index,
        index=step.index,
        instruction=printable(step.instruction),
        line=step.line,
        key=step.key,
        range=range_message(step.span),
        status=STATUSES[step.status],
        cause=CAUSES[step.cause],
        explanation=printable(step.explanation),
        error=printable(step.error),
        upstream_step=step.upstream_step or 0,
        old_instruction=printable(step.old_instruction),
        changed_values=[
            pb.ValueChange(
                name=printable(v.name),
                old_value=printable(v.old_value),
                new_value=printable(v.new_value),
                old_set=v.old_set,
                new_set=v.new_set,
            )
            for v in step.changed_values
        ],
        changed_paths=[
            pb.PathChange(path=printable(c.path), kind=CHANGE_KINDS[c.kind], detail=printable(c.detail))
            for c in step.changed_paths
        ],
        changed_paths_total=step.changed_paths_total,
        changed_paths_truncated=step.changed_paths_truncated,
        warnings=[printable(w) for w in step.warnings],
    )
