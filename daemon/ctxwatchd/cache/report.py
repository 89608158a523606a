"""Statuses and causes: which steps BuildKit would take from its cache, and why not.

A step is cached when its key was recorded by any kept build (BuildKit keeps
old results). Otherwise the report explains it against the most recent
build: its own inputs changed (which files, how), its instruction or the
values it sees changed, or it only re-runs because a step it depends on does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum

from ..dockerfile.parser import Span
from ..dockerfile.plan import Stage
from .diff import CONTENT, Change, Differ
from .keys import StepKey
from .store import BuildRow, BuildStepRow

CHANGED_PATHS_LIMIT = 20


class StepStatus(Enum):
    """A step's predicted fate."""

    CACHED = "cached"  # BuildKit would take it from its cache
    INVALIDATED = "invalidated"  # BuildKit would run it again
    UNKNOWN = "unknown"  # depends on something the daemon cannot see
    ERROR = "error"  # BuildKit would fail on this step


class Cause(Enum):
    """Why a step is not cached (NONE when it is)."""

    NONE = "none"
    NEVER_BUILT = "never built"
    INPUTS_CHANGED = "inputs changed"
    INSTRUCTION_CHANGED = "instruction changed"
    BUILD_ARG_CHANGED = "build arg changed"
    UPSTREAM = "upstream"
    NO_CACHE = "no cache"
    REMOTE = "remote"
    UPSTREAM_OUTPUT = "upstream output"
    ERROR = "error"
    NOT_IN_LAST_BUILD = "not in last build"
    RUNS_ANYWAY = "runs anyway"  # BuildKit runs it although its key is known (a WORKDIR on scratch)


@dataclass(frozen=True)
class PathChange:
    path: str  # relative to the context
    kind: str  # one of diff.py's change kinds (ADDED, CONTENT...)
    detail: str


@dataclass(frozen=True)
class ValueChange:
    """A build arg or ENV value a step sees, before and after."""

    name: str
    old_value: str
    new_value: str
    old_set: bool
    new_set: bool


@dataclass
class StepReport:
    """One step of a report: where it is, what it will do, and why."""

    stage: str  # as BuildKit names it: the name in lower case, or stage-N when unnamed
    stage_index: int
    index: int  # position in build order
    instruction: str  # as written, on one line
    line: int
    key: str  # hex
    span: Span
    progress: str = ""  # as BuildKit's progress output numbers it: "[build 2/5]"; "" when it shows no number
    expanded: str = ""  # as BuildKit's progress output prints it: variables expanded
    status: StepStatus = StepStatus.UNKNOWN
    cause: Cause = Cause.NONE
    explanation: str = ""
    error: str = ""
    upstream_step: int | None = None  # for UPSTREAM / UPSTREAM_OUTPUT: the step that caused it
    old_instruction: str = ""  # as written in the last build, when that differs
    old_expanded: str = ""  # as BuildKit printed it in the last build, when that differs from `expanded`
    changed_values: list[ValueChange] = field(default_factory=list)
    changed_paths: list[PathChange] = field(default_factory=list)  # at most CHANGED_PATHS_LIMIT
    changed_paths_total: int = 0
    changed_paths_truncated: bool = False
    warnings: list[str] = field(default_factory=list)


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
    strict_remote: bool = False  # steps on unpinned remote inputs are unknown instead of assumed


@dataclass
class _Chain:
    """The state of the filesystem a step leaves behind, for the steps after it."""

    same: bool = True  # equal to a recorded state
    culprit: int | None = None  # the step to blame when not
    uncertain: Cause | None = None  # REMOTE / UPSTREAM_OUTPUT when unsure
    remote: str = ""
    failing: int | None = None  # a step before it fails the build


@dataclass
class _Explainer:
    history: History
    steps_before: dict[tuple[str, int], BuildStepRow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.history.last is not None:
            self.steps_before = {(s.stage, s.stage_ordinal): s for s in self.history.last.steps}


def build_steps(keys: list[StepKey], history: History, options: QueryOptions) -> list[StepReport]:
    """The report's steps, in build order."""
    explainer = _Explainer(history)
    chains: list[_Chain] = []
    out: list[StepReport] = []
    for k in keys:
        msg = _base_message(k)
        parent = chains[k.parent] if k.parent is not None else _Chain()
        sources = [chains[i] for i in k.output_steps]
        chain = _decide(k, msg, parent, sources, options, explainer, out)
        chains.append(chain)
        out.append(msg)
    _input_less_workdirs_run(keys, out)
    return out


def _input_less_workdirs_run(keys: list[StepKey], out: list[StepReport]) -> None:
    """A WORKDIR with nothing before it (on scratch) is a folder made from
    nothing: BuildKit loads it from its cache only when a step right after it
    runs again and needs it; otherwise it shows it run (observed on v0.32.2
    by the differential test). When whether a step after it runs is unknown,
    so is which of the two BuildKit shows. The steps after it are not affected."""
    last_of_stage = {k.step.stage.index: k.index for k in keys}
    for k in keys:
        msg = out[k.index]
        if k.step.keyword != "workdir" or k.parent is not None or msg.status != StepStatus.CACHED:
            continue
        # What needs its result: the steps that run on it, and those reading its stage when it is the last step.
        after = [
            out[j.index]
            for j in keys
            if j.parent == k.index or any(last_of_stage.get(stage) == k.index for stage, _ in j.step.stage_reads)
        ]
        statuses = {s.status for s in after}
        if statuses == {StepStatus.CACHED}:
            _set(
                msg,
                StepStatus.INVALIDATED,
                Cause.RUNS_ANYWAY,
                "BuildKit makes this folder again (a WORKDIR on scratch is loaded from its cache only when "
                "the step after it runs); nothing after it changes",
            )
        elif StepStatus.UNKNOWN in statuses and statuses <= {StepStatus.CACHED, StepStatus.UNKNOWN}:
            _set(
                msg,
                StepStatus.UNKNOWN,
                Cause.RUNS_ANYWAY,
                "BuildKit makes this folder again unless a step after it runs (a WORKDIR on scratch is loaded "
                "from its cache only then), and whether one does is unknown; it changes nothing",
            )


def _base_message(k: StepKey) -> StepReport:
    step = k.step
    return StepReport(
        stage_name(step.stage),
        step.stage.index,
        k.index,
        step.instruction,
        step.line,
        k.key.hex(),
        step.span,
        step.stage.progress(step),
        step.expanded,
    )


def _decide(
    k: StepKey,
    msg: StepReport,
    parent: _Chain,
    sources: list[_Chain],
    options: QueryOptions,
    explainer: _Explainer,
    out: list[StepReport],
) -> _Chain:
    """Set the step's status and cause; return the state it leaves for the steps after it."""
    if not k.step.link or parent.failing is not None:
        return _decide_on(k, msg, parent, sources, options, explainer, out)
    # COPY --link copies onto an empty layer: the copy does not depend on the
    # steps before it; only the merge onto them (what later steps run on) does.
    own = _decide_on(k, msg, _Chain(), sources, options, explainer, out)
    if not parent.same:
        if msg.status == StepStatus.CACHED:
            msg.explanation = "the copy is reused (--link) and merged onto the re-run steps before it"
        return _Chain(same=False, culprit=parent.culprit, remote=own.remote or parent.remote)
    if parent.uncertain is not None and own.same and own.uncertain is None:
        return _Chain(uncertain=parent.uncertain, culprit=parent.culprit, remote=parent.remote or own.remote)
    return replace(own, remote=own.remote or parent.remote)


def _decide_on(
    k: StepKey,
    msg: StepReport,
    parent: _Chain,
    sources: list[_Chain],
    options: QueryOptions,
    explainer: _Explainer,
    out: list[StepReport],
) -> _Chain:
    step, history = k.step, explainer.history
    upstream = [parent, *sources]
    failing = next((c.failing for c in upstream if c.failing is not None), None)
    if k.unsent_folder and not k.error:
        if _last_build_sent(explainer, k.unsent_folder):
            msg.warnings.append(
                f"nothing of {k.unsent_folder} is sent to the builder now: a builder without the copy of the "
                "context the last build left fails here (lstat ... no such file or directory)"
            )
        elif k.maybe_sent:
            _set(
                msg,
                StepStatus.UNKNOWN,
                Cause.ERROR,
                f"BuildKit may fail here (lstat {k.unsent_folder}: no such file or directory): nothing sends that "
                "folder but the ** of another source, which BuildKit sends only at times",
            )
            return _Chain(same=False, culprit=k.index)
        else:
            k.error = f"lstat {k.unsent_folder}: no such file or directory"
    if k.error:
        _set(msg, StepStatus.ERROR, Cause.ERROR, f"BuildKit would fail here: {k.error}")
        msg.error = printable(k.error)
        return _Chain(same=False, culprit=k.index, failing=k.index)
    if failing is not None:
        _set(
            msg,
            StepStatus.INVALIDATED,
            Cause.UPSTREAM,
            f"would not run: the build fails at {_step_ref(out, failing)}",
        )
        msg.upstream_step = failing
        return _Chain(same=False, culprit=failing, failing=failing)

    remote = step.remote or next((c.remote for c in upstream if c.remote), "")
    if not options.strict_remote:
        remote = ""
    unknowable = [i for i in k.output_steps if out[i].cause != Cause.REMOTE]
    source_rerun = [i for i in unknowable if out[i].status != StepStatus.CACHED]
    inherited = next((c for c in upstream if c.uncertain is not None), None)
    # A step before it whose result depends on files a re-run step produces.
    on_output = inherited if inherited is not None and inherited.uncertain == Cause.UPSTREAM_OUTPUT else None

    if options.no_cache or _stage_filtered(step.stage, options.no_cache_filter):
        why = "--no-cache" if options.no_cache else f"--no-cache-filter {step.stage.label}"
        _set(msg, StepStatus.INVALIDATED, Cause.NO_CACHE, f"{why} makes it run again")
        return _Chain(same=False, culprit=k.index)

    if k.key in history.keys or (k.shape in history.shapes and unknowable and parent.same):
        if source_rerun or (k.key not in history.keys and on_output is None):
            # Only the output of steps the daemon cannot know differs from a recorded build: the
            # producer runs again, or its cached result is another build's than the one recorded with
            # this step (unless the step runs on such an output already: that is what changed its key).
            producer = out[(source_rerun or unknowable)[0]]
            how = "runs again" if source_rerun else "is taken from another build than the one this step last used"
            _set(
                msg,
                StepStatus.UNKNOWN,
                Cause.UPSTREAM_OUTPUT,
                f"reads files that {_step_ref(out, producer.index)} produces, and that step {how}: "
                "cached only if those files come out the same",
            )
            msg.upstream_step = producer.index
            return _Chain(uncertain=Cause.UPSTREAM_OUTPUT, culprit=k.index, remote=remote)
        if on_output is not None:
            return _runs_on_output(msg, out, on_output, remote)
        if remote:
            _set(
                msg,
                StepStatus.UNKNOWN,
                Cause.REMOTE,
                f"depends on {remote}, which the daemon cannot see (--strict-remote): cached if it did not "
                "change (pin it with @sha256: or --checksum)",
            )
            return _Chain(uncertain=Cause.REMOTE, culprit=k.index, remote=remote)
        _set(msg, StepStatus.CACHED, Cause.NONE, "")
        return _Chain(remote=remote)

    if k.shape in history.shapes and on_output is not None:
        return _runs_on_output(msg, out, on_output, "")

    if history.count == 0:
        _set(msg, StepStatus.INVALIDATED, Cause.NEVER_BUILT, "no build of this context has been recorded")
        return _Chain(same=False, culprit=k.index)
    if not parent.same:
        culprit = parent.culprit
        _set(
            msg,
            StepStatus.INVALIDATED,
            Cause.UPSTREAM,
            f"runs on {_step_ref(out, culprit)}, which runs again"
            if culprit is not None
            else "runs on a step that runs again",
        )
        if culprit is not None:
            msg.upstream_step = culprit
        return _Chain(same=False, culprit=culprit)
    _explain(explainer, k, msg)
    return _Chain(same=False, culprit=k.index)


def _runs_on_output(msg: StepReport, out: list[StepReport], on_output: _Chain, remote: str) -> _Chain:
    """Unknown: the step runs on a state that depends on files a re-run step produces."""
    _set(
        msg,
        StepStatus.UNKNOWN,
        Cause.UPSTREAM_OUTPUT,
        f"runs on {_step_ref(out, on_output.culprit)}, whose result depends on files a re-run step produces",
    )
    msg.upstream_step = on_output.culprit
    return _Chain(uncertain=Cause.UPSTREAM_OUTPUT, culprit=on_output.culprit, remote=remote)


def _step_ref(out: list[StepReport], index: int | None) -> str:
    """A step as BuildKit's progress output and the table show it:
    `[build 2/5] RUN make (line 7)`; by its line alone when BuildKit gives it no number."""
    if index is None or not 0 <= index < len(out):
        return "a step"
    step = out[index]
    if step.progress:
        return f"{step.progress} {step.expanded or step.instruction} (line {step.line})"
    return f"line {step.line} ({step.instruction})"


def stage_name(stage: Stage) -> str:
    """The stage as BuildKit names it in its progress output: its name in lower case, else stage-N."""
    return stage.name.lower() or f"stage-{stage.index}"


def _spec_changes(old: dict, new: dict) -> list[ValueChange]:
    """What differs between two expanded instructions, part by part (e.g. image: node:20 -> node:22)."""
    return [
        ValueChange(
            name, printable(_spec_text(old.get(name))), printable(_spec_text(new.get(name))), name in old, name in new
        )
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]


def _spec_text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _last_build_sent(explainer: _Explainer, folder: str) -> bool:
    """Whether the most recent recorded build read something below `folder`
    from the context: BuildKit keeps its copy of the context between builds,
    and a folder sent then is still there (observed by the differential test)."""
    last = explainer.history.last
    if last is None:
        return False
    inside = folder.strip("/") + "/"
    return any((resolved + "/").startswith(inside) for s in last.steps for _, resolved, _ in s.sources if resolved)


def _stage_filtered(stage, names: frozenset[str]) -> bool:
    return bool(names) and (stage.name.lower() in names or str(stage.index) in names)


def _set(msg: StepReport, status: StepStatus, cause: Cause, explanation: str) -> None:
    msg.status, msg.cause, msg.explanation = status, cause, printable(explanation)


def printable(text: str) -> str:
    """File names need not be UTF-8 (they arrive as surrogate escapes);
    a report's text must be UTF-8 (it leaves as protobuf strings): show such bytes as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _explain(explainer: _Explainer, k: StepKey, msg: StepReport) -> None:
    """Say what differs from the same step of the most recent build."""
    msg.status = StepStatus.INVALIDATED
    old = explainer.steps_before.get((k.step.stage.label, stage_ordinal(k)))
    if old is None:
        _set(
            msg,
            msg.status,
            Cause.NEVER_BUILT,
            "the last recorded build did not run this step (a new step, "
            "a stage that build did not need, or a step after the one where it failed)",
        )
        return
    if old.spec != k.step.spec:  # the expanded instruction differs (its text alone may not)
        value_changes = _value_changes(old.values, k.step.values)
        if old.instruction != k.step.instruction:
            msg.old_instruction = old.instruction
        if old.expanded and old.expanded != k.step.expanded:
            msg.old_expanded = printable(old.expanded)
        if old.instruction != k.step.instruction:
            _set(msg, msg.status, Cause.INSTRUCTION_CHANGED, "the instruction changed")
        elif value_changes:
            _set(
                msg,
                msg.status,
                Cause.BUILD_ARG_CHANGED,
                "a build arg or ENV value it sees changed: " + ", ".join(v.name for v in value_changes),
            )
            msg.changed_values.extend(value_changes)
        else:
            # Same text, other values once expanded (e.g. FROM node:${NODE_VERSION}): the expanded
            # instruction shows them; what it does not show (the USER a RUN runs as...) is listed.
            _set(msg, msg.status, Cause.INSTRUCTION_CHANGED, "the instruction changed after expansion")
            if not msg.old_expanded:
                msg.changed_values.extend(_spec_changes(old.spec, k.step.spec))
        return
    if _explain_sources(explainer, k, old, msg):
        return
    if k.step.stage_reads:
        _set(
            msg,
            msg.status,
            Cause.INPUTS_CHANGED,
            f"the files it reads from stage {', '.join(_stages_read(k))} changed",
        )
        return
    named = [name for name, _ in k.step.context_reads] or ([k.step.stage.context] if k.step.stage.context else [])
    if named:
        _set(
            msg,
            msg.status,
            Cause.INPUTS_CHANGED,
            f"the files it reads from named context {', '.join(dict.fromkeys(named))} changed",
        )
        return
    _set(
        msg,
        msg.status,
        Cause.NOT_IN_LAST_BUILD,
        "its key differs from the last recorded build (another build was run with other options?)",
    )


def _explain_sources(explainer: _Explainer, k: StepKey, old: BuildStepRow, msg: StepReport) -> bool:
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
    _set(msg, msg.status, Cause.INPUTS_CHANGED, "files it reads from the context changed")
    if differ is not None:
        for change in differ.changes:
            msg.changed_paths.append(PathChange(printable(change.path), change.kind, printable(change.detail)))
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


def _value_changes(old: dict[str, str], new: dict[str, str]) -> list[ValueChange]:
    changes = []
    for name in sorted(old.keys() | new.keys()):
        if old.get(name) != new.get(name):
            changes.append(ValueChange(name, old.get(name, ""), new.get(name, ""), name in old, name in new))
    return changes
