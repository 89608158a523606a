"""File records: what BuildKit's content checksum covers for one path.

A record holds the file type, permission bits (setuid/setgid/sticky
included), size, a SHA-256 of the content, the symlink target and the
extended attributes. It leaves out mtime and owner: BuildKit resets uid/gid
to 0 when the context is sent and does not hash timestamps.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from dataclasses import dataclass

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

# dev, ino, size, mtime_ns, ctime_ns, mode, packed: 48 bytes per path instead
# of a tuple of six int objects (memory per file matters at 100,000 files).
StatKey = bytes
_STAT_KEY = struct.Struct("<QQQqqQ")


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


def key_inode(key: StatKey) -> bytes:
    return key[:16]


def key_mtime_ns(key: StatKey) -> int:
    return _STAT_KEY.unpack(key)[3]


def key_mode(key: StatKey) -> int:
    return _STAT_KEY.unpack(key)[5]


@dataclass(frozen=True, slots=True)
class FileRecord:
    kind: str
    mode: int  # permission bits incl. setuid/setgid/sticky
    size: int
    content: bytes  # SHA-256 of the content (regular files), else b""
    link_target: str
    xattrs: tuple[tuple[str, bytes], ...]


def read_xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    found = []
    for name in sorted(names):
        if name.startswith(IGNORED_XATTR_PREFIXES):
            continue
        try:
            found.append((name, os.getxattr(path, name, follow_symlinks=False)))
        except OSError:
            continue
    return tuple(found)


def hash_content(path: str) -> bytes:
    """SHA-256 of a regular file, read in chunks so memory stays flat."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.digest()


def read_record(path: str, st: os.stat_result) -> tuple[FileRecord, os.stat_result]:
    """Build the record of `path`, whose lstat is `st`.

    Returns the record and the stat it is valid for: a file that changes while
    it is hashed is hashed again, so the pair is always consistent.
    Raises OSError when the file cannot be read (e.g. no permission).
    """
    kind = kind_of(st.st_mode)
    for _ in range(5):
        content = b""
        target = ""
        if kind == KIND_FILE:
            content = hash_content(path)
        elif kind == KIND_SYMLINK:
            target = os.readlink(path)
        record = FileRecord(kind, stat.S_IMODE(st.st_mode), st.st_size if kind == KIND_FILE else 0,
                            content, target, read_xattrs(path))
        after = os.lstat(path)
        if stat_key(after) == stat_key(st):
            return record, st
        st, kind = after, kind_of(after.st_mode)
    return record, st


def is_racy(st: os.stat_result, hashed_at_ns: int) -> bool:
    """True when a later write could keep the same stat key (see RACY_WINDOW_NS)."""
    return st.st_mtime_ns + RACY_WINDOW_NS >= hashed_at_ns or st.st_ctime_ns + RACY_WINDOW_NS >= hashed_at_ns
