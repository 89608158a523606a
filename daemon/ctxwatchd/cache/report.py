"""Statuses and causes: which steps BuildKit would take from its cache, and why not.

A step is cached when its key was recorded by any kept build (BuildKit keeps
old results). Otherwise the report explains it against the most recent
build: its own inputs changed (which files, how), its instruction or the
values it sees changed, or it only re-runs because a step it depends on does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ctxwatch_api.v1 import ctxwatch_pb2 as pb

from ..dockerfile.parser import Span
from .diff import ADDED, CONTENT, MODE, REMOVED, SYMLINK_TARGET, TYPE, XATTR, Change, Differ
from .keys import StepKey
from .store import BuildRow, BuildStepRow

CHANGED_PATHS_LIMIT = 20
CHANGE_KINDS = {
    ADDED: pb.CHANGE_KIND_ADDED,
    REMOVED: pb.CHANGE_KIND_REMOVED,
    CONTENT: pb.CHANGE_KIND_CONTENT,
    MODE: pb.CHANGE_KIND_MODE,
    SYMLINK_TARGET: pb.CHANGE_KIND_SYMLINK_TARGET,
    TYPE: pb.CHANGE_KIND_TYPE,
    XATTR: pb.CHANGE_KIND_XATTR,
}


@dataclass
class History:
    """What the store knows of a context's recorded builds."""

    keys: set[bytes]
    shapes: dict[bytes, bytes]
    last: BuildRow | None
    count: int
    load_node: Callable[[bytes], bytes | None]


@dataclass
class QueryOptions:
    no_cache: bool = False
    no_cache_filter: frozenset[str] = frozenset()  # stage names (lowercase) or indexes
    assume_remote_unchanged: bool = False


@dataclass
class _Chain:
    """The state of the filesystem a step leaves behind, for the steps after it."""

    same: bool = True  # equal to a recorded state
    culprit: int | None = None  # the step to blame when not
    uncertain: int = pb.CAUSE_UNSPECIFIED  # CAUSE_REMOTE / CAUSE_UPSTREAM_OUTPUT when unsure
    remote: str = ""
    failing: int | None = None  # a step before it fails the build


@dataclass
class _Explainer:
    history: History
    steps_before: dict[tuple[str, int], BuildStepRow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.history.last is not None:
            self.steps_before = {(s.stage, s.stage_ordinal): s for s in self.history.last.steps}


def build_steps(keys: list[StepKey], history: History, options: QueryOptions) -> list[pb.Step]:
    """The report's steps, in build order."""
    explainer = _Explainer(history)
    chains: list[_Chain] = []
    out: list[pb.Step] = []
    for k in keys:
        msg = _base_message(k)
        parent = chains[k.parent] if k.parent is not None else _Chain()
        sources = [chains[i] for i in k.output_steps]
        chain = _decide(k, msg, parent, sources, options, explainer, out)
        chains.append(chain)
        out.append(msg)
    return out


def _base_message(k: StepKey) -> pb.Step:
    step = k.step
    return pb.Step(
        stage=step.stage.label,
        stage_index=step.stage.index,
        index=k.index,
        instruction=step.instruction,
        line=step.line,
        key=k.key.hex(),
        range=range_message(step.span),
    )


def range_message(span: Span) -> pb.Range:
    return pb.Range(
        start_line=span.start_line, start_column=span.start_column, end_line=span.end_line, end_column=span.end_column
    )


def _decide(
    k: StepKey,
    msg: pb.Step,
    parent: _Chain,
    sources: list[_Chain],
    options: QueryOptions,
    explainer: _Explainer,
    out: list[pb.Step],
) -> _Chain:
    """Set the step's status and cause; return the state it leaves for the steps after it."""
    step, history = k.step, explainer.history
    upstream = [parent, *sources]
    failing = next((c.failing for c in upstream if c.failing is not None), None)
    if k.error:
        _set(msg, pb.STEP_STATUS_ERROR, pb.CAUSE_ERROR, f"BuildKit would fail here: {k.error}")
        msg.error = printable(k.error)
        return _Chain(same=False, culprit=k.index, failing=k.index)
    if failing is not None:
        _set(
            msg,
            pb.STEP_STATUS_INVALIDATED,
            pb.CAUSE_UPSTREAM,
            f"would not run: the build fails at step {failing} ({out[failing].instruction})",
        )
        msg.upstream_step = failing
        return _Chain(same=False, culprit=failing, failing=failing)

    remote = step.remote or next((c.remote for c in upstream if c.remote), "")
    if options.assume_remote_unchanged:
        remote = ""
    source_rerun = [
        i for i in k.output_steps if out[i].status != pb.STEP_STATUS_CACHED and out[i].cause != pb.CAUSE_REMOTE
    ]
    inherited = next((c for c in upstream if c.uncertain), None)

    if options.no_cache or _stage_filtered(step.stage, options.no_cache_filter):
        why = "--no-cache" if options.no_cache else f"--no-cache-filter {step.stage.label}"
        _set(msg, pb.STEP_STATUS_INVALIDATED, pb.CAUSE_NO_CACHE, f"{why} makes it run again")
        return _Chain(same=False, culprit=k.index)

    if k.key in history.keys or (k.shape in history.shapes and source_rerun and parent.same):
        if source_rerun:
            producer = out[source_rerun[0]]
            _set(
                msg,
                pb.STEP_STATUS_UNKNOWN,
                pb.CAUSE_UPSTREAM_OUTPUT,
                f"reads files that step {producer.index} of stage {producer.stage} ({producer.instruction}) "
                "produces, and that step runs again: cached only if those files come out the same",
            )
            msg.upstream_step = producer.index
            return _Chain(uncertain=pb.CAUSE_UPSTREAM_OUTPUT, culprit=k.index, remote=remote)
        if inherited is not None and inherited.uncertain == pb.CAUSE_UPSTREAM_OUTPUT:
            _set(
                msg,
                pb.STEP_STATUS_UNKNOWN,
                pb.CAUSE_UPSTREAM_OUTPUT,
                f"runs on step {inherited.culprit}, whose result depends on files a re-run step produces",
            )
            msg.upstream_step = inherited.culprit or 0
            return _Chain(uncertain=pb.CAUSE_UPSTREAM_OUTPUT, culprit=inherited.culprit, remote=remote)
        if remote:
            _set(
                msg,
                pb.STEP_STATUS_UNKNOWN,
                pb.CAUSE_REMOTE,
                f"depends on {remote}, which the daemon cannot see: cached if it did not change (pin it "
                "with @sha256: or --checksum, or pass --assume-remote-unchanged)",
            )
            return _Chain(uncertain=pb.CAUSE_REMOTE, culprit=k.index, remote=remote)
        _set(msg, pb.STEP_STATUS_CACHED, pb.CAUSE_UNSPECIFIED, "")
        if step.link and not parent.same:
            # The copy itself is reused and only re-applied onto the changed parent.
            msg.explanation = "the copy is reused (--link) and merged onto the re-run steps before it"
            return _Chain(same=False, culprit=parent.culprit, remote=remote)
        return _Chain(remote=remote)

    if k.shape in history.shapes and inherited is not None and inherited.uncertain == pb.CAUSE_UPSTREAM_OUTPUT:
        _set(
            msg,
            pb.STEP_STATUS_UNKNOWN,
            pb.CAUSE_UPSTREAM_OUTPUT,
            f"runs on step {inherited.culprit}, whose result depends on files a re-run step produces",
        )
        msg.upstream_step = inherited.culprit or 0
        return _Chain(uncertain=pb.CAUSE_UPSTREAM_OUTPUT, culprit=inherited.culprit)

    if history.count == 0:
        _set(msg, pb.STEP_STATUS_INVALIDATED, pb.CAUSE_NEVER_BUILT, "no build of this context has been recorded")
        return _Chain(same=False, culprit=k.index)
    if not parent.same and not step.link:
        culprit = parent.culprit
        _set(
            msg,
            pb.STEP_STATUS_INVALIDATED,
            pb.CAUSE_UPSTREAM,
            f"runs on step {culprit} ({out[culprit].instruction}), which runs again"
            if culprit is not None
            else "runs on a step that runs again",
        )
        if culprit is not None:
            msg.upstream_step = culprit
        return _Chain(same=False, culprit=culprit)
    _explain(explainer, k, msg)
    return _Chain(same=False, culprit=k.index)


def _stage_filtered(stage, names: frozenset[str]) -> bool:
    return bool(names) and (stage.name.lower() in names or str(stage.index) in names)


def _set(msg: pb.Step, status: pb.StepStatus, cause: pb.Cause, explanation: str) -> None:
    msg.status, msg.cause, msg.explanation = status, cause, printable(explanation)


def printable(text: str) -> str:
    """File names need not be UTF-8 (they arrive as surrogate escapes);
    protobuf strings must be: show such bytes as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _explain(explainer: _Explainer, k: StepKey, msg: pb.Step) -> None:
    """Say what differs from the same step of the most recent build."""
    msg.status = pb.STEP_STATUS_INVALIDATED
    old = explainer.steps_before.get((k.step.stage.label, stage_ordinal(k)))
    if old is None:
        _set(
            msg,
            msg.status,
            pb.CAUSE_NEVER_BUILT,
            "the last recorded build did not run this step (a new step, "
            "a stage that build did not need, or a step after the one where it failed)",
        )
        return
    if old.spec != k.step.spec:  # the expanded instruction differs (its text alone may not)
        value_changes = _value_changes(old.values, k.step.values)
        if old.instruction != k.step.instruction:
            _set(msg, msg.status, pb.CAUSE_INSTRUCTION_CHANGED, "the instruction changed")
            msg.old_instruction = old.instruction
        elif value_changes:
            _set(
                msg,
                msg.status,
                pb.CAUSE_BUILD_ARG_CHANGED,
                "a build arg or ENV value it sees changed: " + ", ".join(v.name for v in value_changes),
            )
            msg.changed_values.extend(value_changes)
        else:
            _set(msg, msg.status, pb.CAUSE_INSTRUCTION_CHANGED, "the instruction changed after expansion")
            msg.old_instruction = old.instruction
        return
    if _explain_sources(explainer, k, old, msg):
        return
    if k.step.stage_reads:
        _set(
            msg,
            msg.status,
            pb.CAUSE_INPUTS_CHANGED,
            f"the files it reads from stage {', '.join(_stages_read(k))} changed",
        )
        return
    _set(
        msg,
        msg.status,
        pb.CAUSE_NOT_IN_LAST_BUILD,
        "its key differs from the last recorded build (another build was run with other options?)",
    )


def _explain_sources(explainer: _Explainer, k: StepKey, old: BuildStepRow, msg: pb.Step) -> bool:
    before = {src: (resolved, digest) for src, resolved, digest in old.sources}
    built_at_ns = explainer.history.last.created_ms * 1_000_000 if explainer.history.last else 0
    differ = Differ(explainer.history.load_node, k.view, CHANGED_PATHS_LIMIT, built_at_ns) if k.view else None
    changed = False
    for source in k.inputs:
        was = before.get(source.source)
        if was is not None and bytes.fromhex(was[1]) == source.digest:
            continue
        changed = True
        if was is None or differ is None:
            continue
        if not differ.compare(bytes.fromhex(was[1]), source.blob, source.resolved):
            differ.add(Change(source.source, CONTENT, "changed (the recorded file list is no longer kept)"))
    if not changed:
        return False
    _set(msg, msg.status, pb.CAUSE_INPUTS_CHANGED, "files it reads from the context changed")
    if differ is not None:
        for change in differ.changes:
            msg.changed_paths.add(
                path=printable(change.path), kind=CHANGE_KINDS[change.kind], detail=printable(change.detail)
            )
        msg.changed_paths_total = differ.total
        msg.changed_paths_truncated = differ.truncated
        unseen = sorted({c.path for c in differ.changes if c.unseen_by_reused_copy})
        if unseen:
            msg.warnings.append(
                printable(
                    f"a builder that kept its copy of the context from the last build may not notice the change to "
                    f"{', '.join(unseen)} (BuildKit re-sends a file only when its size, mtime, mode, owner or link "
                    f"target changed) and keep the old file; force it with --no-cache-filter {k.step.stage.label} "
                    "or a real content change"
                )
            )
    return True


def _stages_read(k: StepKey) -> list[str]:
    """The names, as written, of the stages a step reads files from."""
    spec = k.step.spec
    names = [spec["from"]] if "from" in spec else []
    return names + [m["from"] for m in spec.get("mounts", []) if m.get("from")]


def stage_ordinal(k: StepKey) -> int:
    """The step's position inside its stage: how steps of two builds are paired."""
    return next(i for i, s in enumerate(k.step.stage.steps) if s is k.step)


def _value_changes(old: dict[str, str], new: dict[str, str]) -> list[pb.ValueChange]:
    changes = []
    for name in sorted(old.keys() | new.keys()):
        if old.get(name) != new.get(name):
            changes.append(
                pb.ValueChange(
                    name=name,
                    old_value=old.get(name, ""),
                    new_value=new.get(name, ""),
                    old_set=name in old,
                    new_set=name in new,
                )
            )
    return changes
