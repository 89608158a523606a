"""BuildKit's machine-readable progress (`--progress=rawjson`): what each vertex did.

buildctl and buildx print one `client.SolveStatus` JSON object per line on
stderr; a vertex is sent again each time it changes, so the last fields sent
for a digest win. Dockerfile steps are the vertices named
`[<stage> <i>/<n>] <INSTRUCTION args>`: BuildKit's Dockerfile frontend numbers
the FROM of an image and every ADD, COPY, RUN and WORKDIR of a stage, and
leaves the stage name out when the Dockerfile has a single stage.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

# The platform prefix appears only in multi-platform builds; the index is padded to the width of the total.
STEP_NAME = re.compile(
    r"^\[\s*(?:(?P<platform>\S+/\S+) +)?(?:(?P<stage>\S+)\s+)?(?P<index>\d+)/(?P<total>\d+)\] (?P<text>.*)$", re.DOTALL
)


LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class Vertex:
    """The last state of one vertex of the build graph."""

    digest: str
    name: str
    cached: bool
    started: str  # RFC 3339 timestamps, "" until set
    completed: str
    error: str


@dataclass(frozen=True)
class StepResult:
    """A vertex that is a Dockerfile step: stage "" when the Dockerfile has one stage."""

    stage: str
    index: int
    total: int
    text: str
    cached: bool
    completed: bool
    error: str

    @property
    def keyword(self) -> str:
        """The instruction word (`COPY`, `RUN`...), without an ONBUILD prefix."""
        words = self.text.split(None, 2)
        if words and words[0] == "ONBUILD" and len(words) > 1:
            return words[1].upper()
        return words[0].upper() if words else ""


class ProgressReader:
    """Collects the rawjson lines of one build; lines that are not JSON objects are kept as text."""

    def __init__(self) -> None:
        self._vertices: dict[str, dict] = {}
        self._order: list[str] = []
        self.other_lines: list[str] = []
        self._logs: dict[str, deque[str]] = {}

    def feed(self, line: str) -> list[dict]:
        """Takes one line of output; returns the vertex updates it carried (empty for a non-JSON line)."""
        text = line.strip()
        if not text.startswith("{"):
            if text:
                self.other_lines.append(text)
            return []
        try:
            status = json.loads(text)
        except json.JSONDecodeError:
            self.other_lines.append(text)
            return []
        if not isinstance(status, dict):
            return []
        for entry in status.get("logs") or []:
            self._add_log(entry)
        updates = status.get("vertexes") or []
        for update in updates:
            digest = update.get("digest", "")
            if digest not in self._vertices:
                self._vertices[digest] = {}
                self._order.append(digest)
            self._vertices[digest].update(update)
        return updates

    def log_tail(self, digest: str) -> list[str]:
        """The last lines a vertex printed (what a failed RUN said)."""
        return list(self._logs.get(digest, ()))

    def _add_log(self, entry: dict) -> None:
        try:
            text = base64.b64decode(entry.get("data") or "").decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return
        lines = self._logs.setdefault(str(entry.get("vertex", "")), deque(maxlen=LOG_TAIL_LINES))
        lines.extend(line for line in text.splitlines() if line.strip())

    def vertices(self) -> list[Vertex]:
        """Every vertex in the order BuildKit first sent it."""
        return [_vertex(digest, self._vertices[digest]) for digest in self._order]

    def steps(self) -> list[StepResult]:
        """The vertices that are Dockerfile steps, in the order BuildKit first sent them."""
        return [step for vertex in self.vertices() if (step := step_result(vertex)) is not None]


def read_progress(lines: Iterable[str]) -> ProgressReader:
    """A ProgressReader fed with every line."""
    reader = ProgressReader()
    for line in lines:
        reader.feed(line)
    return reader


def step_result(vertex: Vertex) -> StepResult | None:
    """The Dockerfile step a vertex stands for, or None for an internal vertex."""
    match = STEP_NAME.match(vertex.name)
    if match is None:
        return None
    return StepResult(
        stage=match["stage"] or "",
        index=int(match["index"]),
        total=int(match["total"]),
        text=match["text"],
        cached=vertex.cached,
        completed=bool(vertex.completed),
        error=vertex.error,
    )


def _vertex(digest: str, fields: dict) -> Vertex:
    return Vertex(
        digest=digest,
        name=str(fields.get("name", "")),
        cached=bool(fields.get("cached", False)),
        started=str(fields.get("started") or ""),
        completed=str(fields.get("completed") or ""),
        error=str(fields.get("error") or ""),
    )


@dataclass(frozen=True)
class DockerfileStep:
    """A step as BuildKit numbers it: its stage as the progress names it ("" for a single stage)."""

    stage: str
    line: int
    keyword: str
    number: int = 0  # its number in the stage as the report predicts BuildKit's; 0: none predicted


def match_lines(results: Sequence[StepResult], steps: Sequence[DockerfileStep]) -> dict[int, StepResult]:
    """Each reported step at the line of its instruction.

    Where the report numbers a stage's steps as BuildKit did (each result has
    a step of its number and keyword), a result is that step. Otherwise (a
    report made without the build's named contexts numbers one FROM more) it
    is looked for by keyword from its position on, then before it, in the
    stage's order: BuildKit sends the last steps first, and a later step
    matched first would take the place of an earlier one. A WORKDIR that
    makes no folder is not reported and takes no position. A step BuildKit
    merged with an equal one of another stage is reported once; a step
    reported again (another platform's) adds nothing.
    """
    by_stage: dict[str, list[DockerfileStep]] = {}
    for step in steps:
        by_stage.setdefault(step.stage, []).append(step)
    results_by_stage: dict[str, list[StepResult]] = {}
    for result in results:
        results_by_stage.setdefault(result.stage, []).append(result)
    matched: dict[int, StepResult] = {}
    for stage, stage_results in results_by_stage.items():
        candidates = by_stage.get(stage, [])
        numbered = {(step.number, step.keyword): step.line for step in candidates if step.number}
        if all((result.index, result.keyword) in numbered for result in stage_results):
            for result in stage_results:
                matched.setdefault(numbered[result.index, result.keyword], result)
            continue
        for result in sorted(stage_results, key=lambda r: r.index):
            position = result.index - 1
            for step in candidates[position:] + candidates[:position][::-1]:
                if step.keyword == result.keyword and step.line not in matched:
                    matched[step.line] = result
                    break
    return matched


class ReportedStep(Protocol):
    """A step of a report (the API's message or the daemon's own), as far as matching needs it."""

    @property
    def stage(self) -> str: ...
    @property
    def stage_index(self) -> int: ...
    @property
    def line(self) -> int: ...
    @property
    def instruction(self) -> str: ...
    @property
    def progress(self) -> str: ...


def observed_steps(results: Sequence[StepResult], steps: Sequence[ReportedStep]) -> list[tuple[int, StepResult]]:
    """What BuildKit did for each Dockerfile step of a report, by the line of the step, in line order."""
    return sorted(match_lines(results, dockerfile_steps(steps, single_stage=all(not r.stage for r in results))).items())


def dockerfile_steps(steps: Sequence[ReportedStep], single_stage: bool) -> list[DockerfileStep]:
    """A report's steps named as BuildKit's progress names them: stage name or `stage-N`."""

    def label(step: ReportedStep) -> str:
        if single_stage:
            return ""
        return f"stage-{step.stage_index}" if step.stage == str(step.stage_index) else step.stage.lower()

    def number(step: ReportedStep) -> int:
        """The number in the report's label of the step (BuildKit's own form: "[build 2/5]"), else 0."""
        match = STEP_NAME.match(f"{step.progress} ")
        return int(match["index"]) if match else 0

    return [
        DockerfileStep(
            label(step), step.line, step.instruction.split(None, 1)[0].upper() if step.instruction else "", number(step)
        )
        for step in steps
    ]
