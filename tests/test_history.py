"""Build history: every kept build counts (change and change back: cached again),
the number kept is bounded, and prune forgets builds like `docker builder prune`."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from support.contexts import make_context
from support.daemon import start_daemon

from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatchd.server.main import STATE_FILE

DOCKERFILE = "FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n"
FILES = {"a.txt": "A\n", "b.txt": "b\n"}


def statuses(client, name: str) -> list[int]:
    (report,) = client.reports([name])
    return [s.status for s in report.steps]


CACHED = [pb.STEP_STATUS_CACHED] * 2


def test_change_and_change_back_is_cached_again(shared_daemon, tmp_path: Path) -> None:
    client = shared_daemon.client
    ctx = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
    client.register(str(ctx), name="aba")
    client.mark_built("aba")
    (ctx / "a.txt").write_text("B\n")
    assert statuses(client, "aba")[0] == pb.STEP_STATUS_INVALIDATED
    client.mark_built("aba")
    (ctx / "a.txt").write_text("A\n")
    assert statuses(client, "aba") == CACHED  # build 1 still holds A
    client.unregister("aba", forget=True)


def test_prune_forgets_old_builds_and_their_nodes(shared_daemon, tmp_path: Path) -> None:
    client = shared_daemon.client
    ctx = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
    client.register(str(ctx), name="prune-me")
    client.mark_built("prune-me")
    (ctx / "a.txt").write_text("B\n")
    client.mark_built("prune-me")
    response = client.prune(["prune-me"], keep=1)
    assert response.builds_removed == 1
    assert response.nodes_removed >= 1  # the node of a.txt = "A\n" is no longer referenced
    (ctx / "a.txt").write_text("A\n")
    (report,) = client.reports(["prune-me"])
    assert report.builds_recorded == 1
    assert report.steps[0].status == pb.STEP_STATUS_INVALIDATED
    assert client.prune(["prune-me"], keep=0).builds_removed == 1
    (report,) = client.reports(["prune-me"])
    assert report.builds_recorded == 0
    assert {s.cause for s in report.steps} == {pb.CAUSE_NEVER_BUILT}
    client.unregister("prune-me", forget=True)


def test_history_is_bounded_oldest_first(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "d", "--max-builds", "2")
    try:
        client = daemon.client
        ctx = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
        client.register(str(ctx), name="bounded")
        for content in ("A\n", "B\n", "C\n"):
            (ctx / "a.txt").write_text(content)
            client.mark_built("bounded")
        (report,) = client.reports(["bounded"])
        assert report.builds_recorded == 2
        (ctx / "a.txt").write_text("B\n")  # build 2 is kept
        assert statuses(client, "bounded") == CACHED
        (ctx / "a.txt").write_text("A\n")  # build 1 was dropped
        assert statuses(client, "bounded")[0] == pb.STEP_STATUS_INVALIDATED
    finally:
        daemon.stop()


def test_builds_survive_a_restart(tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
    daemon = start_daemon(tmp_path / "d")
    daemon.client.register(str(ctx), name="kept")
    daemon.client.mark_built("kept")
    assert daemon.stop() == 0
    again = start_daemon(tmp_path / "d")
    try:
        assert [c.name for c in again.client.list()] == ["kept"]
        assert statuses(again.client, "kept") == CACHED
    finally:
        again.stop()


def test_recorded_nodes_are_stored_under_their_own_digest(tmp_path: Path) -> None:
    """Each stored node is the bytes its digest was computed from, even for a
    file written moments before the build (re-read on every look)."""
    daemon = start_daemon(tmp_path / "daemon")
    try:
        ctx = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
        (ctx / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
        (ctx / "sub").mkdir()
        (ctx / "sub" / "c.txt").write_text("c\n")
        daemon.client.register(str(ctx), name="nodes")
        (ctx / "a.txt").write_text("written just now\n")
        assert daemon.client.mark_built("nodes").steps_recorded == 1
    finally:
        daemon.stop()
    db = sqlite3.connect(daemon.state_dir / STATE_FILE)
    rows = db.execute("SELECT digest, blob FROM nodes").fetchall()
    db.close()
    assert len(rows) >= 6  # the context folder, sub/, and the files
    assert all(hashlib.sha256(blob).digest() == digest for digest, blob in rows)


def test_many_changes_show_twenty_paths_and_count_within_a_budget(shared_daemon, tmp_path: Path) -> None:
    client = shared_daemon.client
    ctx = tmp_path / "many"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    for i in range(1200):
        (ctx / f"f{i:04d}.txt").write_text("old\n")
    client.register(str(ctx), name="many")
    client.mark_built("many")

    for i in range(30):
        (ctx / f"f{i:04d}.txt").write_text("new\n")
    (step,) = client.reports(["many"])[0].steps
    assert len(step.changed_paths) == 20
    assert (step.changed_paths_total, step.changed_paths_truncated) == (30, False)

    for i in range(1200):
        (ctx / f"f{i:04d}.txt").write_text("new\n")
    (step,) = client.reports(["many"])[0].steps
    assert len(step.changed_paths) == 20
    assert step.changed_paths_truncated  # counting stopped: the total is a lower bound
    assert 20 <= step.changed_paths_total < 1200
    client.unregister("many", forget=True)
