"""A small file outside the trees: a Dockerfile or its ignore file."""

from __future__ import annotations

import os
import stat
import time

from .records import StatKey, is_racy, stat_key


class NotRegularFile(OSError):
    """A Dockerfile or ignore file that is a FIFO, a device or a folder."""


class FileTooLarge(OSError):
    """A Dockerfile or ignore file over the size ctxwatch reads."""


class WatchedFile:
    """A small file outside the tree (Dockerfile, ignore file), re-read when its stat changes."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.key: StatKey | None = None
        self.data: bytes | None = None

    def read(self) -> bytes | None:
        """The file's bytes, or None when it does not exist. Raises
        NotRegularFile for a FIFO or the like (never read: it could block),
        FileTooLarge past `max_bytes`."""
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
            self.data, st = read_regular(self.path, self.max_bytes)
            self.key = stat_key(st)
        return self.data


def read_regular(path: str, max_bytes: int) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file and its stat, read without ever blocking on
    something else swapped in (a FIFO opens at once with O_NONBLOCK, and
    fstat tells it from a file before any read)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"{path} is not a regular file (never read: it could block)")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLarge(f"{path} is larger than {max_bytes} bytes, the most ctxwatch reads (see Limits in README)")
    return data, st
