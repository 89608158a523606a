"""What the engine answers, as domain types: server/wire.py turns them into
the API's messages. Steps are cache/report.py's StepReport."""

from __future__ import annotations

from dataclasses import dataclass, field

from .cache.report import Cause, StepReport, StepStatus
from .cache.store import ContextRow
from .dockerfile.parser import Span


@dataclass(eq=False)
class Report:
    """The answer for one context: the fate of every step if it were built now.
    Not changed once answered (the engine gives it again while nothing changed)."""

    context: ContextRow
    steps: list[StepReport] = field(default_factory=list)  # in build order; empty when error is set
    error: str = ""  # the whole context failed (no Dockerfile, parse error)
    error_line: int = 0  # 0: the error has no line
    error_range: Span | None = None  # where the error is, when it has a place
    all_cached: bool = False
    builds_recorded: int = 0
    last_build_unix_ms: int = 0  # 0: never built
    notes: list[str] = field(default_factory=list)
    context_digest: str = ""  # empty when unknown
    assumed_remote: list[str] = field(default_factory=list)
    unread_build_unix_ms: int = 0  # a build ran that could not be read; 0: none


@dataclass(frozen=True)
class Reader:
    """One step that reads a path."""

    context: ContextRow
    step: StepReport
    source: str  # the step's source that selects the path
    steps_after: int  # later steps that re-run when this one does


@dataclass
class Readers:
    """The steps that read a path, and the contexts that could not say (no plan)."""

    readers: list[Reader] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # "name: error"


@dataclass(frozen=True)
class Disagreement:
    """One step where the prediction and BuildKit differed."""

    line: int
    instruction: str
    predicted: StepStatus
    cause: Cause
    explanation: str
    cached: bool  # what BuildKit did
    error: str


@dataclass
class PredictionCheck:
    """A prediction compared with what BuildKit did, step by step."""

    context: str
    dockerfile: str
    command: str
    unix_ms: int
    steps: int = 0
    agreed: int = 0
    unknown: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)


@dataclass(frozen=True)
class BuildRecorded:
    """What recording a build did."""

    report: Report  # right after recording: the built steps are cached
    build_id: int = 0  # 0: nothing was recorded
    steps_recorded: int = 0
    failed: str = ""  # which step failed and why; empty when the build succeeded
    check: PredictionCheck | None = None


@dataclass(frozen=True)
class PredictionStats:
    """How the predictions of watched builds compared with BuildKit."""

    checked: int
    steps: int
    agreed: int
    unknown: int
    recent_disagreements: list[PredictionCheck]
    builds_learned: int


@dataclass(frozen=True)
class RootStatus:
    """One watched folder tree."""

    path: str
    files: int  # 0 while too busy to count
    directories: int
    healthy: bool
    message: str
    files_hashed: int
    bytes_hashed: int
