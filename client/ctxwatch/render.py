"""Human-readable text for reports, context lists and daemon status.

Pure functions: they return strings and never look at the terminal; the
caller decides `color` (a TTY without NO_COLOR) and `width` (None: no
truncation).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ctxwatch_api.v1 import ctxwatch_pb2 as pb

MAX_PATHS = 5
DETAIL_INDENT = " " * 13  # under the STEP column: past the widest status word
ELLIPSIS = "…"

_STATUS_WORDS: dict[int, str] = {
    pb.STEP_STATUS_CACHED: "cached",
    pb.STEP_STATUS_INVALIDATED: "INVALIDATED",
    pb.STEP_STATUS_UNKNOWN: "unknown",
    pb.STEP_STATUS_ERROR: "ERROR",
}
_STATUS_COLORS: dict[int, str] = {
    pb.STEP_STATUS_CACHED: "32",  # green
    pb.STEP_STATUS_INVALIDATED: "1;33",  # bold yellow
    pb.STEP_STATUS_UNKNOWN: "35",  # magenta
    pb.STEP_STATUS_ERROR: "1;31",  # bold red
}
_ERROR_COLOR = "1;31"
_CHANGE_WORDS = {
    pb.CHANGE_KIND_ADDED: "added",
    pb.CHANGE_KIND_REMOVED: "removed",
    pb.CHANGE_KIND_CONTENT: "content",
    pb.CHANGE_KIND_MODE: "mode",
    pb.CHANGE_KIND_SYMLINK_TARGET: "symlink",
    pb.CHANGE_KIND_TYPE: "type",
    pb.CHANGE_KIND_XATTR: "xattr",
}


def render_report(report: pb.Report, color: bool = False, width: int | None = None) -> str:
    """The header of a report and one row per step, with details under non-cached steps."""
    report = shown(report)
    lines = _report_header(report, color)
    if report.steps:
        lines.append("")
        lines += _step_table(report, report.steps, color, width)
    return "\n".join(lines)


def render_check(report: pb.Report, color: bool = False, width: int | None = None) -> str:
    """One summary line, then the rows and details of the steps that are not cached."""
    report = shown(report)
    lines = [render_summary(report, color)]
    pending = [step for step in report.steps if step.status != pb.STEP_STATUS_CACHED]
    if pending and not report.error:
        lines += _step_table(report, pending, color, width, header=False)
    return "\n".join(lines)


def render_summary(report: pb.Report, color: bool = False) -> str:
    """`<name>: <counts>`, or `<name>: error ...` when the whole context failed."""
    report = shown(report)
    if report.error:
        return f"{report.context.name}: {_report_error(report, color)}"
    return f"{report.context.name}: {step_counts(report.steps)}"


def step_counts(steps: Sequence[pb.Step]) -> str:
    """E.g. "12 steps: 9 cached, 2 invalidated, 1 unknown" (", N errors" only when there are some)."""
    counts = Counter(_status_word(step.status).lower() for step in steps)
    text = (
        f"{_plural(len(steps), 'step')}: {counts['cached']} cached, "
        f"{counts['invalidated']} invalidated, {counts['unknown']} unknown"
    )
    if counts["error"]:
        text += f", {_plural(counts['error'], 'error')}"
    return text


def render_contexts(contexts: Sequence[pb.Context]) -> str:
    """The `ls` table: name, path, Dockerfile (relative to the path when inside it), target, build args, options."""
    if not contexts:
        return "no contexts registered (add one with `ctxwatch add PATH`)"
    contexts = [shown(context) for context in contexts]
    rows = [["NAME", "PATH", "DOCKERFILE", "TARGET", "BUILD ARGS", "OPTIONS"]]
    rows += [
        [
            context.name,
            context.path,
            _dockerfile_display(context),
            context.target or "-",
            _format_pairs(context.build_args) or "-",
            _context_options(context) or "-",
        ]
        for context in contexts
    ]
    return "\n".join(_align(rows))


def render_daemon_status(status: pb.DaemonStatus) -> str:
    status = shown(status)
    lines = [
        (
            f"ctxwatchd {status.version or '(unknown version)'}, pid {status.pid}, "
            f"up {format_duration(status.uptime_seconds)}"
        ),
        *_align(
            [
                ["socket", status.socket_path],
                ["state dir", status.state_dir],
                ["memory", f"{status.memory_rss_bytes / 1e6:.1f} MB RSS"],
                ["queue", f"{_plural(status.queue_depth, 'event')} not yet applied"],
                ["log", log_destination(status.log_file)],
                [
                    "idle exit",
                    f"after {format_duration(status.idle_timeout_seconds)} without a client"
                    if status.idle_timeout_seconds
                    else "never",
                ],
                ["contexts", str(status.contexts)],
                ["activity", status.activity or "idle"],
            ]
        ),
    ]
    if not status.roots:
        lines.append("watched roots: none")
        return "\n".join(lines)
    lines.append("watched roots:")
    rows = [
        [
            root.path,
            _plural(root.files, "file"),
            _plural(root.directories, "dir"),
            f"{_plural(root.files_hashed, 'file')} hashed ({root.bytes_hashed / 1e6:,.1f} MB)",
            "ok" if root.healthy else "UNHEALTHY",
            root.message,
        ]
        for root in status.roots
    ]
    lines += ["  " + line for line in _align(rows, right={1, 2, 3})]
    return "\n".join(lines)


def log_destination(log_file: str) -> str:
    if log_file == "journal":
        return "the journal (journalctl --user -u ctxwatchd)"
    return log_file or "stderr"


def render_mark_built(response: pb.MarkBuiltResponse) -> str:
    response = shown(response)
    report = response.report
    if not response.build_id:  # it failed before any step completed
        return (
            f"nothing recorded for {report.context.name}: no step completed before the build failed: {response.failed}"
        )
    text = f"recorded build {response.build_id} of {report.context.name}: {_plural(response.steps_recorded, 'step')}"
    if response.failed:
        text += (
            f"\nthe build fails: {response.failed}\n"
            "only the steps before the failure were recorded (BuildKit caches those too)"
        )
    return text


def format_duration(seconds: float) -> str:
    """A short human duration: "45s", "12m 05s", "3h 07m", "2d 04h"."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _report_header(report: pb.Report, color: bool) -> list[str]:
    context = report.context
    lines = [f"{context.name}: {context.path}", f"  Dockerfile: {context.dockerfile}"]
    if context.target:
        lines.append(f"  target: {context.target}")
    if context.build_args:
        lines.append(f"  build args: {_format_pairs(context.build_args)}")
    if context.build_contexts:
        lines.append(f"  named contexts: {_format_pairs(context.build_contexts)}")
    if _context_options(context):
        lines.append(f"  options: {_context_options(context)}")
    if report.error:
        lines.append(f"  {_report_error(report, color)}")
    else:
        lines.append(f"  {step_counts(report.steps)}")
    lines += [f"  note: {note}" for note in report.notes]
    return lines


def _report_error(report: pb.Report, color: bool) -> str:
    # The daemon's message may name the line itself (BuildKit's "... on line 3: ..."): say it once.
    named = report.error_line and re.search(rf"\bline {report.error_line}\b", report.error)
    where = f" at line {report.error_line}" if report.error_line and not named else ""
    return _paint(f"error{where}", _ERROR_COLOR, color) + f": {report.error}"


def _step_table(
    report: pb.Report,
    steps: Sequence[pb.Step],
    color: bool,
    width: int | None,
    header: bool = True,
) -> list[str]:
    # A step as BuildKit's progress numbers it ("[build 2/5]"), else by its stage.
    rows = [
        [_status_word(step.status), step.progress or step.stage, str(step.line), step.instruction] for step in steps
    ]
    if header:
        rows.insert(0, ["STATUS", "STEP", "LINE", "INSTRUCTION"])
    # Pad the status column to the widest word so details line up under STEP.
    rows = [[row[0].ljust(len(DETAIL_INDENT) - 2), *row[1:]] for row in rows]
    lines = [_truncate(line, width) for line in _align(rows, right={2})]
    if header:
        out, lines = [lines[0]], lines[1:]
    else:
        out = []
    by_index = {step.index: step for step in report.steps}
    for step, line in zip(steps, lines, strict=True):
        out.append(_paint_status(line, step.status, color))
        if step.status != pb.STEP_STATUS_CACHED:
            out += [DETAIL_INDENT + detail for detail in _step_details(step, by_index)]
    return out


def _step_details(step: pb.Step, by_index: Mapping[int, pb.Step]) -> list[str]:
    """What changed for one step, most specific first."""
    details = [_why(step, by_index)]
    if step.error:
        details.append(f"error: {step.error}")
    details += _path_lines(step)
    details += [_value_line(change) for change in step.changed_values]
    details += [f"{label}: {text}" for label, text in was_and_now(step)]
    details += [f"warning: {warning}" for warning in step.warnings]
    return [detail for detail in details if detail]


def _why(step: pb.Step, by_index: Mapping[int, pb.Step]) -> str:
    """The daemon's explanation, else one made from the cause."""
    if step.explanation:
        return step.explanation
    upstream = by_index.get(step.upstream_step) if step.cause == pb.CAUSE_UPSTREAM else None
    if upstream is not None:
        return f"runs again because {step_ref(upstream)} does"
    return _cause_words(step.cause)


def step_ref(step: pb.Step) -> str:
    """A step as BuildKit's progress output names it, and where it is:
    `[build 2/5] RUN make (line 7)`; `line 7 (WORKDIR /)` when BuildKit gives it no number."""
    if step.progress:
        return f"{step.progress} {step.expanded_instruction or step.instruction} (line {step.line})"
    return f"line {step.line} ({step.instruction})"


def was_and_now(step: pb.Step) -> list[tuple[str, str]]:
    """An instruction that changed, before and after expansion (as BuildKit
    prints it), and as written where that differs:
    was: FROM node:20-alpine / now: FROM node:22-alpine / as written: FROM node:${NODE}-alpine."""
    new_raw, new = step.instruction, step.expanded_instruction or step.instruction
    if not step.old_expanded_instruction:
        # Recorded before expanded instructions were kept: only the text as written is known.
        return [("was", step.old_instruction), ("now", new_raw)] if step.old_instruction else []
    lines = [("was", step.old_expanded_instruction), ("now", new)]
    old_raw = step.old_instruction or new_raw  # old_instruction is set only when the text as written changed
    if old_raw == new_raw:
        return lines + ([("as written", new_raw)] if new_raw != new else [])
    if old_raw != step.old_expanded_instruction:
        lines.append(("was written", old_raw))
    if new_raw != new:
        lines.append(("now written", new_raw))
    return lines


def _path_lines(step: pb.Step) -> list[str]:
    shown = step.changed_paths[:MAX_PATHS]
    lines = []
    for change in shown:
        kind = _CHANGE_WORDS.get(change.kind, "changed")
        detail = f"  ({change.detail})" if change.detail else ""
        lines.append(f"{kind:<8} {change.path}{detail}")
    # changed_paths itself is capped by the daemon; the total says how many there were.
    hidden = max(step.changed_paths_total, len(step.changed_paths)) - len(shown)
    if hidden > 0 or step.changed_paths_truncated:
        lines.append(f"{ELLIPSIS} and {hidden}{'+' if step.changed_paths_truncated else ''} more")
    return lines


def _value_line(change: pb.ValueChange) -> str:
    return f"{change.name}: {_value(change.old_value, change.old_set)} -> {_value(change.new_value, change.new_set)}"


def _value(value: str, is_set: bool) -> str:
    if not is_set:
        return "(unset)"
    return value if value else '""'


def _cause_words(cause: int) -> str:
    """CAUSE_INPUTS_CHANGED -> "inputs changed"; nothing for cached steps."""
    if cause == pb.CAUSE_UNSPECIFIED:
        return ""
    return pb.Cause.Name(cause).removeprefix("CAUSE_").lower().replace("_", " ")


def _status_word(status: int) -> str:
    # UNSPECIFIED is a daemon bug; never let it look cached.
    return _STATUS_WORDS.get(status, "unknown")


def _paint_status(line: str, status: int, color: bool) -> str:
    word = _status_word(status)
    if not color or not line.startswith(word):
        return line
    return _paint(word, _STATUS_COLORS.get(status, _STATUS_COLORS[pb.STEP_STATUS_UNKNOWN]), True) + line[len(word) :]


def _paint(text: str, sgr: str, color: bool) -> str:
    return f"\x1b[{sgr}m{text}\x1b[0m" if color else text


def _truncate(line: str, width: int | None) -> str:
    if width is None or len(line) <= width:
        return line
    return line[: max(width - 1, 0)] + ELLIPSIS


def _align(rows: Sequence[Sequence[str]], right: Iterable[int] = ()) -> list[str]:
    """Columns separated by two spaces; the last column is not padded."""
    right = set(right)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) if i < len(row) - 1 else cell
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _dockerfile_display(context: pb.Context) -> str:
    relative = os.path.relpath(context.dockerfile, context.path) if context.dockerfile else ""
    return relative if relative and not relative.startswith("..") else context.dockerfile


def _context_options(context: pb.Context) -> str:
    """The options given on `add` (unset ones follow the config file)."""
    if not context.HasField("strict_remote"):
        return ""
    return "strict-remote" if context.strict_remote else "no-strict-remote"


def _format_pairs(values: Mapping[str, str]) -> str:
    """NAME=VALUE pairs (build args, named contexts) in name order."""
    return " ".join(f"{key}={value}" for key, value in sorted(values.items()))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# -- names as they may be shown ------------------------------------------------

# C0 and C1 controls and DEL: an escape sequence in a file name could retitle
# or clear the terminal, a newline forge a report line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_M = TypeVar("_M", bound=Message)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """The text with every control character written out (\\n, \\x1b, ...)."""
    return _CONTROL.sub(lambda m: _NAMED.get(m[0]) or f"\\x{ord(m[0]):02x}", text)


def shown(message: _M) -> _M:
    """A copy of a reply with every text in it safe to print (names come from files)."""
    copy = type(message)()
    copy.CopyFrom(message)
    _escape_fields(copy)
    return copy


def _escape_fields(message: Message) -> None:
    for field, value in message.ListFields():
        repeated = field.is_repeated
        if field.type == FieldDescriptor.TYPE_STRING:
            if repeated:
                value[:] = [escape_controls(v) for v in value]
            else:
                setattr(message, field.name, escape_controls(value))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                entries = {escape_controls(k): v for k, v in value.items()}
                value.clear()
                value.update({k: escape_controls(v) if isinstance(v, str) else v for k, v in entries.items()})
            else:
                for item in value if repeated else [value]:
                    _escape_fields(item)
