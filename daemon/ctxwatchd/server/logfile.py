"""Where the daemon logs: stderr (the journal, under systemd), or a size-capped file that rotates.

A daemon the CLI starts logs to `<state dir>/ctxwatchd.log` (`--log-file`): at
most LOG_MAX_BYTES, then renamed to .1 (the oldest of LOG_BACKUPS dropped), so a
daemon that runs for months never fills the disk. Its stderr follows the
current file, so a traceback or gRPC's own messages land there too.
"""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3
JOURNAL = "journal"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _RotatingLog(RotatingFileHandler):
    """A RotatingFileHandler that points stderr (fd 2) at each file it opens."""

    def _open(self):
        stream = super()._open()
        os.dup2(stream.fileno(), sys.stderr.fileno())
        return stream


def configure(level: str, log_file: Path | None) -> str:
    """Send the daemon's log to `log_file` (rotated), else to stderr; returns where it goes:
    the file's path, "journal" or "stderr" (shown by `ctxwatch daemon status`)."""
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler: logging.Handler = _RotatingLog(log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS)
        destination = str(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
        destination = JOURNAL if _stderr_is_the_journal() else "stderr"
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    return destination


def _stderr_is_the_journal() -> bool:
    # systemd sets JOURNAL_STREAM to the device and inode of the stream it connected.
    try:
        device, inode = (int(part) for part in os.environ.get("JOURNAL_STREAM", "").split(":"))
        stat = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode)
