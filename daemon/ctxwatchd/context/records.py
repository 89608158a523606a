"""File records: what BuildKit's content checksum covers for one path.

A record holds the file type, permission bits (setuid/setgid/sticky
included), size, a SHA-256 of the content, the symlink target and the
extended attributes. It leaves out mtime and owner: BuildKit resets uid/gid
to 0 when the context is sent and does not hash timestamps.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import struct
import threading
from collections.abc import Iterator
from typing import NamedTuple

KIND_FILE = "f"
KIND_DIR = "d"
KIND_SYMLINK = "l"
KIND_OTHER = "o"  # FIFOs, sockets, devices: never opened for reading

CHUNK = 1 << 20
# Attributes the builder never sees in the image (labels of the host's
# security policy, ACLs that the copy does not preserve).
IGNORED_XATTR_PREFIXES = ("security.selinux", "system.posix_acl")
# A file whose mtime is this close to the moment it was hashed may be written
# again within the same timestamp tick without any visible stat change (git's
# "racy clean" problem); such a record is re-hashed on the next look.
RACY_WINDOW_NS = 20_000_000

# dev, ino, size, mtime_ns, ctime_ns, mode, packed: 44 bytes per path instead
# of a tuple of six int objects (memory per file matters at 100,000 files;
# 44 bytes, not 48, keeps the bytes object in a smaller allocator size class).
StatKey = bytes
_STAT_KEY = struct.Struct("<QQQqqI")
KEY_SIZE = _STAT_KEY.size
_NEW_FILE_KEY = struct.Struct("<QQQqqIx")  # a stat key and a zero byte: a file entry not hashed yet (tree.FileEntry)


class SavedRecord(NamedTuple):
    """A file's record as the state file keeps it between runs (the content-hash cache)."""

    name: str  # in its folder
    key: StatKey  # the stat key the record is valid for
    node: bytes  # the record's node bytes


def kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return KIND_FILE
    if stat.S_ISDIR(mode):
        return KIND_DIR
    if stat.S_ISLNK(mode):
        return KIND_SYMLINK
    return KIND_OTHER


def stat_key(st: os.stat_result) -> StatKey:
    """What must stay equal for a cached record to still be right."""
    return _STAT_KEY.pack(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def new_file_key(st: os.stat_result) -> bytes:
    """A file entry's packed bytes before it is hashed: its stat key, then
    a zero flag byte (one pack: a restart makes 100,000 of them)."""
    return _NEW_FILE_KEY.pack(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def listed_key(st: os.stat_result) -> tuple[str, bytes]:
    """A listed path's kind, and what the tree keeps of its stat: a folder's
    stat key, anything else's new_file_key (a regular file tested first: a
    restart lists 100,000 of them)."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return KIND_FILE, new_file_key(st)
    if stat.S_ISDIR(mode):
        return KIND_DIR, stat_key(st)
    return kind_of(mode), new_file_key(st)


def key_inode(key: StatKey) -> bytes:
    return key[:16]


def key_size(key: StatKey) -> int:
    return _STAT_KEY.unpack(key)[2]


def key_mtime_ns(key: StatKey) -> int:
    return _STAT_KEY.unpack(key)[3]


def key_mode(key: StatKey) -> int:
    return _STAT_KEY.unpack(key)[5]


class FileRecord(NamedTuple):
    """What BuildKit's checksum of one path covers. A tuple: a cold index
    makes one per file, and a frozen dataclass costs three times as much."""

    kind: str
    mode: int  # permission bits incl. setuid/setgid/sticky
    size: int
    content: bytes  # SHA-256 of the content (regular files), else b""
    link_target: str
    xattrs: tuple[tuple[str, bytes], ...]


def read_xattrs(target: str | int) -> tuple[tuple[str, bytes], ...]:
    """The extended attributes of a path (never followed if a symlink) or of an open descriptor."""
    follow = {} if isinstance(target, int) else {"follow_symlinks": False}  # a descriptor takes no such flag
    try:
        names = os.listxattr(target, **follow)
    except OSError:
        return ()
    found = []
    for name in sorted(names):
        if name.startswith(IGNORED_XATTR_PREFIXES):
            continue
        try:
            found.append((name, os.getxattr(target, name, **follow)))
        except OSError:
            continue
    return tuple(found)


# O_NONBLOCK: a FIFO swapped in for a file being read cannot block the open.
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
# O_NOFOLLOW: the file read is the one at the path itself, as lstat sees it.
_FILE_FLAGS = _READ_FLAGS | os.O_NOFOLLOW
# One read buffer per hashing thread: no 1 MiB allocation per file read.
_buffers = threading.local()


def _hash_open_file(fd: int, size: int) -> bytes:
    """SHA-256 of the first `size` bytes of an open regular file: its size when it
    was stat'ed, which is what the builder sends. Read in chunks into a reused
    buffer, so memory stays flat."""
    buffer = getattr(_buffers, "view", None)
    if buffer is None:
        buffer = _buffers.view = memoryview(bytearray(CHUNK))
    digest = hashlib.sha256()
    left = size
    while left > 0:
        count = os.readv(fd, [buffer[: min(left, CHUNK)]])
        if not count:
            break
        digest.update(buffer[:count])
        left -= count
    return digest.digest()


def in_page_cache(path: str) -> bool | None:
    """Whether the start of a file is in the page cache: a read that must not
    wait says so (None: this kernel or file system cannot tell)."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
        return True
    except BlockingIOError:
        return False
    except OSError:  # e.g. EOPNOTSUPP
        return None
    finally:
        os.close(fd)


def read_ahead(path: str) -> None:
    """Have the kernel start reading a file that is about to be hashed."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return  # reading it says what is wrong
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass  # a hint only
    finally:
        os.close(fd)


def list_folder(path: str) -> Iterator[tuple[str, os.stat_result]]:
    """The name and lstat of each entry of the folder at `path`, an entry
    deleted between the listing and its stat left out. Raises OSError when
    the folder cannot be opened (gone, not a folder, no permission).

    Listed through a descriptor, each entry is stat'ed relative to its
    folder: the kernel does not walk the whole path again."""
    folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with os.scandir(folder) as items:
            for item in items:
                try:
                    yield item.name, item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
    finally:
        os.close(folder)


def read_record(path: str, key: StatKey) -> tuple[FileRecord, StatKey]:
    """Build the record of `path`, whose lstat gave `key` (at any time before).

    Returns the record and the stat key it is valid for: a path that changed
    meanwhile (even into another type) is read again, so the pair is always
    consistent. Raises OSError when the path is gone or cannot be read (e.g.
    no permission).
    """
    last_file = None
    for _ in range(5):
        try:
            if kind_of(key_mode(key)) == KIND_FILE:
                read = _read_file(path)
                if read is not None:
                    last_file = read[:2]
                    if read[2]:
                        return last_file
                after = stat_key(os.lstat(path))
            else:
                record = _record_as_stated(path, key)
                after = stat_key(os.lstat(path))
                if after == key:
                    return record, key
        except OSError:
            after = stat_key(os.lstat(path))
            if after == key:
                raise  # unreadable as it is
        key = after
    if last_file is not None:
        return last_file  # written while read each time: is_racy has it read again
    if kind_of(key_mode(key)) == KIND_FILE:
        raise OSError(errno.EAGAIN, "kept changing between a file and another type while read", path)
    return _record_as_stated(path, key), key  # still changing: is_racy has it read again


def _read_file(path: str) -> tuple[FileRecord, StatKey, bool] | None:
    """The record of the regular file at `path`, the stat key of the file read,
    and whether it stayed unchanged while read; None when the path holds no
    regular file now. One descriptor, opened without following a symlink, is
    stat'ed before and after the read and gives the attributes: no path is
    looked up again (about 5 of 30 microseconds a file). A file that replaces
    this one after the open has another key, which the next stat of the path
    tells apart."""
    fd = os.open(path, _FILE_FLAGS)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            return None  # a FIFO or a device swapped in since the listing: never read (it could block)
        content = _hash_open_file(fd, before.st_size)
        key = stat_key(before)
        unchanged = stat_key(os.fstat(fd)) == key
        mode = stat.S_IMODE(before.st_mode)
        return FileRecord(KIND_FILE, mode, before.st_size, content, "", read_xattrs(fd)), key, unchanged
    finally:
        os.close(fd)


def _record_as_stated(path: str, key: StatKey) -> FileRecord:
    """The record of a path that is no regular file (a folder, a symlink, a FIFO...)."""
    mode = key_mode(key)
    kind = kind_of(mode)
    target = os.readlink(path) if kind == KIND_SYMLINK else ""
    return FileRecord(kind, stat.S_IMODE(mode), 0, b"", target, read_xattrs(path))


def is_racy(key: StatKey, hashed_at_ns: int) -> bool:
    """True when a later write could keep the same stat key (see RACY_WINDOW_NS)."""
    _, _, _, mtime_ns, ctime_ns, _ = _STAT_KEY.unpack(key)
    return mtime_ns + RACY_WINDOW_NS >= hashed_at_ns or ctime_ns + RACY_WINDOW_NS >= hashed_at_ns
