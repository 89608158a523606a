"""A prediction compared with what BuildKit did, step by step.

A step is compared when BuildKit reported it (a step BuildKit merged with an
equal one of another stage is reported once). Predicted unknown is counted
apart: it is neither right nor wrong. A step predicted to run only because no
recorded build has it is not compared: BuildKit may hold it from builds
ctxwatch never saw (before it watched, or another context's), which says
nothing of how ctxwatch follows BuildKit's rules. In a failed build BuildKit stops
mid-way, cancels what runs beside the failure, and its per-step cached flags
are not reliable (a step of a pruned cache can show as cached), so only the
failing step is compared: it agrees with any prediction that it runs
(ctxwatch does not predict whether a command succeeds).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..cache.report import Cause, StepStatus
from ..cache.store import PredictionCheckRow
from ..requests import BuildRun, ObservedStep, PredictedStep
from ..results import Disagreement, PredictionCheck

CANCELED = "canceled"  # BuildKit's error for vertices stopped because another one failed


def compare(prediction: Sequence[PredictedStep], run: BuildRun, context: str, dockerfile: str) -> PredictionCheck:
    observed = {step.line: step for step in run.steps}
    check = PredictionCheck(
        context=context, dockerfile=dockerfile, command=run.command, unix_ms=int(time.time() * 1000)
    )
    for step in prediction:
        if step.cause == Cause.NEVER_BUILT:
            continue
        seen = observed.get(step.line)
        if seen is None or not (seen.completed or seen.error):
            continue
        failing = bool(seen.error) and CANCELED not in seen.error
        if (run.failed or seen.error) and not failing:
            continue
        check.steps += 1
        if step.status == StepStatus.UNKNOWN:
            check.unknown += 1
        elif _agrees(step, seen):
            check.agreed += 1
        else:
            check.disagreements.append(
                Disagreement(
                    line=step.line,
                    instruction=step.instruction,
                    predicted=step.status,
                    cause=step.cause,
                    explanation=step.explanation,
                    cached=seen.cached,
                    error=seen.error,
                )
            )
    return check


def _agrees(step: PredictedStep, seen: ObservedStep) -> bool:
    if seen.error:
        return step.status != StepStatus.CACHED
    if step.status == StepStatus.ERROR:
        return False
    return (step.status == StepStatus.CACHED) == seen.cached


# The store keeps a disagreement's status and cause by the API's enum names (STEP_STATUS_CACHED, CAUSE_REMOTE).
def _status_name(status: StepStatus) -> str:
    return f"STEP_STATUS_{status.name}"


def _cause_name(cause: Cause) -> str:
    return "CAUSE_UNSPECIFIED" if cause == Cause.NONE else f"CAUSE_{cause.name}"


def _status(name: str) -> StepStatus:
    return StepStatus[name.removeprefix("STEP_STATUS_")]


def _cause(name: str) -> Cause:
    return Cause.NONE if name == "CAUSE_UNSPECIFIED" else Cause[name.removeprefix("CAUSE_")]


def check_row(check: PredictionCheck) -> PredictionCheckRow:
    """The check as the store keeps it."""
    return PredictionCheckRow(
        check.context,
        check.unix_ms,
        check.steps,
        check.agreed,
        check.unknown,
        {
            "dockerfile": check.dockerfile,
            "command": check.command,
            "disagreements": [
                {
                    "line": d.line,
                    "instruction": d.instruction,
                    "predicted": _status_name(d.predicted),
                    "cause": _cause_name(d.cause),
                    "explanation": d.explanation,
                    "cached": d.cached,
                    "error": d.error,
                }
                for d in check.disagreements
            ],
        },
    )


def stored_check(row: PredictionCheckRow) -> PredictionCheck:
    """A stored check, as recorded."""
    detail = row.detail
    return PredictionCheck(
        context=row.context,
        dockerfile=detail.get("dockerfile", ""),
        command=detail.get("command", ""),
        unix_ms=row.created_ms,
        steps=row.steps,
        agreed=row.agreed,
        unknown=row.unknown,
        disagreements=[
            Disagreement(
                line=d["line"],
                instruction=d["instruction"],
                predicted=_status(d["predicted"]),
                cause=_cause(d["cause"]),
                explanation=d["explanation"],
                cached=d["cached"],
                error=d["error"],
            )
            for d in detail.get("disagreements", [])
        ],
    )
