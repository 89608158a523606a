"""Sync cookies: a request sees every write made before it started, and
requests that wait at the same time share one cookie instead of taking
turns (many readers of one root do not wait on each other)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from support.waiting import wait_until

from ctxwatchd.context.watcher import Observer, Syncs, WatchedRoot


@pytest.fixture
def root(tmp_path: Path):
    observer = Observer()
    observer.daemon = True
    observer.start()
    watched = WatchedRoot(str(tmp_path), observer)
    Syncs().sync(watched)  # the first sync lists the root (and so watches it)
    watched.tree.children(watched.tree.top, "")
    yield watched
    watched.close()
    observer.stop()
    observer.join(timeout=2)


class CookieCount:
    """Counts the cookies a root writes (the real ones: the method is wrapped, not replaced)."""

    def __init__(self, root: WatchedRoot) -> None:
        self.written = 0
        write = root._write_cookie_and_wait

        def counted(name: str, timeout: float) -> None:
            self.written += 1
            write(name, timeout)

        root._write_cookie_and_wait = counted  # type: ignore[method-assign]


def test_a_write_made_before_the_request_is_seen_without_the_roots_lock(tmp_path, root):
    (tmp_path / "new.txt").write_text("x")
    syncs = Syncs()
    root.wait_for_writes(syncs.ticket)
    assert "new.txt" in root.dirty
    syncs.sync(root)
    assert root.tree.get("new.txt") is not None and not root.dirty


def test_a_request_older_than_a_cookie_seen_writes_none(tmp_path, root):
    older, newer = Syncs(), Syncs()
    count = CookieCount(root)
    root.wait_for_writes(newer.ticket)
    root.wait_for_writes(older.ticket)
    older.sync(root)
    assert count.written == 1


def test_a_request_newer_than_every_cookie_writes_its_own(tmp_path, root):
    count = CookieCount(root)
    root.wait_for_writes(Syncs().ticket)
    (tmp_path / "later.txt").write_text("x")
    root.wait_for_writes(Syncs().ticket)
    assert count.written == 2 and "later.txt" in root.dirty


class Requests:
    """Requests syncing a root at once, each on a thread of its own, and
    whether each saw written-before.txt once its wait for writes returned."""

    def __init__(self, root, requests: list[Syncs], start: threading.Barrier | None = None) -> None:
        self.saw: list[bool] = []

        def wait(syncs: Syncs) -> None:
            if start is not None:
                start.wait()
            root.wait_for_writes(syncs.ticket)
            self.saw.append("written-before.txt" in root.dirty)

        self.threads = [threading.Thread(target=wait, args=(syncs,)) for syncs in requests]
        for thread in self.threads:
            thread.start()

    def all_saw_the_write(self) -> bool:
        for thread in self.threads:
            thread.join(timeout=30)
        wait_until(lambda: len(self.saw) == len(self.threads), what="every request synced")
        return all(self.saw)


def test_requests_waiting_together_share_one_cookie(tmp_path, root):
    requests = [Syncs() for _ in range(20)]  # all started before any cookie below
    (tmp_path / "written-before.txt").write_text("x")
    count = CookieCount(root)
    waiting = Requests(root, requests, start=threading.Barrier(len(requests)))
    assert waiting.all_saw_the_write()
    assert count.written == 1


class CountedEvent(threading.Event):
    """An event that counts the threads waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiters = 0
        self._count = threading.Lock()

    def wait(self, timeout: float | None = None) -> bool:
        with self._count:
            self.waiters += 1
        return super().wait(timeout)


def test_requests_that_find_a_cookie_on_its_way_share_the_next_one(tmp_path, root):
    """A cookie written before these requests started is still on its way:
    they wait for it, then share one new cookie instead of writing one each."""
    in_flight = CountedEvent()
    root.cookies[".ctxwatch-cookie-earlier"] = (Syncs().ticket, in_flight)  # numbered before the requests
    requests = [Syncs() for _ in range(10)]
    (tmp_path / "written-before.txt").write_text("x")
    count = CookieCount(root)
    waiting = Requests(root, requests)
    wait_until(lambda: in_flight.waiters == len(requests), what="every request waiting for the earlier cookie")
    assert count.written == 0
    with root.lock:  # what the earlier cookie's writer does once its event came
        del root.cookies[".ctxwatch-cookie-earlier"]
    in_flight.set()
    assert waiting.all_saw_the_write()
    assert count.written == 1
