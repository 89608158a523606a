"""What an editor shows for a report: a short label per step (inlay hint,
code lens, hint diagnostic) and the full explanation (hover). Pure functions
of the daemon's messages; positions stay in the daemon's terms (1-based
lines, columns in characters) until the server converts them."""

from __future__ import annotations

from ctxwatch.render import step_ref, was_and_now
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

CHANGE_WORDS = {
    pb.CHANGE_KIND_ADDED: "added",
    pb.CHANGE_KIND_REMOVED: "removed",
    pb.CHANGE_KIND_CONTENT: "content",
    pb.CHANGE_KIND_MODE: "mode",
    pb.CHANGE_KIND_SYMLINK_TARGET: "symlink target",
    pb.CHANGE_KIND_TYPE: "type",
    pb.CHANGE_KIND_XATTR: "xattr",
}
STATUS_WORDS = {
    pb.STEP_STATUS_CACHED: "cached",
    pb.STEP_STATUS_INVALIDATED: "re-runs",
    pb.STEP_STATUS_UNKNOWN: "unknown",
    pb.STEP_STATUS_ERROR: "error",
}


def label(step: pb.Step, steps: list[pb.Step]) -> str:
    """One line: `cached`, `re-runs: src/app.py changed (content)`, `unknown: base image`..."""
    word = STATUS_WORDS.get(step.status, "unknown")
    if step.status == pb.STEP_STATUS_CACHED:
        return word
    if step.status == pb.STEP_STATUS_ERROR:
        return f"{word}: {step.error or step.explanation}"
    return f"{word}: {_reason(step, steps)}"


def _reason(step: pb.Step, steps: list[pb.Step]) -> str:
    cause = step.cause
    if cause == pb.CAUSE_INPUTS_CHANGED and step.changed_paths:
        first = step.changed_paths[0]
        return f"{first.path} changed ({CHANGE_WORDS.get(first.kind, 'changed')})" + _more(
            step.changed_paths_total, step.changed_paths_truncated
        )
    if cause == pb.CAUSE_BUILD_ARG_CHANGED and step.changed_values:
        first = step.changed_values[0]
        return f"{first.name} {_value(first.old_value, first.old_set)} -> {_value(first.new_value, first.new_set)}" + (
            _more(len(step.changed_values), False)
        )
    if cause in (pb.CAUSE_UPSTREAM, pb.CAUSE_UPSTREAM_OUTPUT) and 0 <= step.upstream_step < len(steps):
        upstream = steps[step.upstream_step]
        verb = "re-runs" if cause == pb.CAUSE_UPSTREAM else "may change what it reads"
        where = f"{upstream.progress} on line {upstream.line}" if upstream.progress else f"line {upstream.line}"
        return f"{where} {verb}"
    if cause == pb.CAUSE_REMOTE:
        return "base image" if step.instruction.upper().startswith("FROM") else "remote source"
    short = {
        pb.CAUSE_NEVER_BUILT: "never built",
        pb.CAUSE_INSTRUCTION_CHANGED: "instruction changed",
        pb.CAUSE_NO_CACHE: "--no-cache",
        pb.CAUSE_NOT_IN_LAST_BUILD: "not in the last build",
    }
    return short.get(cause) or step.explanation or "no reason given"


def _more(total: int, truncated: bool) -> str:
    if total <= 1:
        return ""
    return f" and {'at least ' if truncated else ''}{total - 1} more"


def _value(value: str, is_set: bool) -> str:
    return value if is_set else "(unset)"


def hover(step: pb.Step, steps: list[pb.Step], report: pb.Report) -> str:
    """Markdown: the status, why, every changed path and how, old and new
    instruction, changed values, the step it depends on, warnings."""
    out = [f"**{label(step, steps)}**", ""]
    if step.explanation:
        out += [step.explanation, ""]
    if step.changed_paths:
        out.append("Changed paths:")
        out += [
            f"- `{c.path}`: {CHANGE_WORDS.get(c.kind, 'changed')}" + (f" ({c.detail})" if c.detail else "")
            for c in step.changed_paths
        ]
        hidden = step.changed_paths_total - len(step.changed_paths)
        if hidden > 0:
            out.append(f"- ... and {'at least ' if step.changed_paths_truncated else ''}{hidden} more")
        out.append("")
    changed = was_and_now(step)
    if changed:
        out += ["Instruction changed:", *(f"- {label}: `{text}`" for label, text in changed), ""]
    if step.changed_values:
        out.append("Values it sees:")
        out += [
            f"- `{v.name}`: {_value(v.old_value, v.old_set)} -> {_value(v.new_value, v.new_set)}"
            for v in step.changed_values
        ]
        out.append("")
    if step.cause in (pb.CAUSE_UPSTREAM, pb.CAUSE_UPSTREAM_OUTPUT) and 0 <= step.upstream_step < len(steps):
        upstream = steps[step.upstream_step]
        out += [f"Depends on {step_ref(upstream)} ({label(upstream, steps)})", ""]
    if step.warnings:
        out += [f"Warning: {w}" for w in step.warnings] + [""]
    if report.notes:
        out += [f"Note: {n}" for n in report.notes] + [""]
    where = f"`{step.progress}` (stage `{step.stage}`)" if step.progress else f"Stage `{step.stage}`"
    out.append(f"{where}, cache key `{step.key[:16]}`" if step.key else where)
    return "\n".join(out).strip()


def reader_title(reader: pb.Reader) -> str:
    """For a file a step reads: `editing re-runs web: COPY src/ /app/src/ (line 12) and 3 steps after`."""
    after = reader.steps_after
    tail = f" and {after} step{'s' if after != 1 else ''} after it" if after else ""
    return f"editing re-runs {reader.context.name}: {reader.step.instruction} (line {reader.step.line}){tail}"
