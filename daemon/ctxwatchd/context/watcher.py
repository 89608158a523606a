"""Keeps a tree current from filesystem events, and proves it is current.

Events only mark paths dirty; the tree is brought up to date when a query
needs it, so a burst of 10,000 events costs one pass. Before answering, a
query writes a uniquely named cookie file in the root and waits for its
event (as watchman does): every write made before the query was queued
before the cookie, so once the cookie is seen, the dirty set is complete.

After an inotify queue overflow watchdog rebuilds its watches and then
delivers an EventsLostEvent (since watchdog 7.1.1); the root then re-scans
(stat walk, changed files re-read) before its next answer. A root whose
watch could not be added re-scans before every answer.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    EventsLostEvent,
    FileAttribEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import inotify_c
from watchdog.observers.api import ObservedWatch
from watchdog.observers.inotify import DirNode, InotifyEmitter, InotifyObserver, InotifyWatchGroup
from watchdog.observers.inotify_c import InotifyFD

from ctxwatch_api.processes import alive

from .tree import COOKIE_PREFIX, SavedRecords, Tree

log = logging.getLogger(__name__)

SYNC_TIMEOUT_S = 5.0
WATCH_RETRY_S = 30.0
_cookie_numbers = itertools.count()  # one sequence for every root: a request's ticket is a number in it

# After a read that comes within 1 ms of the one before, watchdog polls for
# more events for up to 1 ms, to batch a burst. A sync cookie's event then
# waited that millisecond whenever queries followed each other closely (the
# last cookie's removal opened the window): most of a warm query's time.
# Polling without waiting still batches a burst (its events are queued
# already) and delays nothing.
inotify_c._COALESCE_POLL_TIMEOUT_MS = 0


class Syncs:
    """What one request has synced. Its ticket is taken when it starts: a
    cookie numbered from it on was written after the request started, so
    once its event is seen, every write made before the request is too."""

    def __init__(self) -> None:
        self.ticket = next(_cookie_numbers)  # a number no cookie takes
        self._done: set[str] = set()

    def sync(self, root: WatchedRoot) -> None:
        """root.sync() for this request, once per root (the caller holds the root's lock)."""
        if root.path not in self._done:
            root.sync(self.ticket)
            self._done.add(root.path)


# Only what changes what a path holds. Without a filter inotify also reports
# every open and close, the daemon's own reads included (a flood for
# nothing); a folder's "modified" events only repeat its entries' events, and
# a write's close only repeats its modify event.
CHANGE_EVENTS = [
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    DirAttribEvent,
    EventsLostEvent,
]  # the emitter filters what it queues, our own event included


class _LazyWatchGroup(InotifyWatchGroup):
    """watchdog's watches for one path, except that a recursive watch starts
    with the root alone.

    The tree adds each folder it lists (watch_folder) just before listing it:
    whatever changes after the watch is added comes as an event, whatever
    changed before is in the listing. Folders no context reads (an ignored
    node_modules) cost no watch, and a restart reads each folder once, not
    once to watch it and once to list it. (This relies on watchdog's
    internals, hence the dependency's narrow version range.)
    """

    def _add_all_callbacks(self, path: bytes) -> None:
        """watchdog calls this for the root, after an overflow, and for a
        folder created or moved in: watch that folder only."""
        if self.follow_symlink or not self.is_recursive:
            super()._add_all_callbacks(path)
        else:
            self._add_callback(path)

    def watch_folder(self, path: bytes) -> None:
        """Watch one more folder. Raises OSError when the kernel refuses
        (e.g. the inotify watch limit), where watchdog's own adds stay silent.

        The tree lists a folder's parent first, so the parent's node is found
        by a walk down from the root and the new node hangs below it. watchdog's
        own lookup and insertion normalize both paths on every call: 16 to 30
        microseconds a folder, against 10 to 12 this way (the kernel's call is
        about 5 of them)."""
        with self._lock:
            if not self.is_active:
                return  # stopped
            parent_path, _, name = path.rpartition(b"/")
            parent = self._node_of(parent_path)
            known = parent.children.get(name) if parent is not None else self._find_node_by_path(path)
            if known is not None and self._nodes_by_wd.get(known.wd) is known:
                return  # watched already (a node may stand for an unwatched parent)
            wd = self._inotify_fd.add_callback(path, self.event_mask, self._callback, self._id)
            if parent is not None and known is None:
                node = DirNode(name=name, wd=wd, parent=parent)
                parent.children[name] = node
                self._nodes_by_wd[wd] = node
            elif self._insert_node(path, wd) is None:  # not below the root: nothing to watch
                self._inotify_fd.remove_callbacks([(wd, self._id)])

    def _node_of(self, path: bytes) -> DirNode | None:
        """The node of a folder at or below the root, for a path as the tree
        makes them (absolute, no trailing slash, no `.` or `..`); None if none."""
        node = self._root
        if path == self.path or node is None:
            return node
        if not path.startswith(self.path + b"/"):
            return None
        for part in path[len(self.path) + 1 :].split(b"/"):
            node = node.children.get(part)
            if node is None:
                return None
        return node


class _LazyEmitter(InotifyEmitter):
    """An emitter whose events go straight to the watch's handlers, on its own
    thread. Through watchdog's queue, each event (a sync cookie's included)
    waited for one more thread to get the interpreter lock, which a busy
    daemon (a cold index) made a millisecond or more per event."""

    group: _LazyWatchGroup | None = None

    def __init__(self, *args: Any, handlers_of: Callable[[ObservedWatch], tuple[Any, ...]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handlers_of = handlers_of

    def queue_event(self, event: FileSystemEvent) -> None:
        if self._event_filter is None or any(isinstance(event, kind) for kind in self._event_filter):
            for handler in self._handlers_of(self.watch):
                handler.dispatch(event)

    def on_thread_start(self) -> None:
        self._inotify = self.group = _LazyWatchGroup(
            self._inotify_fd,
            os.fsencode(self.watch.path),
            is_recursive=self.watch.is_recursive,
            event_mask=self.get_event_mask_from_filter(),
            follow_symlink=self.watch.follow_symlink,
        )


class Observer(InotifyObserver):
    """watchdog's inotify observer, with folders watched one by one as they are listed."""

    def __init__(self) -> None:
        super().__init__()
        self._emitter_class = _LazyEmitter
        # watchdog makes its inotify instance at the first watch; made now, the
        # kernel's limits (queue size) are those in force when the daemon starts.
        with self._lock:
            self._inotify_fd = InotifyFD()
            self._inotify_fd.start()
            self._emitter_kwargs["inotify_fd"] = self._inotify_fd
            self._emitter_kwargs["handlers_of"] = self._handlers_of

    def _handlers_of(self, watch: ObservedWatch) -> tuple[Any, ...]:
        """The handlers of a watch, read without the observer's lock:
        unschedule() holds it while it waits for the watch's emitter thread,
        the one asking. (tuple() copies the set under the interpreter lock.)"""
        return tuple(self._handlers.get(watch, ()))

    def watch_group(self, watch: ObservedWatch) -> _LazyWatchGroup:
        """The watches behind a scheduled watch (its emitter made them when it started)."""
        with self._lock:
            return self._emitter_for_watch[watch].group


class FolderWatch(FileSystemEventHandler):
    """Reports any change in a folder outside every tree (an out-of-context
    Dockerfile's). While the folder does not exist, its nearest existing
    parent is watched instead, so its return is noticed too."""

    def __init__(
        self, observer: Observer, folder: str, on_activity: Callable[[], None], watchers_of: Callable[[str], int]
    ) -> None:
        self.observer = observer
        self.folder = folder
        self.on_activity = on_activity
        self.watchers_of = watchers_of  # how many folder watches watch a path (they share watchdog's watch)
        self.watch = None
        self.watched = ""
        self.users = 0  # contexts whose Dockerfile lives in the folder

    def retarget(self) -> None:
        """Watch the folder, or the parent that exists; called before each answer."""
        target = self.folder
        while not os.path.isdir(target) and os.path.dirname(target) != target:
            target = os.path.dirname(target)
        if target == self.watched and self.watch is not None:
            return
        self.close()
        try:
            self.watch = self.observer.schedule(self, target, event_filter=CHANGE_EVENTS)
            self.watched = target
        except OSError as e:
            log.warning("cannot watch %s (%s): edits there are seen by queries but not pushed", target, e)

    def close(self) -> None:
        if self.watch is None:
            return
        watch, path = self.watch, self.watched
        self.watch, self.watched = None, ""
        if self.watchers_of(path):
            self.observer.remove_handler_for_watch(self, watch)  # another folder's watch uses it
        else:
            try:
                self.observer.unschedule(watch)
            except KeyError:
                pass  # watchdog already dropped it (the folder went away)

    def dispatch(self, event: FileSystemEvent) -> None:
        self.on_activity()


def _watch_problem(path: str, error: OSError) -> str:
    """What the status says when a folder cannot be watched, and what to do."""
    if error.errno == errno.ENOSPC:  # inotify's way of saying "watch limit reached"
        why = (
            "the inotify watch limit is reached (raise it: sysctl fs.inotify.max_user_watches=524288, "
            "or stop other programs that watch many folders)"
        )
    else:
        why = error.strerror or str(error)
    return f"cannot watch {path}: {why}; queries re-scan until it can"


def remove_stale_cookies(root: str) -> None:
    """Delete sync cookies a killed daemon left in the root (its pid is gone):
    they are hidden from answers but would be sent to the builder."""
    try:
        names = [n for n in os.listdir(root) if n.startswith(COOKIE_PREFIX)]
    except OSError:
        return
    for name in names:
        pid = name[len(COOKIE_PREFIX) :].split("-")[0]
        if pid.isdigit() and not alive(int(pid)):
            try:
                os.unlink(os.path.join(root, name))
            except OSError:
                pass


class WatchedRoot(FileSystemEventHandler):
    """One tree, its watch, and the paths that changed since the last query."""

    def __init__(
        self,
        path: str,
        observer: Observer | None,
        on_activity: Callable[[], None] = lambda: None,
        on_events_lost: Callable[[], None] | None = None,
        saved_in: SavedRecords | None = None,
    ) -> None:
        self.path = path
        self.prefix = path.rstrip("/") + "/"
        self.on_activity = on_activity
        # The kernel queue is shared by every watch of the observer, so a loss
        # reported on one root concerns them all: the engine fans it out.
        self.on_events_lost = on_events_lost or self.events_were_lost
        remove_stale_cookies(path)
        self.tree = Tree(path, saved_in, self._watch_folder)
        self.lock = threading.Lock()
        self.dirty: set[str] = set()
        self.cookies: dict[str, tuple[int, threading.Event]] = {}  # written, event not seen yet: name -> (number, seen)
        self.cookie_seen = -1  # the highest number of a cookie whose event came
        self.needs_rescan = False
        self.problem = ""  # why answers currently rely on re-scans
        self.events_lost = 0  # inotify overflows seen; each one cost a re-scan
        self.observer = observer
        self.watch = None
        self.group: _LazyWatchGroup | None = None  # the watch's folders
        self.watch_broken = False  # the root itself was deleted or moved away
        self.cookies_impossible = False  # a read-only root: every query re-scans
        self.retry_watch_at = 0.0
        self._start_watch()

    def _watch_folder(self, path: str) -> None:
        """Called by the tree just before it lists a folder below the root."""
        if self.group is None or path == self.path:
            return
        try:
            self.group.watch_folder(os.fsencode(path))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            pass  # gone or unreadable: the listing finds that too
        except OSError as e:
            # E.g. the inotify watch limit: events below that folder would be
            # missed, so answers come from re-scans until a later retry works.
            self.close()
            self.retry_watch_at = time.monotonic() + WATCH_RETRY_S
            self.problem = _watch_problem(path, e)
            log.warning("%s", self.problem)

    @property
    def queue_depth(self) -> int:
        return len(self.dirty)

    def close(self) -> None:
        if self.observer is not None and self.watch is not None:
            try:
                self.observer.unschedule(self.watch)
            except KeyError:
                pass  # watchdog already dropped it (its folder went away)
            self.watch = self.group = None

    def drop_listings(self, why: str) -> None:
        """Forget every folder listing and its watch (their memory): the next
        answer lists and watches again from the root (a re-scan). The status
        says `why` until then."""
        self.close()
        self.problem = why
        tree = self.tree
        tree.top.children = None
        tree.unapplied.clear()
        tree.listed_entries = 0
        tree.generation += 1  # answers and sizes computed from the listings are stale
        with self.lock:
            self.dirty.clear()
            self.needs_rescan = True

    def _start_watch(self) -> None:
        """(Re)start the watch (the root; the tree adds the folders it lists);
        the tree is re-scanned, and so watched again, before the next answer."""
        if self.observer is None:
            return
        self.close()
        self.watch_broken = False
        self.needs_rescan = True
        try:
            self.watch = self.observer.schedule(self, self.path, recursive=True, event_filter=CHANGE_EVENTS)
            self.group = self.observer.watch_group(self.watch)
            self.problem = ""
        except OSError as e:
            # No such folder (yet), or the inotify watch limit: retry later, re-scan meanwhile.
            self.problem = _watch_problem(self.path, e)
            if not isinstance(e, FileNotFoundError):  # e.g. the watch limit: do not retry on every query
                self.retry_watch_at = time.monotonic() + WATCH_RETRY_S
            log.warning("%s", self.problem)

    # -- events (watchdog's thread) ----------------------------------------------
    def dispatch(self, event: FileSystemEvent) -> None:
        if os.fsdecode(event.src_path) == self.path and event.event_type in ("deleted", "moved"):
            with self.lock:
                self.watch_broken = True
            self.on_activity()
            return
        if isinstance(event, EventsLostEvent):
            log.warning("the kernel dropped file events (reported below %s); re-scanning", self.path)
            self.on_events_lost()
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                self._mark(os.fsdecode(raw))

    def _mark(self, path: str) -> None:
        # Events arrive under the watched path as given: slicing is enough
        # (and this runs for every event of a 10,000-file burst).
        if path == self.path:
            rel = ""
        elif path.startswith(self.prefix):
            rel = path[len(self.prefix) :]
        else:
            return
        if rel.startswith(COOKIE_PREFIX):
            cookie = self.cookies.get(rel)
            if cookie is not None:
                with self.lock:
                    self.cookie_seen = max(self.cookie_seen, cookie[0])
                cookie[1].set()
            return
        with self.lock:
            self.dirty.add(rel)
        self.on_activity()

    def events_were_lost(self) -> None:
        """Re-scan before the next answer; release queries waiting for a cookie
        whose event may have been among the lost ones."""
        with self.lock:
            self.needs_rescan = True
            self.events_lost += 1
        for _, seen in list(self.cookies.values()):
            seen.set()
        self.on_activity()

    # -- queries -------------------------------------------------------------------
    def sync(self, ticket: int, timeout: float = SYNC_TIMEOUT_S) -> None:
        """Return once the tree reflects every write made before the request
        holding `ticket` started (see Syncs). The caller holds the root's lock.

        Raises OSError when the root folder cannot be read (e.g. it is gone).
        """
        if self.watch_broken or (self.watch is None and time.monotonic() >= self.retry_watch_at):
            self._start_watch()
        self.wait_for_writes(ticket, timeout)
        with self.lock:
            dirty, self.dirty = self.dirty, set()
            rescan = self.needs_rescan or self.watch is None or self.cookies_impossible
            self.needs_rescan = False
        if rescan:
            self.tree.rescan()
            return
        for rel in sorted(dirty, key=lambda r: r.count("/")):
            self.tree.refresh(rel)
        self.tree.count_listed(len(dirty))  # at most one new path each

    def wait_for_writes(self, ticket: int, timeout: float = SYNC_TIMEOUT_S) -> None:
        """Wait until the events of every write made before `ticket` was taken
        are in the dirty set. Needs no root lock: requests waiting together
        share one cookie, and only the sync under the lock applies what came.
        A request that finds a cookie written before it still on its way waits
        for that one first, then shares the next with every request that came
        meanwhile: one cookie per round trip, however many readers ask."""
        while True:
            if self.watch is None or self.needs_rescan or self.cookies_impossible:
                return  # the sync re-scans
            with self.lock:
                if self.cookie_seen >= ticket:
                    return
                waiting = next((event for number, event in self.cookies.values() if number >= ticket), None)
                earlier = None
                if waiting is None:
                    earlier = next((event for _, event in self.cookies.values() if not event.is_set()), None)
                if waiting is None and earlier is None:  # write one (registered now: later requests wait for it)
                    number = next(_cookie_numbers)
                    name = f"{COOKIE_PREFIX}{os.getpid()}-{number}"
                    self.cookies[name] = (number, threading.Event())
            if earlier is not None:
                earlier.wait(timeout)  # its writer sets it at the latest when its own wait times out
                continue
            if waiting is None:
                self._write_cookie_and_wait(name, timeout)
            elif not waiting.wait(timeout):
                self._no_cookie_event(timeout)
            return

    def _write_cookie_and_wait(self, name: str, timeout: float) -> None:
        seen = self.cookies[name][1]
        path = os.path.join(self.path, name)
        try:
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileNotFoundError:
                self.needs_rescan = True  # the root is gone: the re-scan says so
                return
            except OSError as e:
                # A read-only root cannot take cookies: fall back to re-scans.
                self.cookies_impossible = True
                self.problem = f"cannot write sync cookies in {self.path}: {e.strerror or e}; every query re-scans"
                log.warning("%s", self.problem)
                return
            if not seen.wait(timeout):
                self._no_cookie_event(timeout)
        finally:
            with self.lock:
                self.cookies.pop(name, None)
            seen.set()  # requests waiting on it go on: what went wrong is in the flags their sync reads
            try:
                os.unlink(path)
            except OSError:
                pass

    def _no_cookie_event(self, timeout: float) -> None:
        # Better slow than wrong: answer from a re-scan.
        log.warning("no event for a sync cookie in %s within %.0f s; re-scanning", self.path, timeout)
        with self.lock:
            self.needs_rescan = True
