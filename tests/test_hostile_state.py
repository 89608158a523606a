"""A transient error never loses the state.

Found before: a state file locked by another process for 5 s at start, a
full disk at start or a read-only folder made the daemon move a healthy
`state.sqlite3` aside as "unreadable" and start empty; a full disk at stop
ended in a traceback and exit code 1. Now only a file SQLite read and found
corrupt, or one that is not ours, is moved aside (tests/test_crash.py); the
rest is waited for, or refused with what to do, the file kept.

A full disk is made with a file-size limit (RLIMIT_FSIZE): writes past it
fail the way they fail on a full disk, for this process only.
"""

from __future__ import annotations

import resource
import sqlite3
import subprocess
import sys
from pathlib import Path

from support.contexts import make_context
from support.daemon import start_daemon, stop_or_kill
from support.hostile import DEADLINE_S

from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatchd.server.main import STATE_FILE

REF = pb.ContextRef(name="kept")
DAEMON = [sys.executable, "-m", "ctxwatchd"]


def daemon_with_state(folder: Path, tmp_path: Path):
    """A daemon whose state holds one context and one recorded build."""
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY a.txt /a.txt\n", {"a.txt": "a\n"})
    daemon = start_daemon(folder)
    daemon.client.register(str(ctx), name="kept")
    assert daemon.client.mark_built(REF).build_id > 0
    return daemon


def assert_state_kept(folder: Path) -> None:
    """A new daemon on the folder has the context and its build; nothing was moved aside."""
    daemon = start_daemon(folder)
    try:
        assert [c.name for c in daemon.client.list()] == ["kept"]
        (report,) = daemon.client.reports([REF])
        assert report.builds_recorded == 1
        assert report.steps[0].status == pb.STEP_STATUS_CACHED  # the recorded COPY a.txt
        assert not list(daemon.state_dir.glob(f"{STATE_FILE}.unreadable-*"))
    finally:
        assert daemon.stop() == 0


LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA locking_mode=EXCLUSIVE")
db.execute("BEGIN EXCLUSIVE")
db.execute("CREATE TABLE IF NOT EXISTS held_by_someone_else (x)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
db.close()
"""


def test_state_locked_by_another_process_at_start_is_waited_for(tmp_path):
    # 8 s: longer than SQLite's own wait for a lock (5 s).
    folder = tmp_path / "d"
    daemon_with_state(folder, tmp_path).stop()
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(folder / "state" / STATE_FILE), "8"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout.readline().strip() == "locked"
        assert_state_kept(folder)
        assert locker.wait(timeout=DEADLINE_S) == 0
    finally:
        stop_or_kill(locker)
    assert "is locked by another process; waiting" in (folder / "ctxwatchd.log").read_text()


def limited_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_at_start_refuses_with_what_to_do_and_keeps_the_file(tmp_path):
    folder = tmp_path / "d"
    daemon_with_state(folder, tmp_path).stop()
    state = folder / "state" / STATE_FILE
    before = state.read_bytes()
    (folder / "state" / f"{STATE_FILE}-shm").unlink(missing_ok=True)  # the next open must write it
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctxwatchd",
            "--socket",
            str(folder / "run" / "d.sock"),
            "--state-dir",
            str(state.parent),
        ],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        stdin=subprocess.DEVNULL,
        preexec_fn=limited_file_size(64),  # the lock file's pid fits, nothing else does
        check=False,
    )
    assert refused.returncode == 1, refused.stderr
    assert f"cannot use the state file {state}" in refused.stderr
    assert "the file is kept as it is" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert state.read_bytes() == before
    assert_state_kept(folder)


def test_full_disk_at_stop_exits_cleanly_keeping_what_was_recorded(tmp_path):
    folder = tmp_path / "d"
    daemon = daemon_with_state(folder, tmp_path)
    try:
        # From now on no file of the daemon's may grow: saving the hash cache at the stop fails.
        state = folder / "state" / STATE_FILE
        sizes = [p.stat().st_size for p in state.parent.iterdir() if p.is_file()]
        resource.prlimit(daemon.process.pid, resource.RLIMIT_FSIZE, (max(sizes), max(sizes)))
        for i in range(300):  # many files: the saved hash cache outgrows every file there is
            (tmp_path / "ctx" / f"f{i:03}.txt").write_text("x" * 100)
        (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\nCOPY a.txt /a.txt\nCOPY . /all/\n")
        (report,) = daemon.client.reports([REF])
        assert report.steps and report.steps[0].status == pb.STEP_STATUS_CACHED
    finally:
        code = daemon.stop()
    log = daemon.log.read_text()
    assert code == 0, log
    assert "Traceback" not in log
    assert "could not save the hash cache" in log
    assert_state_kept(folder)


def test_empty_state_file_is_said_in_the_log(tmp_path):
    state_dir = tmp_path / "d" / "state"
    state_dir.mkdir(parents=True, mode=0o700)
    (state_dir / STATE_FILE).write_bytes(b"")
    daemon = start_daemon(tmp_path / "d")
    try:
        assert daemon.client.list() == []
        assert f"state file {state_dir / STATE_FILE} is empty (0 bytes)" in daemon.log.read_text()
    finally:
        daemon.stop()


def test_newer_schema_is_refused_and_kept(tmp_path):
    folder = tmp_path / "d"
    daemon_with_state(folder, tmp_path).stop()
    state = folder / "state" / STATE_FILE
    with sqlite3.connect(state) as db:
        db.execute("PRAGMA user_version=999")
    db.close()
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctxwatchd",
            "--socket",
            str(folder / "run" / "d.sock"),
            "--state-dir",
            str(state.parent),
        ],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert refused.returncode == 1
    assert "was written by a newer ctxwatchd (schema 999" in refused.stderr
    assert not list(state.parent.glob(f"{STATE_FILE}.unreadable-*"))
