"""A small file outside the trees: a Dockerfile or its ignore file."""

from __future__ import annotations

import os
import stat
import time

from .records import StatKey, stat_key

# A file whose mtime is this recent may be rewritten within the same timestamp
# tick without a visible stat change (the racy case): read it again.
RECENT_WRITE_NS = 50_000_000


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
        if stat_key(st) != self.key or time.time_ns() - st.st_mtime_ns < RECENT_WRITE_NS:
            with open(self.path, "rb") as f:
                self.data = f.read()
            self.key = stat_key(st)
        return self.data
