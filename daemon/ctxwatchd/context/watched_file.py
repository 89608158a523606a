"""A small file outside the trees: a Dockerfile or its ignore file."""

from __future__ import annotations

import os
import stat
import time

from .records import StatKey, is_racy, stat_key


class NotRegularFile(OSError):
    """A Dockerfile or ignore file that is a FIFO, a device or a folder."""


class WatchedFile:
    """A small file outside the tree (Dockerfile, ignore file), re-read when its stat changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.key: StatKey | None = None
        self.data: bytes | None = None

    def read(self) -> bytes | None:
        """The file's bytes, or None when it does not exist. Raises
        NotRegularFile for a FIFO or the like (never opened: it would block)."""
        try:
            st = os.stat(self.path)
        except OSError:
            self.key, self.data = None, None
            return None
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"{self.path} is not a regular file (never opened: it could block)")
        key = stat_key(st)
        # A file written moments ago may be written again without a visible stat change: read it again.
        if key != self.key or is_racy(key, time.time_ns()):
            with open(self.path, "rb") as f:
                self.data = f.read()
            self.key = key
        return self.data
