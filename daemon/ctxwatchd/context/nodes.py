"""Merkle nodes: the canonical bytes of a file record or a directory listing.

A node's digest is the SHA-256 of its bytes. The same encoding is used in
memory (views) and in the store (recorded builds keep the nodes they
reference), so an old build and the current tree can be compared node by
node, descending only where digests differ.
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
from typing import NamedTuple

from .records import KIND_DIR, FileRecord

_FILE_TAG = b"F"
_DIR_TAG = b"D"
_LIST_TAG = b"L"  # a selection: named entries without a directory header


class Child(NamedTuple):
    """One entry of a folder listing. A tuple: a folder digest makes one per
    entry, and a frozen dataclass costs several times more to create."""

    name: str
    kind: str
    digest: bytes


class Node(NamedTuple):
    """A decoded node: a file record, or a directory (or selection) listing.
    (A tuple, not a dataclass: a hash worker imports this module, and
    dataclasses would cost it start-up time and memory.)"""

    kind: str  # a records.KIND_* value, or "selection"
    record: FileRecord | None = None
    mode: int = 0
    children: tuple[Child, ...] = ()


SELECTION = "selection"


DIGEST_SIZE = 32  # SHA-256


def digest_of(blob: bytes) -> bytes:
    return hashlib.sha256(blob).digest()


_LENGTH = struct.Struct(">I").pack
FS_ENCODING, FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # os.fsencode's


_NUMBERS = struct.Struct(">IQ").pack  # mode, size


def encode_file(record: FileRecord) -> bytes:
    """Each field with its length in front (one join: a cold index encodes every file)."""
    parts = [_FILE_TAG]
    for field in (
        record.kind.encode(),
        _NUMBERS(record.mode, record.size),
        record.content,
        record.link_target.encode(FS_ENCODING, FS_ERRORS),
    ):
        parts += (_LENGTH(len(field)), field)
    for name, value in record.xattrs:
        key = name.encode(FS_ENCODING, FS_ERRORS)  # os.listxattr's str: the name's bytes as they are
        parts += (_LENGTH(len(key)), key, _LENGTH(len(value)), value)
    return b"".join(parts)


def encode_dir(mode: int, children: list[Child] | tuple[Child, ...]) -> bytes:
    return dir_header(mode) + _encode_children(children)


DIR_HEADER_SIZE = 5  # the tag and the mode: a folder's entries start here


def dir_header(mode: int) -> bytes:
    """The start of a folder's node; its entries follow, each as encode_child makes it."""
    return _DIR_TAG + struct.pack(">I", mode)


def encode_child(name: str, kind: str, digest: bytes) -> bytes:
    """One entry of a listing, as encode_dir writes it (a wide folder keeps its entries encoded)."""
    raw = name.encode(FS_ENCODING, FS_ERRORS)
    return b"".join((_LENGTH(len(raw)), raw, kind.encode(), digest))


def is_dir_blob(blob: bytes) -> bool:
    return blob[:1] == _DIR_TAG


def dir_mode(blob: bytes) -> int:
    """The mode of a folder's node."""
    return struct.unpack_from(">I", blob, 1)[0]


def encode_selection(children: list[Child] | tuple[Child, ...]) -> bytes:
    """Several named sources (wildcard matches, COPY a b): listed, no header."""
    return _LIST_TAG + _encode_children(children)


def _encode_children(children: list[Child] | tuple[Child, ...]) -> bytes:
    parts: list[bytes] = []
    for child in children:
        name = child.name.encode(FS_ENCODING, FS_ERRORS)  # os.fsencode, without a call per name
        parts += (_LENGTH(len(name)), name, child.kind.encode(), child.digest)
    return b"".join(parts)


def decode(blob: bytes) -> Node:
    tag = blob[:1]
    if tag == _FILE_TAG:
        record = _decode_record(blob[1:])
        return Node(kind=record.kind, record=record)
    if tag == _DIR_TAG:
        return Node(kind=KIND_DIR, mode=dir_mode(blob), children=_all_children(blob, DIR_HEADER_SIZE))
    if tag == _LIST_TAG:
        return Node(kind=SELECTION, children=_all_children(blob, 1))
    raise ValueError(f"unknown node tag {tag!r}")


def _read_fields(body: bytes) -> list[bytes]:
    fields, pos = [], 0
    while pos < len(body):
        (length,) = struct.unpack_from(">I", body, pos)
        fields.append(body[pos + 4 : pos + 4 + length])
        pos += 4 + length
    return fields


def _decode_record(body: bytes) -> FileRecord:
    kind, numbers, content, target, *xattr_fields = _read_fields(body)
    mode, size = struct.unpack(">IQ", numbers)
    xattrs = tuple((os.fsdecode(xattr_fields[i]), xattr_fields[i + 1]) for i in range(0, len(xattr_fields), 2))
    return FileRecord(kind.decode(), mode, size, content, os.fsdecode(target), xattrs)


def _all_children(blob: bytes, start: int) -> tuple[Child, ...]:
    children = decode_children(blob, start, len(blob))
    if children is None:
        raise ValueError("a listing node ends inside an entry")
    return children


def decode_children(blob: bytes, start: int, end: int) -> tuple[Child, ...] | None:
    """The entries encoded in blob[start:end] (start is where an entry
    begins); None when the last one does not end exactly at `end`."""
    children, pos = [], start
    while pos < end:
        (length,) = struct.unpack_from(">I", blob, pos)
        pos += 4
        name = os.fsdecode(blob[pos : pos + length])
        pos += length
        kind = blob[pos : pos + 1].decode()
        digest = blob[pos + 1 : pos + 1 + DIGEST_SIZE]
        pos += 1 + DIGEST_SIZE
        children.append(Child(name, kind, digest))
    return tuple(children) if pos == end else None
