"""Monorepos: contexts that overlap share one watch and one tree, and a
context registered after others reads what was already hashed."""

from __future__ import annotations

import time
from pathlib import Path

from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatchd.context.records import RACY_WINDOW_NS

SERVICES = 30


def make_monorepo(root: Path) -> Path:
    for i in range(SERVICES):
        svc = root / "services" / f"svc{i:02d}"
        (svc / "src").mkdir(parents=True)
        (svc / "src" / "main.py").write_text(f"print({i})\n")
        (svc / "Dockerfile").write_text("FROM scratch\nCOPY src/ /app/\n")
    (root / "libs").mkdir()
    (root / "libs" / "common.py").write_text("COMMON = 1\n")
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /repo\n")
    # A file hashed within RACY_WINDOW_NS of its last write is read again on the
    # next look (a same-tick rewrite would keep its stat key): these tests count
    # reads, so the tree ages past that window first.
    time.sleep(2 * RACY_WINDOW_NS / 1e9)
    return root


def roots_of(client, below: Path) -> list[pb.WatchedRoot]:
    return [r for r in client.daemon_status().roots if r.path.startswith(str(below))]


def test_services_then_the_repo_share_one_root_and_hash_each_file_once(daemon, tmp_path: Path) -> None:
    repo = make_monorepo(tmp_path / "repo")
    client = daemon.client
    for i in range(SERVICES):
        svc = repo / "services" / f"svc{i:02d}"
        client.register(str(svc), name=f"svc{i:02d}")
    before = {r.key for rep in client.reports() for r in rep.steps}
    assert len(roots_of(client, repo)) == SERVICES  # unrelated folders: a root each
    client.register(str(repo), name="repo")  # the repo above them all: one root now
    [root] = roots_of(client, repo)
    assert root.path == str(repo)
    hashed = root.files_hashed
    reports = client.reports()
    assert {r.key for rep in reports if rep.context.name != "repo" for r in rep.steps} == before
    [root] = roots_of(client, repo)
    # Only what the services had not read yet (Dockerfiles outside their src/, libs/) was hashed now.
    assert root.files_hashed - hashed <= SERVICES + 2
    (repo / "services" / "svc07" / "src" / "main.py").write_text("changed\n")
    changed = {rep.context.name: [s.key for s in rep.steps] for rep in client.reports()}
    assert changed["svc07"] != [s.key for rep in reports if rep.context.name == "svc07" for s in rep.steps]
    assert changed["svc08"] == [s.key for rep in reports if rep.context.name == "svc08" for s in rep.steps]


def test_registering_another_context_in_a_watched_tree_adds_no_root(daemon, tmp_path: Path) -> None:
    repo = make_monorepo(tmp_path / "repo")
    client = daemon.client
    client.register(str(repo), name="repo")
    client.reports(["repo"])
    hashed = roots_of(client, repo)[0].files_hashed
    for i in range(SERVICES):
        client.register(str(repo / "services" / f"svc{i:02d}"), name=f"svc{i:02d}")
    client.reports()
    [root] = roots_of(client, repo)
    assert root.files_hashed == hashed  # every file was already known: no second scan
