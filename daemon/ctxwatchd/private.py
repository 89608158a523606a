"""Files and folders only the daemon's user may use.

Created private (folders 0700, files 0600); found looser, made private with
a log line; found belonging to someone else, or as a symbolic link someone
planted, refused: the daemon would otherwise serve through, or write into,
a place another user controls.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
from pathlib import Path

from ctxwatch_api.processes import lock_holder

log = logging.getLogger(__name__)

FOLDER_MODE = 0o700
FILE_MODE = 0o600


class NotPrivate(Exception):
    """A folder or file the daemon will not use: someone else's, a link, or shared."""


class AlreadyLocked(Exception):
    """Another process holds the lock; its text names that process when it could be read."""


def private_folder(path: Path, what: str) -> None:
    """Make sure `path` is a folder of ours that only we can use, creating it (and its parents) if needed."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    try:
        os.mkdir(path, FOLDER_MODE)
    except FileExistsError:
        pass
    info = os.lstat(path)  # never follow a link: it could point anywhere
    if stat.S_ISLNK(info.st_mode):
        raise NotPrivate(f"the {what} {path} is a symbolic link; remove it (the daemon creates the folder itself)")
    if not stat.S_ISDIR(info.st_mode):
        raise NotPrivate(f"the {what} {path} is not a folder")
    if info.st_uid != os.getuid():
        raise NotPrivate(
            f"the {what} {path} belongs to user id {info.st_uid}, not to you ({os.getuid()}); "
            "remove it or choose another path"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode != FOLDER_MODE:
        if mode & stat.S_ISVTX:
            raise NotPrivate(
                f"the {what} {path} is a shared folder (sticky bit, like /tmp); give a path in a folder of your own"
            )
        os.chmod(path, FOLDER_MODE)
        log.warning("the %s %s had mode %04o; made it %04o", what, path, mode, FOLDER_MODE)


def private_file(path: Path, what: str) -> None:
    """If `path` exists: a regular file of ours, mode 0600 (made so when looser)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        raise NotPrivate(f"the {what} {path} is not a regular file (a link or a special file); remove it")
    if info.st_uid != os.getuid():
        raise NotPrivate(f"the {what} {path} belongs to user id {info.st_uid}, not to you ({os.getuid()})")
    mode = stat.S_IMODE(info.st_mode)
    if mode != FILE_MODE:
        os.chmod(path, FILE_MODE)
        log.warning("the %s %s had mode %04o; made it %04o", what, path, mode, FILE_MODE)


def hold_lock(path: Path) -> int:
    """Take an exclusive flock on `path` for as long as this process lives; its pid is written in the file.

    Returns the open descriptor (the lock goes with it); raises AlreadyLocked
    at once when another process holds it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = lock_holder(path)
        raise AlreadyLocked(f"pid {holder}" if holder is not None else "another process") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
