"""Builds run without the wrapper, learned from buildx's records and the builder's history.

buildx writes a small JSON file for every build it runs,
`<buildx config dir>/refs/<builder>/<node>/<ref>` (LocalPath, DockerfilePath),
before the build starts. The daemon watches that folder (inotify: no timer
while no build runs); a new record naming a registered context is followed,
asking every second, until the builder's history
(`buildx history inspect`, the API BuildKit keeps for each build) says the
build ended, then the build is recorded with the options it really had (build
args, target, no-cache) and, for a failed one, only the steps BuildKit
completed (`buildx history logs`). Where the history does not answer (no
buildx, a builder without the history API, a record gone), nothing is
recorded and the context's reports say once that a build ran that ctxwatch
could not read.

Recording happens once the build has ended, from the files as they are then;
a file changed between the build's start and its end is taken as built.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ctxwatch_api.progress import StepResult

from ..cache.store import ContextRow
from ..config import BuilderSettings
from ..folder_events import FolderEvents, InotifyObserver
from ..requests import BuildOptions
from .history import HistoryUnavailable, inspect, step_results

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often a build being followed is asked about
# A build that ended is learned a little later, so a `ctxwatch build` of the
# same build records it first (and says so) instead of both.
SETTLE_S = 3.0
GIVE_UP_S = 6 * 3600.0  # a build that runs longer is not followed to its end
LEARNED, UNREAD, WRAPPED = "learned", "unread", "wrapped"


@dataclass
class Pending:
    """A buildx record naming a registered context, followed until the build ends."""

    ref: str  # <builder>/<node>/<ref>
    context: str
    started_ms: int
    ended_at: float = 0.0  # monotonic time the history said it ended


class BuildxRefs:
    """Follows buildx's records of builds; `learn` records one (context, options, steps of a failed one, failed)."""

    def __init__(
        self,
        settings: BuilderSettings,
        contexts: Callable[[], list[ContextRow]],
        seen: Callable[[str], bool],
        learn: Callable[[str, BuildOptions, list[StepResult], bool], None],
        mark: Callable[[str, str, int, str], None],
    ) -> None:
        self.settings = settings
        self.folder = settings.buildx_dir() / "refs"
        self._contexts = contexts  # every registered context
        self._seen = seen  # the store knows this ref already
        self._learn = learn
        self._mark = mark  # (ref, context, started ms, outcome) into the store
        self._known: set[str] = set()  # refs looked at in this run (matching or not)
        self._pending: dict[str, Pending] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()  # buildx wrote in its records folder, or the daemon stops
        self._events: FolderEvents | None = None
        self._thread: threading.Thread | None = None

    def start(self, observer: InotifyObserver) -> None:
        self._events = FolderEvents(observer, str(self.folder), self._wake.set, recursive=True)
        self._thread = threading.Thread(target=self._run, name="buildx-refs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._events is not None:
            self._events.close()

    def _run(self) -> None:
        assert self._events is not None, "started with an observer"
        while not self._stop.is_set():
            self._events.retarget()  # before the scan: a record written during it wakes the next one
            self._wake.clear()
            try:
                self.scan()
            except Exception:  # a bad record must not end the watching
                log.exception("reading buildx records in %s failed", self.folder)
            # Only a build being followed is asked about again; else nothing happens until buildx writes.
            self._wake.wait(POLL_S if self._pending else None)

    def scan(self) -> None:
        """Look for new records, and at the builds still running."""
        for ref, path in self._records():
            if ref not in self._known:
                self._known.add(ref)
                self._consider(ref, path)
        for pending in list(self._pending.values()):
            self._follow(pending)

    def _records(self) -> list[tuple[str, Path]]:
        records = []
        try:
            builders = [e for e in os.scandir(self.folder) if e.is_dir() and e.name != "__group__"]
        except OSError:
            return []  # no buildx build yet
        for builder in builders:
            for node in _folders(builder.path):
                for entry in _files(node.path):
                    if not entry.name.startswith("."):  # .tmp-* while buildx writes one
                        records.append((f"{builder.name}/{node.name}/{entry.name}", Path(entry.path)))
        return records

    def _consider(self, ref: str, path: Path) -> None:
        try:
            started_ms = int(path.stat().st_mtime * 1000)
            state = json.loads(path.read_text(encoding="utf-8"))
            local = os.path.realpath(state["LocalPath"])
            dockerfile = state.get("DockerfilePath") or os.path.join(local, "Dockerfile")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return  # not a build of a local folder (or not a record buildx wrote)
        for row in self._contexts():
            if row.path == local and os.path.realpath(row.dockerfile) == os.path.realpath(dockerfile):
                # Builds from before the context was registered, or already handled, are not learned.
                if started_ms >= row.created_ms and not self._seen(ref):
                    self._pending[ref] = Pending(ref, row.name, started_ms)
                    log.info("build %s of context %s seen in buildx's records", ref, row.name)
                return

    def _follow(self, pending: Pending) -> None:
        builder, _, short = pending.ref.split("/", 2)
        if self._seen(pending.ref):  # `ctxwatch build` recorded it meanwhile
            del self._pending[pending.ref]
            return
        try:
            record = inspect(self.settings, builder, short)
        except HistoryUnavailable as e:
            log.warning("build %s of %s cannot be read from the builder: %s", pending.ref, pending.context, e)
            self._mark(pending.ref, pending.context, pending.started_ms, UNREAD)
            del self._pending[pending.ref]
            return
        if record.get("Status") == "running":
            if time.time() * 1000 - pending.started_ms > GIVE_UP_S * 1000:
                self._mark(pending.ref, pending.context, pending.started_ms, UNREAD)
                del self._pending[pending.ref]
            return
        if not pending.ended_at:
            pending.ended_at = time.monotonic()
        if time.monotonic() - pending.ended_at < SETTLE_S:
            return
        del self._pending[pending.ref]
        failed = record.get("Status") != "completed"
        try:
            steps = step_results(self.settings, builder, short) if failed else []
        except HistoryUnavailable as e:
            log.warning("steps of failed build %s cannot be read: %s", pending.ref, e)
            self._mark(pending.ref, pending.context, pending.started_ms, UNREAD)
            return
        self._learn(pending.context, options_of(record), steps, failed)
        self._mark(pending.ref, pending.context, pending.started_ms, LEARNED)
        log.info("learned build %s of context %s from the builder's history", pending.ref, pending.context)


def options_of(record: dict) -> BuildOptions:
    """The build options a history record shows (`buildx history inspect --format json`)."""
    config = record.get("Config") or {}
    return BuildOptions(
        build_args={arg["Name"]: arg.get("Value", "") for arg in record.get("BuildArgs") or []},
        target=record.get("Target", ""),
        no_cache=bool(config.get("NoCache")),
        no_cache_filter=tuple(config.get("NoCacheFilter") or []),
    )


def _folders(path: str) -> list[os.DirEntry]:
    try:
        return [e for e in os.scandir(path) if e.is_dir()]
    except OSError:
        return []


def _files(path: str) -> list[os.DirEntry]:
    try:
        return [e for e in os.scandir(path) if e.is_file()]
    except OSError:
        return []
