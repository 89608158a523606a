"""A watching engine in the test's process, and the kernel's inotify limits
lowered for a block (machine-wide settings: one run at a time changes them)."""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ctxwatchd.cache.store import Store
from ctxwatchd.context.watcher import WatchedRoot
from ctxwatchd.engine import Engine
from ctxwatchd.server.main import STATE_FILE

from .waiting import wait_until

LIMIT_LOCK = Path(tempfile.gettempdir()) / "ctxwatch-tests-inotify-limit.lock"


@contextmanager
def watching_engine(state_dir: Path) -> Iterator[Engine]:
    store = Store(state_dir / STATE_FILE)
    with open(LIMIT_LOCK, "a") as lock:  # not while another run has the queue limit lowered
        fcntl.flock(lock, fcntl.LOCK_EX)
        engine = Engine(store, watch=True)  # its inotify instance takes the limit now
    try:
        yield engine
    finally:
        engine.close()
        store.close()


def wait_until_seen(root: WatchedRoot, rel: str, timeout: float = 10.0) -> None:
    """Block until the watcher has marked `rel` dirty. Events arrive in order,
    so every event of an earlier write has been handled by then."""

    def seen() -> bool:
        with root.lock:
            return rel in root.dirty

    wait_until(seen, timeout, f"the watcher reporting {rel!r}", interval=0.01)


@contextmanager
def lowered_inotify_setting(setting: Path, value: Callable[[], int]) -> Iterator[None]:
    """Write value() to one of the kernel's inotify settings for the block;
    the original is always written back.

    The settings are machine-wide: a lock file serialises the window between
    test runs on the same machine, so that one run never takes another's low
    value for the original and "restores" it. value() is computed once the
    lock is held."""
    with open(LIMIT_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            original = setting.read_text()
        except OSError as e:
            pytest.fail(f"cannot read {setting}: {e}")
        try:
            setting.write_text(f"{value()}\n")
        except OSError as e:
            pytest.fail(
                f"cannot write {setting} ({e}): the inotify limit tests must run as root "
                f"with a writable /proc/sys (as in CI)"
            )
        try:
            yield
        finally:
            setting.write_text(original)
