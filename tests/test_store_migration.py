"""State files written by earlier versions open with everything recorded kept."""

from __future__ import annotations

import sqlite3

from ctxwatchd.cache.store import SCHEMA_VERSION, BuildStepRow, ContextRow, Store
from ctxwatchd.context.records import SavedRecord
from ctxwatchd.context.view import SavedFolder

# The content-hash cache as schema version 2 kept it: one row per file
# (and no folder digests, every context watched, no context settings or options,
# no prediction checks or buildx records, no expanded instructions).
V2_FILE_RECORDS = """
ALTER TABLE build_steps DROP COLUMN expanded;
ALTER TABLE contexts DROP COLUMN watched;
ALTER TABLE contexts DROP COLUMN settings;
ALTER TABLE contexts DROP COLUMN options;
DROP TABLE prediction_checks;
DROP TABLE builder_refs;
DROP TABLE view_digests;
DROP TABLE folder_records;
CREATE TABLE file_records (
    root TEXT NOT NULL, rel TEXT NOT NULL, stat BLOB NOT NULL, blob BLOB NOT NULL,
    PRIMARY KEY (root, rel)
) WITHOUT ROWID;
INSERT INTO file_records VALUES ('/repo', 'src/a.txt', x'00', x'46');
PRAGMA user_version=2;
"""


def _write_v2_state(path) -> None:
    store = Store(path)
    store.save_context(ContextRow("app", "/repo", "Dockerfile", {"A": "1"}, ""))
    step = BuildStepRow(0, "", 0, 2, "COPY . /app", b"k" * 32, b"s" * 32, {}, [[".", "", "00" * 32]], {}, "COPY . /app")
    store.record_build("app", {}, [step], [(b"d" * 32, b"D")])
    store.close()
    db = sqlite3.connect(path)
    db.executescript(V2_FILE_RECORDS)
    db.close()


def test_version_2_state_keeps_contexts_and_builds_and_drops_the_old_hash_cache(tmp_path):
    path = tmp_path / "state.sqlite3"
    _write_v2_state(path)

    store = Store(path)
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 10
        assert [c.name for c in store.contexts()] == ["app"]
        assert store.build_count("app") == 1
        # Steps recorded before the expanded instruction was kept (version 8) have none.
        assert [s.expanded for s in store.last_build("app").steps] == [""]
        assert store.node_blob(b"d" * 32) == b"D"
        # The old per-file rows are gone (files are read once more), the layout by folder (version 9) works.
        assert not store.holds_records("/repo")
        assert store.saved_records("/repo", "src") == []
        store.save_records(
            "/repo", [("src", [SavedRecord("a.txt", b"key", b"node")]), ("", [SavedRecord("top.txt", b"k2", b"n2")])]
        )
        assert store.holds_records("/repo")
        assert store.saved_records("/repo", "src") == [SavedRecord("a.txt", b"key", b"node")]
        assert store.saved_records("/repo", "") == [SavedRecord("top.txt", b"k2", b"n2")]
        # Folder digests (version 4; one row per view from version 10) start empty and can be saved.
        assert store.saved_folder_digests("/repo", b"v" * 32) == {}
        odd = b"caf\xe9".decode("utf-8", "surrogateescape")  # a name that is not UTF-8
        views = {
            b"v" * 32: [("src", SavedFolder(b"sig", b"digest")), ("", SavedFolder(b"s" * 32, b"d" * 32))],
            b"w" * 32: [(f"src/{odd}", SavedFolder(b"s2", b"d2"))],
        }
        store.save_folder_digests("/repo", views)
        assert store.saved_folder_digests("/repo", b"v" * 32) == dict(views[b"v" * 32])
        assert store.saved_folder_digests("/repo", b"w" * 32) == {f"src/{odd}": SavedFolder(b"s2", b"d2")}
        store.save_folder_digests("/repo", {b"w" * 32: []})  # replaces every view of the root
        assert store.saved_folder_digests("/repo", b"v" * 32) == store.saved_folder_digests("/repo", b"w" * 32) == {}
        # Contexts are watched (version 5); one unwatched keeps its builds and comes back when saved again.
        assert store.unwatch_context("app") == 1
        assert store.contexts() == [] and store.build_count("app") == 1
        store.save_context(ContextRow("app", "/repo", "/repo/Dockerfile", {}, ""))
        assert [c.name for c in store.contexts()] == ["app"] and store.build_count("app") == 1
        [app] = store.contexts()
        assert (app.build_contexts, app.labels, app.no_cache) == ({}, {}, False)
        # Context settings (version 6) are kept.
        store.save_context(ContextRow("app", "/repo", "Dockerfile", {}, "", build_contexts={"x": "/x"}, no_cache=True))
        [app] = store.contexts()
        assert (app.build_contexts, app.no_cache) == ({"x": "/x"}, True)
    finally:
        store.close()


def test_saved_records_keep_names_that_are_not_utf8(tmp_path):
    store = Store(tmp_path / "state.sqlite3")
    try:
        folder, name = "caf\udcc3", "n\udcff.txt"  # as os.fsdecode gives undecodable bytes
        store.save_records("/repo", [(folder, [SavedRecord(name, b"key", b"node")])])
        assert store.saved_records("/repo", folder) == [SavedRecord(name, b"key", b"node")]
    finally:
        store.close()


def test_adding_records_keeps_the_saved_ones(tmp_path):
    store = Store(tmp_path / "state.sqlite3")
    try:
        store.save_records("/repo", [("", [SavedRecord("a", b"k1", b"n1"), SavedRecord("b", b"k2", b"n2")])])
        # Added to a folder's saved records: a name saved already takes the new record.
        store.save_records(
            "/repo", [("", [SavedRecord("b", b"k3", b"n3"), SavedRecord("c", b"k4", b"n4")])], replace=False
        )
        assert sorted(store.saved_records("/repo", "")) == [
            SavedRecord("a", b"k1", b"n1"),
            SavedRecord("b", b"k3", b"n3"),
            SavedRecord("c", b"k4", b"n4"),
        ]
        store.save_records("/repo", [("", [SavedRecord("d", b"k5", b"n5")])])
        assert store.saved_records("/repo", "") == [SavedRecord("d", b"k5", b"n5")]
    finally:
        store.close()


def test_saving_records_keeps_the_folders_asked_to_be_kept(tmp_path):
    """A run keeps the saved records of folders it never needed (they are
    still good) and replaces every other folder's."""
    store = Store(tmp_path / "state.sqlite3")
    try:
        store.save_records(
            "/repo",
            [
                ("a", [SavedRecord("x", b"k1", b"n1")]),
                ("b", [SavedRecord("y", b"k2", b"n2")]),
                ("c", [SavedRecord("z", b"k3", b"n3")]),
            ],
        )
        store.save_records("/repo", [("a", [SavedRecord("x", b"k4", b"n4")])], keep=["b"])
        assert store.saved_records("/repo", "a") == [SavedRecord("x", b"k4", b"n4")]
        assert store.saved_records("/repo", "b") == [SavedRecord("y", b"k2", b"n2")]
        assert store.saved_records("/repo", "c") == []
    finally:
        store.close()
