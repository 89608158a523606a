"""Wake a part of the daemon when a folder of its own changes, without polling.

The daemon waits for two things outside the build contexts: its socket being
removed (it binds it again) and buildx writing a record of a build (it learns
the build). Both are inotify watches here, so an idle daemon is woken by
nothing of its own: no timer looks at them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import ObservedWatch
from watchdog.observers.inotify import InotifyObserver

from .context.watcher import CHANGE_EVENTS

__all__ = ["FolderEvents", "InotifyObserver", "start_observer"]

log = logging.getLogger(__name__)


class FolderEvents(FileSystemEventHandler):
    """Calls `on_change` (on the watcher's thread) when anything in `folder`
    changes: an entry created, written, removed or moved, below it too when
    `recursive`, or the folder itself removed. While the folder does not
    exist its nearest existing parent is watched instead, so that its
    creation wakes the owner too; the owner calls `retarget` after each wake."""

    def __init__(
        self, observer: InotifyObserver, folder: str, on_change: Callable[[], None], recursive: bool = False
    ) -> None:
        self.observer = observer
        self.folder = folder
        self.on_change = on_change
        self.recursive = recursive
        self._lock = threading.Lock()
        self._watch: ObservedWatch | None = None
        self._watched = ""  # the folder, or the parent watched while it is missing
        self._stale = False  # the watched folder was removed: watch again

    def retarget(self) -> None:
        """Watch the folder, or its nearest existing parent."""
        target = self.folder
        while not os.path.isdir(target) and os.path.dirname(target) != target:
            target = os.path.dirname(target)
        with self._lock:
            if target == self._watched and self._watch is not None and not self._stale:
                return
        self.close()
        try:
            # Changes only: the daemon's own reads there (open, close) would wake it for nothing.
            recursive = self.recursive and target == self.folder
            watch = self.observer.schedule(self, target, recursive=recursive, event_filter=CHANGE_EVENTS)
        except OSError as e:
            log.warning("cannot watch %s (%s)", target, e)
            return
        with self._lock:
            self._watch, self._watched, self._stale = watch, target, False

    def close(self) -> None:
        with self._lock:
            watch, self._watch, self._watched = self._watch, None, ""
        if watch is not None:
            try:
                self.observer.unschedule(watch)
            except KeyError:
                pass  # watchdog already dropped it (the folder went away)

    def dispatch(self, event: FileSystemEvent) -> None:
        with self._lock:
            if os.fsdecode(event.src_path) == self._watched and event.event_type in ("deleted", "moved"):
                self._stale = True
        self.on_change()


def start_observer() -> InotifyObserver:
    """One inotify observer for the daemon's own folders (its threads block until an event)."""
    observer = InotifyObserver()
    observer.daemon = True
    observer.start()
    return observer
