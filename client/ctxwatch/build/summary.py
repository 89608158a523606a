"""How predictions compared with real builds, as text: after a wrapped build, and `ctxwatch stats`."""

from __future__ import annotations

import time

from ctxwatch.render import _align  # the CLI's one column layout
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

STATUS_WORDS = {
    pb.STEP_STATUS_CACHED: "cached",
    pb.STEP_STATUS_INVALIDATED: "runs again",
    pb.STEP_STATUS_UNKNOWN: "unknown",
    pb.STEP_STATUS_ERROR: "fails",
}


def render_check(check: pb.PredictionCheck) -> str:
    """`prediction: N/N steps right`, or that line and a short table of the disagreements."""
    if not check.steps:
        return "prediction: nothing to compare (no step BuildKit reported had a recorded build to predict from)"
    known = check.steps - check.unknown
    line = f"prediction: {check.agreed}/{known} steps right"
    if check.unknown:
        line += f" ({check.unknown} more predicted unknown)"
    if not check.disagreements:
        return line
    rows = [["LINE", "INSTRUCTION", "PREDICTED", "BUILDKIT", "WHY PREDICTED"]]
    rows += [
        [
            str(d.line),
            _short(d.instruction, 40),
            STATUS_WORDS.get(d.predicted, "?"),
            _buildkit(d),
            _short(d.explanation, 60),
        ]
        for d in check.disagreements
    ]
    return "\n".join([line, *("  " + row for row in _align(rows))])


def render_stats(stats: pb.PredictionStats) -> str:
    """The `ctxwatch stats` text: how far to trust the answers, and the last misses to report."""
    if not stats.checked:
        lines = ["no prediction checked yet: run builds through `ctxwatch build -- <your build command>`"]
    else:
        known = stats.steps - stats.unknown
        share = f" ({100 * stats.agreed / known:.1f}% of the steps predicted cached or not)" if known else ""
        lines = [
            f"predictions checked: {stats.checked} build(s), {stats.steps} step(s)",
            f"  agreed: {stats.agreed}{share}",
            f"  unknown: {stats.unknown}",
            f"  disagreed: {known - stats.agreed}",
        ]
    lines.append(f"builds learned from the builder (run without the wrapper): {stats.builds_learned}")
    if stats.recent_disagreements:
        lines.append("last disagreements (newest first):")
        for check in stats.recent_disagreements:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(check.unix_ms / 1000))
            lines.append(f"  {when}  {check.context}  {check.dockerfile}")
            if check.command:
                lines.append(f"    command: {check.command}")
            for d in check.disagreements:
                why = f" ({d.explanation})" if d.explanation else ""
                lines.append(
                    f"    line {d.line} {_short(d.instruction, 50)}: predicted {STATUS_WORDS.get(d.predicted, '?')}"
                    f"{why}, BuildKit {_buildkit(d)}"
                )
    return "\n".join(lines)


def _buildkit(d: pb.Disagreement) -> str:
    if d.error:
        return "failed"
    return "cached" if d.cached else "ran it"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
