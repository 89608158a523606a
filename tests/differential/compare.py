"""Run a scenario on the real BuildKit and through ctxwatch; compare every step.

Before each build after the first, ctxwatch (the real engine, in-process)
predicts every step; then BuildKit builds, and each step's prediction is
scored against what BuildKit did:

- right: CACHED where BuildKit took the step from its cache, INVALIDATED
  where it ran it again; a failing build counts once, right when ctxwatch
  said it fails;
- unknown: ctxwatch said UNKNOWN (it must name why: a re-run RUN, a remote);
- wrong: a confident answer BuildKit contradicted.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from support.buildkit import STATIC_BUSYBOX, Builder
from support.local import LocalClient

from ctxwatch.client import build_options
from ctxwatch_api.progress import Vertex
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

from .scenarios import Change, Scenario

VERTEX_NAME = re.compile(r"^\[(?P<stage>\S+) (?P<n>\d+)/\d+\] (?P<text>.*)$", re.S)
RIGHT, UNKNOWN, WRONG = "right", "unknown", "wrong"


@dataclass
class Disagreement:
    seed: int
    build: int  # 1 = the build after the first change
    stage: str
    instruction: str
    predicted: str
    explanation: str
    observed: str

    def __str__(self) -> str:
        return (
            f"seed {self.seed} build {self.build} [{self.stage}] {self.instruction}: "
            f"ctxwatch {self.predicted} ({self.explanation}), BuildKit {self.observed}"
        )


@dataclass
class Outcome:
    counts: Counter = field(default_factory=Counter)
    disagreements: list[Disagreement] = field(default_factory=list)
    unknowns: list[Disagreement] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # steps that could not be paired, builds that failed


def run_scenario(scenario: Scenario, builder: Builder, workdir: Path | None = None) -> Outcome:
    folder = Path(tempfile.mkdtemp(prefix=f"diff-{scenario.seed}-", dir=workdir))
    try:
        return _run(scenario, builder, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(scenario: Scenario, builder: Builder, folder: Path) -> Outcome:
    outcome = Outcome()
    root = folder / "ctx"
    root.mkdir()
    shutil.copy(STATIC_BUSYBOX, root / "busybox")  # with its mode: the base stage runs it
    for path, content in scenario.files.items():
        _write(root / path, content)
    if scenario.dockerignore is not None:
        (root / ".dockerignore").write_text(scenario.dockerignore)
    dockerfile = root / "Dockerfile"
    dockerfile.write_text(scenario.dockerfile)
    build_args = dict(scenario.build_args)
    with LocalClient(folder / "state") as client:
        client.register(str(root), dockerfile=str(dockerfile), name="scenario")
        ref = pb.ContextRef(name="scenario")
        (report,) = client.reports([ref], _options(build_args))
        vertices, error = _build(builder, root, dockerfile, build_args)
        if error:  # the first build is scored only when it fails (its steps may be cached by other scenarios)
            _score(scenario.seed, 0, report, vertices, error, outcome)
            return outcome
        client.mark_built(ref, _options(build_args))
        for number, phase in enumerate(scenario.phases, 1):
            for change in phase:
                _apply(change, root, build_args)
            (report,) = client.reports([ref], _options(build_args))
            vertices, error = _build(builder, root, dockerfile, build_args)
            _score(scenario.seed, number, report, vertices, error, outcome)
            if error:
                break
            client.mark_built(ref, _options(build_args))
    return outcome


def _build(builder: Builder, root: Path, dockerfile: Path, build_args: dict[str, str]) -> tuple[list[Vertex], str]:
    """The vertices in the order BuildKit first reported them, and its error ("" on success)."""
    built = builder.buildctl(root, dockerfile_dir=dockerfile.parent, filename=dockerfile.name, build_args=build_args)
    return built.progress.vertices(), built.error


def _options(build_args: dict[str, str]) -> pb.BuildOptions:
    return build_options([f"{k}={v}" for k, v in sorted(build_args.items())])


def _write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)


def _apply(change: Change, root: Path, build_args: dict[str, str]) -> None:
    path = root / change.path if change.path else None
    if change.op in ("write", "add"):
        _write(path, change.content)
    elif change.op == "chmod":
        os.chmod(path, change.mode)
    elif change.op == "remove":
        path.unlink(missing_ok=True)
    elif change.op == "touch":
        if path.exists():
            os.utime(path)
    elif change.op == "build_arg":
        build_args[change.name] = change.value
    elif change.op == "dockerfile":
        (root / "Dockerfile").write_text(change.content)
    else:
        raise ValueError(f"unknown change {change.op}")


def _score(seed: int, number: int, report: pb.Report, vertices: list[Vertex], error: str, outcome: Outcome) -> None:
    if error:
        _score_failure(seed, number, report, vertices, error, outcome)
        return
    if report.error:
        outcome.counts[WRONG] += 1
        outcome.disagreements.append(
            Disagreement(seed, number, "", "(whole Dockerfile)", "ERROR", report.error, "a build that succeeded")
        )
        return
    steps = _by_stage(vertices)
    for stage_steps in _report_stages(report):
        for ordinal, step in enumerate(stage_steps, 1):
            if step.stage == "base":
                continue  # the shared busybox stage: the same in every scenario
            vertex = steps.get((step.stage.lower(), ordinal)) or _same_text(vertices, step.instruction)
            if vertex is None:
                outcome.problems.append(f"seed {seed} build {number}: no vertex for [{step.stage}] {step.instruction}")
                continue
            observed = "cached" if vertex.cached else "ran"
            verdict = _verdict(step, observed)
            outcome.counts[verdict] += 1
            found = _disagreement(seed, number, step, observed)
            if verdict == WRONG:
                outcome.disagreements.append(found)
            elif verdict == UNKNOWN:
                outcome.unknowns.append(found)


def _score_failure(
    seed: int, number: int, report: pb.Report, vertices: list[Vertex], error: str, outcome: Outcome
) -> None:
    """A failing build is one answer: did ctxwatch say it fails? (BuildKit
    cancels the steps running beside the failing one, and its cached flags
    of a failing build are not reliable.)"""
    predicted = report.error or next((s.error for s in report.steps if s.status == pb.STEP_STATUS_ERROR), "")
    if predicted:
        outcome.counts[RIGHT] += 1
        return
    if any(s.status == pb.STEP_STATUS_UNKNOWN and s.cause == pb.CAUSE_ERROR for s in report.steps):
        outcome.counts[UNKNOWN] += 1  # ctxwatch said the build may fail here
        return
    outcome.counts[WRONG] += 1
    outcome.disagreements.append(Disagreement(seed, number, "", "(the build)", "no error", "", f"failed: {error}"))


def _disagreement(seed: int, number: int, step: pb.Step, observed: str) -> Disagreement:
    status = pb.StepStatus.Name(step.status).removeprefix("STEP_STATUS_")
    return Disagreement(seed, number, step.stage, step.instruction, status, step.explanation, observed)


def _verdict(step: pb.Step, observed: str) -> str:
    if step.status == pb.STEP_STATUS_UNKNOWN:
        return UNKNOWN
    if step.status == pb.STEP_STATUS_CACHED:
        return RIGHT if observed == "cached" else WRONG
    if step.status == pb.STEP_STATUS_INVALIDATED:
        return RIGHT if observed == "ran" else WRONG
    return WRONG  # ERROR where BuildKit built


def _report_stages(report: pb.Report) -> list[list[pb.Step]]:
    stages: dict[int, list[pb.Step]] = {}
    for step in report.steps:
        stages.setdefault(step.stage_index, []).append(step)
    return list(stages.values())


def _by_stage(vertices: list[Vertex]) -> dict[tuple[str, int], Vertex]:
    """Vertices by (stage, position in the stage). A linked copy has two: the
    copy and its merge ("LINK COPY ..."); the copy is the step."""
    found = {}
    for vertex in vertices:
        match = VERTEX_NAME.match(vertex.name)
        if match and not match["text"].startswith("LINK "):
            found[(match["stage"], int(match["n"]))] = vertex
    return found


def _same_text(vertices: list[Vertex], instruction: str) -> Vertex | None:
    """BuildKit shows a step that equals one of another stage once (it merges
    equal vertices), under that other stage's name."""
    same = [v for v in vertices if (m := VERTEX_NAME.match(v.name)) and m["text"] == instruction]
    return same[0] if len(same) == 1 else None
