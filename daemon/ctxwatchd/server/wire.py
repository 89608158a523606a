"""The API's messages to and from the engine's domain types: the only place
(with the gRPC service that uses it) where the daemon speaks protobuf.

Names need not be UTF-8 (a file name, a Dockerfile's bytes); protobuf strings
must be. Every text of an answer that comes from the filesystem or a
Dockerfile leaves through `printable`: a byte that is not UTF-8 as `\\xNN`
(the proto's header comment lists the fields)."""

from __future__ import annotations

import weakref

from ctxwatch_api.v1 import ctxwatch_pb2 as pb

from ..cache.diff import ADDED, CONTENT, MODE, REMOVED, SYMLINK_TARGET, TYPE, XATTR
from ..cache.report import Cause, StepReport, StepStatus, printable
from ..cache.store import ContextRow
from ..dockerfile.parser import Span
from ..errors import InvalidArgument
from ..registry import ContextRef, Registration
from ..requests import BuildOptions, BuildRun, ObservedStep, PredictedStep
from ..results import BuildRecorded, PredictionCheck, PredictionStats, Readers, Report, RootStatus

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


STATUSES_SENT = {sent: status for status, sent in STATUSES.items()}
CAUSES_SENT = {sent: cause for cause, sent in CAUSES.items()}


# -- what clients send ---------------------------------------------------------------


def context_ref(ref: pb.ContextRef) -> ContextRef:
    which = ref.WhichOneof("ref")
    if which == "name":
        return ContextRef(name=ref.name)
    return ContextRef(path=ref.path) if which == "path" else ContextRef()


def context_refs(refs) -> list[ContextRef]:
    return [context_ref(ref) for ref in refs]


def registration(req: pb.RegisterContextRequest) -> Registration:
    return Registration(
        req.path,
        req.dockerfile,
        dict(req.build_args),
        req.target,
        req.name,
        dict(req.build_contexts),
        req.no_cache,
        tuple(req.no_cache_filter),
        dict(req.labels),
        req.watch_root,
        req.strict_remote if req.HasField("strict_remote") else None,
    )


def build_options(options: pb.BuildOptions) -> BuildOptions:
    return BuildOptions(
        dict(options.build_args),
        options.target,
        options.no_cache,
        tuple(options.no_cache_filter),
        options.assume_remote_unchanged,
        options.dockerfile_content,
        dict(options.build_contexts),
        options.strict_remote if options.HasField("strict_remote") else None,
    )


def build_run(run: pb.BuildRun) -> BuildRun:
    return BuildRun(
        tuple(ObservedStep(o.line, o.cached, o.completed, o.error) for o in run.steps),
        run.failed,
        tuple(_predicted(i, step) for i, step in enumerate(run.prediction.steps))
        if run.HasField("prediction")
        else None,
        run.command,
        run.source,
        run.builder_ref,
    )


def _predicted(i: int, step: pb.Step) -> PredictedStep:
    status, cause = STATUSES_SENT.get(step.status), CAUSES_SENT.get(step.cause)
    if status is None:
        raise InvalidArgument(f"run.prediction.steps[{i}].status: {step.status} is not a step status")
    if cause is None:
        raise InvalidArgument(f"run.prediction.steps[{i}].cause: {step.cause} is not a cause")
    return PredictedStep(step.line, step.instruction, status, cause, step.explanation)


# -- what the daemon answers --------------------------------------------------------------


def context_message(row: ContextRow) -> pb.Context:
    return pb.Context(
        name=row.name,
        path=printable(row.path),
        dockerfile=printable(row.dockerfile),
        build_args=row.build_args,
        target=row.target,
        build_contexts={name: printable(value) for name, value in row.build_contexts.items()},
        no_cache=row.no_cache,
        no_cache_filter=row.no_cache_filter,
        labels=row.labels,
        watch_root=printable(row.watch_root),
        strict_remote=row.options.get("strict_remote"),
    )


# A report is not changed once answered, and the engine answers with the same
# report while nothing it depends on changed: convert it once (converting a
# long report costs as much as answering the query). Callers copy before changing.
_messages: weakref.WeakKeyDictionary[Report, pb.Report] = weakref.WeakKeyDictionary()


def report_message(report: Report) -> pb.Report:
    """The report as sent (the same message for the same report: do not change it)."""
    message = _messages.get(report)
    if message is None:
        message = _messages[report] = _report_message(report)
    return message


def _report_message(report: Report) -> pb.Report:
    return pb.Report(
        context=context_message(report.context),
        steps=[step_message(step) for step in report.steps],
        error=printable(report.error),
        error_line=report.error_line,
        error_range=range_message(report.error_range) if report.error_range is not None else None,
        all_cached=report.all_cached,
        builds_recorded=report.builds_recorded,
        last_build_unix_ms=report.last_build_unix_ms,
        notes=[printable(note) for note in report.notes],
        context_digest=report.context_digest,
        assumed_remote=[printable(remote) for remote in report.assumed_remote],
        unread_build_unix_ms=report.unread_build_unix_ms,
    )


def readers_message(found: Readers) -> pb.FindReadersResponse:
    return pb.FindReadersResponse(
        readers=[
            pb.Reader(
                context=context_message(r.context),
                step=step_message(r.step),
                source=printable(r.source),
                steps_after=r.steps_after,
            )
            for r in found.readers
        ],
        unknown=[printable(u) for u in found.unknown],
    )


def built_message(built: BuildRecorded) -> pb.MarkBuiltResponse:
    return pb.MarkBuiltResponse(
        report=report_message(built.report),
        build_id=built.build_id,
        steps_recorded=built.steps_recorded,
        failed=built.failed,
        check=check_message(built.check) if built.check is not None else None,
    )


def check_message(check: PredictionCheck) -> pb.PredictionCheck:
    return pb.PredictionCheck(
        context=check.context,
        dockerfile=printable(check.dockerfile),
        command=printable(check.command),
        unix_ms=check.unix_ms,
        steps=check.steps,
        agreed=check.agreed,
        unknown=check.unknown,
        disagreements=[
            pb.Disagreement(
                line=d.line,
                instruction=printable(d.instruction),
                predicted=STATUSES[d.predicted],
                cause=CAUSES[d.cause],
                explanation=printable(d.explanation),
                cached=d.cached,
                error=printable(d.error),
            )
            for d in check.disagreements
        ],
    )


def stats_message(stats: PredictionStats) -> pb.PredictionStats:
    return pb.PredictionStats(
        checked=stats.checked,
        steps=stats.steps,
        agreed=stats.agreed,
        unknown=stats.unknown,
        recent_disagreements=[check_message(c) for c in stats.recent_disagreements],
        builds_learned=stats.builds_learned,
    )


def root_message(root: RootStatus) -> pb.WatchedRoot:
    return pb.WatchedRoot(
        path=printable(root.path),
        files=root.files,
        directories=root.directories,
        healthy=root.healthy,
        message=printable(root.message),
        files_hashed=root.files_hashed,
        bytes_hashed=root.bytes_hashed,
    )


def range_message(span: Span) -> pb.Range:
    return pb.Range(
        start_line=span.start_line, start_column=span.start_column, end_line=span.end_line, end_column=span.end_column
    )


def step_message(step: StepReport) -> pb.Step:
    return pb.Step(
        stage=printable(step.stage),
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
        progress=printable(step.progress),
        expanded_instruction=printable(step.expanded),
        old_expanded_instruction=printable(step.old_expanded),
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
