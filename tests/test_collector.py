"""The garbage collector and the trees: a large tree is frozen as it grows
(full collections skip it), and what a closed root leaves is still freed."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from ctxwatchd import collector
from ctxwatchd.cache.store import Store
from ctxwatchd.context.watcher import WatchedRoot
from ctxwatchd.engine import Engine
from ctxwatchd.registry import ContextRef, Registration
from ctxwatchd.requests import BuildOptions
from ctxwatchd.server.main import STATE_FILE

FILES = 600


@pytest.fixture
def engine(tmp_path: Path, monkeypatch):
    """An engine whose trees freeze every 100 entries; the test process is thawed after."""
    monkeypatch.setattr(collector, "FREEZE_EVERY", 100)
    (tmp_path / "state").mkdir(mode=0o700)
    store = Store(tmp_path / "state" / STATE_FILE)
    engine = Engine(store)
    try:
        yield engine
    finally:
        engine.close()
        store.close()
        gc.unfreeze()


def make_context(folder: Path) -> Path:
    for i in range(FILES):
        sub = folder / f"d{i % 20}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.txt").write_text(f"{i}\n")
    (folder / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    return folder


def indexed_root(engine: Engine, folder: Path) -> WatchedRoot:
    """The watched root of a new context of FILES files in `folder`, once answered."""
    engine.register(Registration(path=str(make_context(folder)), name=folder.name))
    engine.report(engine.resolve(ContextRef(name=folder.name)), BuildOptions())
    root = engine.resolve(ContextRef(name=folder.name)).root
    assert root is not None
    return root


def test_a_large_tree_is_frozen_as_it_is_listed(engine, tmp_path: Path) -> None:
    root = indexed_root(engine, tmp_path / "app")
    entries = [entry for _, entry in root.tree.walk_loaded()]
    assert len(entries) > FILES
    tracked = {id(obj) for obj in gc.get_objects()}  # what a full collection walks: not the frozen
    walked = [entry for entry in entries if id(entry) in tracked]
    # Frozen every 100 entries: at most the last 100 listed (and the
    # folders listed after) are still walked.
    assert len(walked) <= collector.FREEZE_EVERY + 20, f"{len(walked)} of {len(entries)} entries walked"


def test_a_closed_root_is_freed_though_it_was_frozen(engine, tmp_path: Path) -> None:
    tree = weakref.ref(indexed_root(engine, tmp_path / "app").tree)
    engine.unregister(ContextRef(name="app"))
    indexed_root(engine, tmp_path / "other")  # its listing freezes again, collecting first what closing left
    assert tree() is None, "the closed root's tree is still alive"
