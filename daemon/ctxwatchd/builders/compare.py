"""A prediction compared with what BuildKit did, step by step.

A step is compared when BuildKit reported it (a step BuildKit merged with an
equal one of another stage is reported once). Predicted unknown is counted
apart: it is neither right nor wrong. In a failed build BuildKit stops
mid-way, cancels what runs beside the failure, and its per-step cached flags
are not reliable (a step of a pruned cache can show as cached), so only the
failing step is compared: it agrees with any prediction that it runs
(ctxwatch does not predict whether a command succeeds).
"""

from __future__ import annotations

import time

from ctxwatch_api.v1 import ctxwatch_pb2 as pb

from ..cache.store import PredictionCheckRow

CANCELED = "canceled"  # BuildKit's error for vertices stopped because another one failed


def compare(prediction: pb.Report, run: pb.BuildRun, context: str, dockerfile: str) -> pb.PredictionCheck:
    observed = {step.line: step for step in run.steps}
    check = pb.PredictionCheck(
        context=context, dockerfile=dockerfile, command=run.command, unix_ms=int(time.time() * 1000)
    )
    for step in prediction.steps:
        seen = observed.get(step.line)
        if seen is None or not (seen.completed or seen.error):
            continue
        failing = bool(seen.error) and CANCELED not in seen.error
        if (run.failed or seen.error) and not failing:
            continue
        check.steps += 1
        if step.status == pb.STEP_STATUS_UNKNOWN:
            check.unknown += 1
        elif _agrees(step, seen):
            check.agreed += 1
        else:
            check.disagreements.append(
                pb.Disagreement(
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


def _agrees(step: pb.Step, seen: pb.ObservedStep) -> bool:
    if seen.error:
        return step.status != pb.STEP_STATUS_CACHED
    if step.status == pb.STEP_STATUS_ERROR:
        return False
    return (step.status == pb.STEP_STATUS_CACHED) == seen.cached


def check_row(check: pb.PredictionCheck) -> PredictionCheckRow:
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
                    "predicted": pb.StepStatus.Name(d.predicted),
                    "cause": pb.Cause.Name(d.cause),
                    "explanation": d.explanation,
                    "cached": d.cached,
                    "error": d.error,
                }
                for d in check.disagreements
            ],
        },
    )


def check_message(row: PredictionCheckRow) -> pb.PredictionCheck:
    """A stored check as the API gives it."""
    detail = row.detail
    return pb.PredictionCheck(
        context=row.context,
        dockerfile=detail.get("dockerfile", ""),
        command=detail.get("command", ""),
        unix_ms=row.created_ms,
        steps=row.steps,
        agreed=row.agreed,
        unknown=row.unknown,
        disagreements=[
            pb.Disagreement(
                line=d["line"],
                instruction=d["instruction"],
                predicted=pb.StepStatus.Value(d["predicted"]),
                cause=pb.Cause.Value(d["cause"]),
                explanation=d["explanation"],
                cached=d["cached"],
                error=d["error"],
            )
            for d in detail.get("disagreements", [])
        ],
    )
