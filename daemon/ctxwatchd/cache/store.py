"""Durable state in SQLite: registered contexts, recorded builds, Merkle nodes.

Every write is one transaction in WAL mode with synchronous=FULL, so a build
that MarkBuilt acknowledged survives a crash. Recorded builds keep the Merkle
nodes their inputs referenced, content-addressed and shared between builds,
so a later report can say exactly which files changed since.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..context.nodes import decode
from ..context.records import SavedRecord
from ..context.view import SavedFolder
from ..errors import FailedPrecondition
from ..private import private_file

log = logging.getLogger(__name__)

SCHEMA_VERSION = 10
DEFAULT_MAX_BUILDS = 100  # recorded builds kept per context (ctxwatchd --max-builds)
PAGE_CACHE_KIB = 512
OPEN_WAIT_S = 30.0  # how long a start waits for another process to release the state file
OPEN_RETRY_S = 0.25
APPLICATION_ID = 0x63747877  # "ctxw": tells our file from someone else's

_SCHEMA = """
CREATE TABLE contexts (
    name TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    dockerfile TEXT NOT NULL,
    build_args TEXT NOT NULL,
    target TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    context TEXT NOT NULL REFERENCES contexts(name) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    options TEXT NOT NULL
);
CREATE INDEX builds_by_context ON builds(context, id);
CREATE TABLE build_steps (
    build_id INTEGER NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    stage TEXT NOT NULL,
    stage_ordinal INTEGER NOT NULL,
    line INTEGER NOT NULL,
    instruction TEXT NOT NULL,
    key BLOB NOT NULL,
    shape BLOB NOT NULL,
    spec TEXT NOT NULL,
    sources TEXT NOT NULL,
    step_values TEXT NOT NULL,
    PRIMARY KEY (build_id, ordinal)
);
CREATE TABLE nodes (
    digest BLOB PRIMARY KEY,
    blob BLOB NOT NULL
) WITHOUT ROWID;
"""

# Each migration takes the schema from version N to N + 1.
_MIGRATIONS = {
    1: """
CREATE TABLE file_records (
    root TEXT NOT NULL,
    rel TEXT NOT NULL,
    stat BLOB NOT NULL,
    blob BLOB NOT NULL,
    PRIMARY KEY (root, rel)
) WITHOUT ROWID;
""",
    # The content-hash cache, per folder: a folder's records are read when a
    # file digest there is first needed (no table of every file held in
    # memory), with the node digest, so a restart does not hash them again.
    # Records in the old layout are dropped: files are read once more after
    # the upgrade.
    2: """
DROP TABLE file_records;
CREATE TABLE file_records (
    root TEXT NOT NULL,
    folder BLOB NOT NULL,  -- file names as the file system has them (not always UTF-8)
    name BLOB NOT NULL,
    stat BLOB NOT NULL,
    hashed BLOB NOT NULL,
    PRIMARY KEY (root, folder, name)
) WITHOUT ROWID;
""",
    # Folder digests per view with the listing signature each rests on: a
    # restart keeps the digest of every folder whose listing is unchanged.
    3: """
CREATE TABLE folder_digests (
    root TEXT NOT NULL,
    view BLOB NOT NULL,  -- which files the view sends (caches.ViewKey.persisted_id)
    folder BLOB NOT NULL,
    signature BLOB NOT NULL,
    digest BLOB NOT NULL,
    PRIMARY KEY (root, view, folder)
) WITHOUT ROWID;
""",
    # `ctxwatch rm` without --forget keeps a context's recorded builds: its row stays, unwatched.
    4: "ALTER TABLE contexts ADD COLUMN watched INTEGER NOT NULL DEFAULT 1;",
    # Named contexts, no-cache settings, client labels and the watch root of a context, as one JSON object.
    5: "ALTER TABLE contexts ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';",
    # Per-context options given on `add` (strict_remote); what real builds
    # showed of the predictions; the buildx build records already read.
    6: """
ALTER TABLE contexts ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
CREATE TABLE prediction_checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    context TEXT NOT NULL,  -- kept after the context goes: it tells how far to trust the answers
    created_ms INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    agreed INTEGER NOT NULL,
    unknown INTEGER NOT NULL,
    detail TEXT NOT NULL    -- dockerfile, command, disagreements (JSON)
);
CREATE TABLE builder_refs (
    ref TEXT PRIMARY KEY,   -- buildx's record of one build: <builder>/<node>/<ref>
    context TEXT NOT NULL,
    seen_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL   -- learned | unread
);
""",
    # The instruction as BuildKit printed it (expanded), to show what it was; '' in builds recorded before.
    7: """
ALTER TABLE build_steps ADD COLUMN expanded TEXT NOT NULL DEFAULT '';
""",
    # The content-hash cache, one row per folder (its records packed, see
    # _pack_records), without the node digests nobody read: a row per file
    # made saving a million records take 15 s. A rowid table, as rows of a
    # kilobyte or more are stored poorly WITHOUT ROWID. Records in the old
    # layout are dropped: files are read once more after the upgrade.
    8: """
DROP TABLE file_records;
CREATE TABLE folder_records (
    root TEXT NOT NULL,
    folder BLOB NOT NULL,   -- as the file system has it (not always UTF-8)
    records BLOB NOT NULL,  -- each file's name, stat key and node bytes
    PRIMARY KEY (root, folder)
);
""",
    # The folder digests, one row per view (its folders packed, see
    # _pack_folders): a row per folder made saving them take 0.6 s of a
    # million-file stop. Digests in the old layout are dropped: the first
    # restart after the upgrade computes them again from the saved records.
    9: """
DROP TABLE folder_digests;
CREATE TABLE view_digests (
    root TEXT NOT NULL,
    view BLOB NOT NULL,     -- which files the view sends (caches.ViewKey.persisted_id)
    folders BLOB NOT NULL,  -- each folder's path, listing signature and digest
    PRIMARY KEY (root, view)
);
""",
}


@dataclass
class ContextRow:
    name: str
    path: str
    dockerfile: str
    build_args: dict[str, str]
    target: str
    created_ms: int = 0
    build_contexts: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    no_cache_filter: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    watch_root: str = ""  # the folder it is watched from, when above `path`

    options: dict = field(default_factory=dict)  # given on `add`: strict_remote

    @property
    def watched_from(self) -> str:
        return self.watch_root or self.path

    def settings(self) -> str:
        """What the `settings` column holds."""
        return json.dumps(
            {
                "build_contexts": self.build_contexts,
                "no_cache": self.no_cache,
                "no_cache_filter": self.no_cache_filter,
                "labels": self.labels,
                "watch_root": self.watch_root,
            },
            sort_keys=True,
        )


@dataclass
class BuildStepRow:
    ordinal: int
    stage: str
    stage_ordinal: int  # position of the step inside its stage
    line: int
    instruction: str
    key: bytes
    shape: bytes
    spec: dict
    sources: list[list[str]]  # [source, resolved path, hex digest of what it selected]
    values: dict[str, str]  # ARG/ENV values the step saw (for explanations)
    expanded: str = ""  # the instruction as BuildKit printed it, expanded; "" when recorded before it was kept


@dataclass
class BuildRow:
    id: int
    created_ms: int
    options: dict
    steps: list[BuildStepRow] = field(default_factory=list)


@dataclass
class PredictionCheckRow:
    """How one prediction compared with a real build."""

    context: str
    created_ms: int
    steps: int
    agreed: int
    unknown: int
    detail: dict  # dockerfile, command, disagreements


class PredictionTotals(NamedTuple):
    checked: int  # builds whose prediction was checked
    steps: int
    agreed: int
    unknown: int


class Store:
    """The daemon's SQLite file. Safe to use from several threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        # Re-entrant: record_build consumes a generator of nodes that itself
        # asks has_node, inside the same transaction.
        self.lock = threading.RLock()
        self.broken = ""  # why builds are no longer recorded (the file went bad while running)
        self.db = self._open_or_replace(path)
        for suffix in ("", "-wal", "-shm"):
            private_file(Path(str(path) + suffix), "state file")

    # -- opening ------------------------------------------------------------------
    def _open_or_replace(self, path: Path) -> sqlite3.Connection:
        """Open the state file. Only a file SQLite read and found corrupt, or
        that is not ours, is moved aside; one that cannot be used now (locked,
        an I/O error, a full disk, a read-only folder) is kept and the start
        refused, after waiting a while for a lock to go."""
        if path.exists() and path.stat().st_size == 0:
            log.warning("state file %s is empty (0 bytes): starting with no contexts and no builds", path)
        deadline = time.monotonic() + OPEN_WAIT_S
        waiting = False
        while True:
            try:
                return self._open(path)
            except StateFileError as e:
                problem = str(e)
            except sqlite3.DatabaseError as e:
                kind = _error_kind(e)
                if kind == "busy" and time.monotonic() < deadline:
                    if not waiting:
                        log.warning("state file %s is locked by another process; waiting up to %g s", path, OPEN_WAIT_S)
                        waiting = True
                    time.sleep(OPEN_RETRY_S)
                    continue
                if kind != "corrupt":
                    raise StateUnavailable(_what_to_do(path, kind, e)) from None
                problem = str(e)
            break
        aside = _unused_name(path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"))
        log.error("state file %s cannot be used (%s); starting fresh", path, problem)
        for suffix in ("", "-wal", "-shm"):
            side, moved = Path(str(path) + suffix), Path(str(aside) + suffix)
            if side.exists():
                side.rename(moved)
                log.error("moved %s to %s", side, moved)
        return self._open(path)

    def _open(self, path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA foreign_keys=ON")
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise StateFileError("integrity check failed")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # A small page cache: the daemon's memory matters more than a few
            # page reads, which the kernel's page cache serves anyway.
            db.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if app_id == 0 and version == 0:
                if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise StateFileError("not a ctxwatch state file")
                db.executescript(
                    f"BEGIN; {_SCHEMA} PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version=1; COMMIT;"
                )
                version = 1
            elif app_id != APPLICATION_ID:
                raise StateFileError("not a ctxwatch state file")
            elif version > SCHEMA_VERSION:
                raise StateUnavailable(
                    f"state file {path} was written by a newer ctxwatchd (schema {version}, this one knows "
                    f"{SCHEMA_VERSION}); upgrade ctxwatch or pass another --state-dir (the file is kept)"
                )
            for step in range(version, SCHEMA_VERSION):
                db.executescript(f"BEGIN; {_MIGRATIONS[step]} PRAGMA user_version={step + 1}; COMMIT;")
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # -- contexts -------------------------------------------------------------------
    def contexts(self) -> list[ContextRow]:
        with self.lock:
            rows = self.db.execute(
                "SELECT name, path, dockerfile, build_args, target, created_ms, settings, options FROM contexts "
                "WHERE watched=1 ORDER BY name"
            ).fetchall()
        return [
            ContextRow(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], **json.loads(r[6]), options=json.loads(r[7]))
            for r in rows
        ]

    def save_context(self, row: ContextRow) -> None:
        with self.lock, self.db:
            self.db.execute(
                "INSERT INTO contexts(name, path, dockerfile, build_args, target, created_ms, settings, options) "
                "VALUES (?,?,?,?,?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET path=excluded.path, dockerfile=excluded.dockerfile, "
                "build_args=excluded.build_args, target=excluded.target, settings=excluded.settings, watched=1, "
                "options=excluded.options",
                (
                    row.name,
                    row.path,
                    row.dockerfile,
                    json.dumps(row.build_args, sort_keys=True),
                    row.target,
                    row.created_ms or int(time.time() * 1000),
                    row.settings(),
                    json.dumps(row.options, sort_keys=True),
                ),
            )

    def delete_context(self, name: str) -> None:
        """Forget the context and its recorded builds."""
        with self.lock, self.db:
            self.db.execute("DELETE FROM contexts WHERE name=?", (name,))

    def unwatch_context(self, name: str) -> int:
        """Stop listing the context but keep its recorded builds (registering the name again
        brings them back); returns how many builds are kept."""
        with self.lock, self.db:
            self.db.execute("UPDATE contexts SET watched=0 WHERE name=?", (name,))
            return self.db.execute("SELECT COUNT(*) FROM builds WHERE context=?", (name,)).fetchone()[0]

    # -- builds ---------------------------------------------------------------------
    def record_build(
        self, context: str, options: dict, steps: list[BuildStepRow], nodes: Iterable[tuple[bytes, bytes]]
    ) -> int:
        """Store one build and the nodes it references, atomically.

        Raises FailedPrecondition when the file cannot take it: never an
        acknowledgement of a build written into a damaged file.
        """
        if self.broken:
            raise FailedPrecondition(self.broken)
        try:
            return self._record_build(context, options, steps, nodes)
        except sqlite3.DatabaseError as e:
            kind = _error_kind(e)
            if kind == "corrupt":
                self.broken = (
                    f"the state file {self.path} is damaged ({e}): builds are no longer recorded; "
                    "restart the daemon (it moves the damaged file aside and starts fresh)"
                )
                log.error("%s", self.broken)
                raise FailedPrecondition(self.broken) from None
            if kind == "other":
                raise
            raise FailedPrecondition(f"could not record the build in {self.path}: {e}") from None

    def _record_build(
        self, context: str, options: dict, steps: list[BuildStepRow], nodes: Iterable[tuple[bytes, bytes]]
    ) -> int:
        with self.lock, self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR IGNORE INTO nodes(digest, blob) VALUES (?, ?)", nodes)
            cur = self.db.execute(
                "INSERT INTO builds(context, created_ms, options) VALUES (?,?,?)",
                (context, int(time.time() * 1000), json.dumps(options, sort_keys=True)),
            )
            build_id = cur.lastrowid
            assert build_id is not None  # set by every successful INSERT
            self.db.executemany(
                "INSERT INTO build_steps(build_id, ordinal, stage, stage_ordinal, line, instruction, key, shape, "
                "spec, sources, step_values, expanded) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        build_id,
                        s.ordinal,
                        _text(s.stage),
                        s.stage_ordinal,
                        s.line,
                        _text(s.instruction),
                        s.key,
                        s.shape,
                        json.dumps(s.spec, sort_keys=True),
                        json.dumps(s.sources),
                        json.dumps(s.values, sort_keys=True),
                        _text(s.expanded),
                    )
                    for s in steps
                ],
            )
        return build_id

    def prune(self, context: str, keep: int, before_ms: int | None = None, dry_run: bool = False) -> int:
        """Forget all but the newest `keep` builds of a context, only those recorded before
        `before_ms` when given; returns how many went (or would go, with `dry_run`)."""
        where = (
            "WHERE context=? AND id NOT IN (SELECT id FROM builds WHERE context=? ORDER BY id DESC LIMIT ?)"
            " AND created_ms < ?"
        )
        values = (context, context, keep, before_ms if before_ms is not None else 1 << 62)
        with self.lock, self.db:
            if dry_run:
                return self.db.execute(f"SELECT COUNT(*) FROM builds {where}", values).fetchone()[0]
            self.db.execute("BEGIN IMMEDIATE")
            return self.db.execute(f"DELETE FROM builds {where}", values).rowcount

    def collect_garbage(self) -> int:
        """Delete the nodes no kept build references (mark from every build's
        sources, sweep the rest); returns how many went."""
        with self.lock:
            rows = self.db.execute("SELECT sources FROM build_steps").fetchall()
        todo = [bytes.fromhex(digest) for (sources,) in rows for _, _, digest in json.loads(sources)]
        reachable: set[bytes] = set()
        while todo:
            digest = todo.pop()
            if digest in reachable:
                continue
            reachable.add(digest)
            blob = self.node_blob(digest)
            if blob is not None:
                todo.extend(child.digest for child in decode(blob).children)
        with self.lock, self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS reachable(digest BLOB PRIMARY KEY) WITHOUT ROWID")
            self.db.execute("DELETE FROM reachable")
            self.db.executemany("INSERT INTO reachable VALUES (?)", ((d,) for d in reachable))
            cur = self.db.execute("DELETE FROM nodes WHERE digest NOT IN (SELECT digest FROM reachable)")
            self.db.execute("DELETE FROM reachable")
            return cur.rowcount

    def build_count(self, context: str) -> int:
        with self.lock:
            return self.db.execute("SELECT count(*) FROM builds WHERE context=?", (context,)).fetchone()[0]

    def last_build(self, context: str) -> BuildRow | None:
        with self.lock:
            row = self.db.execute(
                "SELECT id, created_ms, options FROM builds WHERE context=? ORDER BY id DESC LIMIT 1", (context,)
            ).fetchone()
            if row is None:
                return None
            steps = self.db.execute(
                "SELECT ordinal, stage, stage_ordinal, line, instruction, key, shape, spec, sources, step_values, "
                "expanded FROM build_steps "
                "WHERE build_id=? ORDER BY ordinal",
                (row[0],),
            ).fetchall()
        return BuildRow(
            row[0],
            row[1],
            json.loads(row[2]),
            [
                BuildStepRow(
                    ordinal,
                    stage,
                    stage_ordinal,
                    line,
                    text,
                    key,
                    shape,
                    json.loads(spec),
                    json.loads(src),
                    json.loads(vals),
                    expanded,
                )
                for ordinal, stage, stage_ordinal, line, text, key, shape, spec, src, vals, expanded in steps
            ],
        )

    # -- what real builds showed -------------------------------------------------------
    def save_prediction_check(self, check: PredictionCheckRow) -> None:
        with self.lock, self.db:
            self.db.execute(
                "INSERT INTO prediction_checks(context, created_ms, steps, agreed, unknown, detail) "
                "VALUES (?,?,?,?,?,?)",
                (check.context, check.created_ms, check.steps, check.agreed, check.unknown, json.dumps(check.detail)),
            )

    def prediction_totals(self) -> PredictionTotals:
        """Over every check kept."""
        with self.lock:
            row = self.db.execute(
                "SELECT count(*), total(steps), total(agreed), total(unknown) FROM prediction_checks"
            ).fetchone()
        return PredictionTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def recent_disagreements(self, limit: int) -> list[PredictionCheckRow]:
        """The newest checks where the prediction and BuildKit disagreed on a step."""
        with self.lock:
            rows = self.db.execute(
                "SELECT context, created_ms, steps, agreed, unknown, detail FROM prediction_checks "
                "WHERE agreed + unknown < steps ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [PredictionCheckRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def builder_ref_seen(self, ref: str) -> bool:
        with self.lock:
            return self.db.execute("SELECT 1 FROM builder_refs WHERE ref=?", (ref,)).fetchone() is not None

    def save_builder_ref(self, ref: str, context: str, seen_ms: int, outcome: str) -> None:
        with self.lock, self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO builder_refs(ref, context, seen_ms, outcome) VALUES (?,?,?,?)",
                (ref, context, seen_ms, outcome),
            )

    def last_unread_build(self, context: str) -> int:
        """When the newest build of the context that could not be read ran (ms), or 0."""
        with self.lock:
            row = self.db.execute(
                "SELECT max(seen_ms) FROM builder_refs WHERE context=? AND outcome='unread'", (context,)
            ).fetchone()
        return int(row[0] or 0)

    def builds_learned(self) -> int:
        with self.lock:
            return self.db.execute("SELECT count(*) FROM builder_refs WHERE outcome='learned'").fetchone()[0]

    def recorded_keys(self, context: str) -> tuple[set[bytes], dict[bytes, bytes]]:
        """Every step key of every kept build, and shape -> newest exact key."""
        with self.lock:
            rows = self.db.execute(
                "SELECT s.key, s.shape FROM build_steps s JOIN builds b ON b.id = s.build_id "
                "WHERE b.context=? ORDER BY b.id",
                (context,),
            ).fetchall()
        return {r[0] for r in rows}, {r[1]: r[0] for r in rows}

    def holds_records(self, root: str) -> bool:
        """Whether any file record is saved for the watched root (none: a cold index asks no folder)."""
        with self.lock:
            return self.db.execute("SELECT 1 FROM folder_records WHERE root=? LIMIT 1", (root,)).fetchone() is not None

    def saved_records(self, root: str, folder: str) -> list[SavedRecord]:
        """The file records saved for one folder of a watched root, by name in the folder."""
        return self._saved_in_folder(root, os.fsencode(folder))

    def _saved_in_folder(self, root: str, folder: bytes) -> list[SavedRecord]:
        with self.lock:
            query = "SELECT records FROM folder_records WHERE root=? AND folder=?"
            row = self.db.execute(query, (root, folder)).fetchone()
        return _unpack_records(row[0]) if row else []

    def save_records(
        self,
        root: str,
        folders: Iterable[tuple[str, Sequence[SavedRecord]]],
        replace: bool = True,
        keep: Iterable[str] = (),
    ) -> None:
        """Save the records of a root (its content-hash cache), folder by
        folder, replacing the saved ones unless `replace` is False (then a
        folder's records are added to those saved for it); the saved records
        of the folders in `keep` stay as they are."""
        with self.lock, self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if replace:
                self.db.execute("CREATE TEMP TABLE IF NOT EXISTS kept_folders (folder BLOB PRIMARY KEY)")
                self.db.execute("DELETE FROM kept_folders")
                self.db.executemany("INSERT INTO kept_folders VALUES (?)", ((os.fsencode(f),) for f in keep))
                self.db.execute(
                    "DELETE FROM folder_records WHERE root=? AND folder NOT IN (SELECT folder FROM kept_folders)",
                    (root,),
                )

            def rows() -> Iterator[tuple[str, bytes, bytes]]:
                for folder, records in folders:
                    raw = os.fsencode(folder)
                    yield root, raw, _pack_records(records if replace else self._added_to(root, raw, records))

            self.db.executemany("INSERT OR REPLACE INTO folder_records(root, folder, records) VALUES (?,?,?)", rows())

    def _added_to(self, root: str, folder: bytes, records: Sequence[SavedRecord]) -> list[SavedRecord]:
        """`records` and those saved for the folder under other names."""
        names = {record.name for record in records}
        return [*records, *(saved for saved in self._saved_in_folder(root, folder) if saved.name not in names)]

    def saved_folder_digests(self, root: str, view: bytes) -> dict[str, SavedFolder]:
        """The folder digests saved for one view of a root, by folder."""
        with self.lock:
            row = self.db.execute("SELECT folders FROM view_digests WHERE root=? AND view=?", (root, view)).fetchone()
        return _unpack_folders(row[0]) if row else {}

    def save_folder_digests(self, root: str, views: dict[bytes, Iterable[tuple[str, SavedFolder]]]) -> None:
        """Replace the folder digests saved for a root with those of its current views."""
        with self.lock, self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM view_digests WHERE root=?", (root,))
            self.db.executemany(
                "INSERT INTO view_digests(root, view, folders) VALUES (?,?,?)",
                ((root, view, _pack_folders(folders)) for view, folders in views.items()),
            )

    def data_version(self) -> int:
        """SQLite's data version: it changes whenever another connection (e.g. `ctxwatch --no-daemon built`) commits."""
        with self.lock:
            return self.db.execute("PRAGMA data_version").fetchone()[0]

    # -- nodes ------------------------------------------------------------------------
    def node_blob(self, digest: bytes) -> bytes | None:
        with self.lock:
            row = self.db.execute("SELECT blob FROM nodes WHERE digest=?", (digest,)).fetchone()
        return row[0] if row else None

    def has_node(self, digest: bytes) -> bool:
        with self.lock:
            return self.db.execute("SELECT 1 FROM nodes WHERE digest=?", (digest,)).fetchone() is not None


# A folder's row of the content-hash cache holds, for each file, the lengths of
# its name, stat key and node bytes, then those three (see _packed); a view's
# row of folder digests, for each folder, the lengths of its path, listing
# signature and digest, then those three.
_RECORD_HEADER = struct.Struct("<HHI")
_FOLDER_HEADER = struct.Struct("<IBB")


def _pack_records(records: Iterable[SavedRecord]) -> bytes:
    return _packed(((os.fsencode(name), key, node) for name, key, node in records), _RECORD_HEADER)


def _unpack_records(packed: bytes) -> list[SavedRecord]:
    return [SavedRecord(os.fsdecode(name), key, node) for name, key, node in _unpacked(packed, _RECORD_HEADER)]


def _pack_folders(folders: Iterable[tuple[str, SavedFolder]]) -> bytes:
    return _packed(((os.fsencode(rel), signature, digest) for rel, (signature, digest) in folders), _FOLDER_HEADER)


def _unpack_folders(packed: bytes) -> dict[str, SavedFolder]:
    folders = _unpacked(packed, _FOLDER_HEADER)
    return {os.fsdecode(rel): SavedFolder(signature, digest) for rel, signature, digest in folders}


def _packed(rows: Iterable[tuple[bytes, bytes, bytes]], header: struct.Struct) -> bytes:
    """Rows of three byte strings as one blob: each row's three lengths (`header`), then the strings."""
    parts: list[bytes] = []
    for first, second, third in rows:
        parts += (header.pack(len(first), len(second), len(third)), first, second, third)
    return b"".join(parts)


def _unpacked(packed: bytes, header: struct.Struct) -> Iterator[tuple[bytes, bytes, bytes]]:
    pos = 0
    while pos < len(packed):
        first_size, second_size, third_size = header.unpack_from(packed, pos)
        pos += header.size
        second_at, third_at = pos + first_size, pos + first_size + second_size
        end = third_at + third_size
        yield packed[pos:second_at], packed[second_at:third_at], packed[third_at:end]
        pos = end


def _text(value: str) -> str:
    """SQLite text is UTF-8: a byte that is not (a surrogate escape) is kept as \\xNN, as reports show it."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _unused_name(path: Path) -> Path:
    """`path`, or `path-2`, `path-3`...: never replace an earlier moved-aside file."""
    candidate, n = path, 2
    while any(Path(str(candidate) + suffix).exists() for suffix in ("", "-wal", "-shm")):
        candidate, n = path.with_name(f"{path.name}-{n}"), n + 1
    return candidate


class StateFileError(Exception):
    """The state file exists but is not one this daemon can use."""


class StateUnavailable(Exception):
    """The state file cannot be used now (kept as it is); the text says what to do."""


def _error_kind(error: sqlite3.DatabaseError) -> str:
    """What an SQLite error says of the file: "corrupt" (read, and found bad or
    not a database), "busy" (locked by another process), "full", "io",
    "readonly" (cannot write the file or its folder), else "other"."""
    name = getattr(error, "sqlite_errorname", "") or ""
    text = str(error).lower()
    for kind, names, words in (
        ("corrupt", ("SQLITE_CORRUPT", "SQLITE_NOTADB"), ("malformed", "not a database")),
        ("busy", ("SQLITE_BUSY", "SQLITE_LOCKED"), ("locked",)),
        ("full", ("SQLITE_FULL",), ("disk is full",)),
        ("io", ("SQLITE_IOERR",), ("disk i/o error",)),
        (
            "readonly",
            ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH"),
            ("readonly", "unable to open"),
        ),
    ):
        if name.startswith(names) or any(word in text for word in words):
            return kind
    return "other"


def _what_to_do(path: Path, kind: str, error: sqlite3.DatabaseError) -> str:
    advice = {
        "busy": "another process keeps it locked (another ctxwatchd, a sqlite3 shell?); close it and start again",
        "full": "the disk is full; free some space and start again",
        "io": "an I/O error (a full disk gives this too); check the disk and start again",
        "readonly": "the file or its folder cannot be written; fix their permissions or pass another --state-dir",
    }.get(kind, "start again once that is fixed, or pass another --state-dir")
    return f"cannot use the state file {path} ({error}): {advice}; the file is kept as it is"
