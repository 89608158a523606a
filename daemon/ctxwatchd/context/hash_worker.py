"""A worker process that reads and hashes files, and lists folders, for the daemon.

Run as `python -m ctxwatchd.context.hash_worker` by hashing.HashWorkers. It
imports only what a record needs, reads requests on stdin and answers on
stdout, and exits when stdin closes (so it never outlives the daemon,
however the daemon stops) or after IDLE_EXIT_S without a request.

A request is a batch of files, each as the daemon's tree knows it (its
absolute path and the stat key it was listed with); the answer gives, for
each file in order, the record's node bytes and the stat key they are valid
for, or a failure (the daemon's walk then reads that file itself and
reports the error where it belongs). Or it is a batch of folders (absolute
paths); the answer gives, for each in order, the name, kind and packed stat
key of every entry, or a failure (the walk then lists that folder itself).
"""

from __future__ import annotations

import os
import queue
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from .nodes import FS_ENCODING, FS_ERRORS, encode_file
from .records import KEY_SIZE, KIND_DIR, StatKey, list_folder, listed_key, read_ahead, read_record

IDLE_EXIT_S = 60.0
READ_AHEAD = 16  # files the kernel is reading ahead of the one being hashed, from the disk
# Below the daemon's own threads (a query's answer gets a core at once) and
# the user's programs: a cold index takes what the machine leaves (a higher
# value would starve it on a busy machine).
NICENESS = 10

REQUEST_HEADER = struct.Struct("<IB")  # payload bytes, what is asked (one of the three below)
HASH, HASH_READING_AHEAD, LIST = 0, 1, 2
PATH_LENGTH = struct.Struct("<I")
REPLY_HEADER = struct.Struct("<I")  # payload bytes
HASHED = struct.Struct("<BqI")  # 1 (hashed), when (ns), node size; then the stat key and the node
LISTED = struct.Struct("<BI")  # 1 (listed), how many entries; then each entry
LISTED_ENTRY = struct.Struct("<HcB")  # name size, kind, packed key size; then the name and the key
FAILED = b"\0"
Listing = list[tuple[str, str, bytes]]  # (name, kind, packed stat key) of each entry of a folder
T = TypeVar("T")


def encode_request(files: list[tuple[str, StatKey]], reading_ahead: bool) -> bytes:
    """A request to hash `files` (path, stat key)."""
    return _request(HASH_READING_AHEAD if reading_ahead else HASH, files)


def encode_listing_request(folders: list[str]) -> bytes:
    """A request to list `folders` (paths)."""
    return _request(LIST, [(path, b"") for path in folders])


def _request(asked: int, paths: list[tuple[str, bytes]]) -> bytes:
    parts: list[bytes] = []
    for path, key in paths:
        raw = path.encode(FS_ENCODING, FS_ERRORS)
        parts += (PATH_LENGTH.pack(len(raw)), raw, key)
    payload = b"".join(parts)
    return REQUEST_HEADER.pack(len(payload), asked) + payload


def decode_request(payload: bytes, key_size: int) -> list[tuple[str, StatKey]]:
    """The paths of a request, each with the `key_size` bytes after it."""
    paths, pos = [], 0
    while pos < len(payload):
        (length,) = PATH_LENGTH.unpack_from(payload, pos)
        pos += PATH_LENGTH.size
        path = payload[pos : pos + length].decode(FS_ENCODING, FS_ERRORS)
        pos += length
        paths.append((path, payload[pos : pos + key_size]))
        pos += key_size
    return paths


def hash_one(path: str, key: StatKey) -> bytes:
    """One file's answer: hashed (when, the stat key, the node bytes) or FAILED."""
    hashed_at = time.time_ns()
    try:
        record, key = read_record(path, key)
    except OSError:
        return FAILED
    if record.kind == KIND_DIR:  # a folder now: the daemon's walk sees it
        return FAILED
    blob = encode_file(record)
    return b"".join((HASHED.pack(1, hashed_at, len(blob)), key, blob))


def decode_reply(payload: bytes) -> Iterator[tuple[StatKey, bytes, int] | None]:
    """(stat key, node bytes, hashed at) per file in request order; None where it failed."""
    return _answers(payload, _hashed_at)


def _hashed_at(payload: bytes, pos: int) -> tuple[tuple[StatKey, bytes, int], int]:
    _, hashed_at, length = HASHED.unpack_from(payload, pos)
    pos += HASHED.size
    key = payload[pos : pos + KEY_SIZE]
    pos += KEY_SIZE
    return (key, payload[pos : pos + length], hashed_at), pos + length


def _answers(payload: bytes, decode: Callable[[bytes, int], tuple[T, int]]) -> Iterator[T | None]:
    """Each answer of a reply in request order, decoded from where it
    starts (`decode` gives it and where the next one starts); None where it failed."""
    pos = 0
    while pos < len(payload):
        if payload[pos] == FAILED[0]:
            pos += 1
            yield None
        else:
            answer, pos = decode(payload, pos)
            yield answer


def list_one(path: str) -> bytes:
    """One folder's answer: its entries, or FAILED."""
    parts: list[bytes] = []
    count = 0
    try:
        for name, st in list_folder(path):
            raw = name.encode(FS_ENCODING, FS_ERRORS)
            kind, packed = listed_key(st)
            parts += (LISTED_ENTRY.pack(len(raw), kind.encode(), len(packed)), raw, packed)
            count += 1
    except OSError:
        return FAILED
    return LISTED.pack(1, count) + b"".join(parts)


def decode_listings(payload: bytes) -> Iterator[Listing | None]:
    """Each folder's listing in request order; None where it failed."""
    return _answers(payload, _listing_at)


def _listing_at(payload: bytes, pos: int) -> tuple[Listing, int]:
    _, count = LISTED.unpack_from(payload, pos)
    pos += LISTED.size
    listing = []
    for _ in range(count):
        name_size, kind, key_size = LISTED_ENTRY.unpack_from(payload, pos)
        pos += LISTED_ENTRY.size
        name = payload[pos : pos + name_size].decode(FS_ENCODING, FS_ERRORS)
        pos += name_size
        listing.append((name, kind.decode(), payload[pos : pos + key_size]))
        pos += key_size
    return listing, pos


def answer(asked: int, paths: list[tuple[str, StatKey]]) -> bytes:
    if asked == LIST:
        replies = [list_one(path) for path, _ in paths]
    else:
        replies = _hashed(paths, reading_ahead=asked == HASH_READING_AHEAD)
    payload = b"".join(replies)
    return REPLY_HEADER.pack(len(payload)) + payload


def _hashed(files: list[tuple[str, StatKey]], reading_ahead: bool) -> list[bytes]:
    if reading_ahead:  # from the disk: the kernel reads the next files while this one is hashed
        for path, _ in files[:READ_AHEAD]:
            read_ahead(path)
    replies = []
    for ahead, (path, key) in enumerate(files, start=READ_AHEAD):
        if reading_ahead and ahead < len(files):
            read_ahead(files[ahead][0])
        replies.append(hash_one(path, key))
    return replies


def read_exactly(fd: int, size: int) -> bytes | None:
    """`size` bytes from fd, or None at its end."""
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def serve(requests: int, replies: int) -> None:
    """Answer requests in order, until stdin closes or none came for
    IDLE_EXIT_S. A thread reads them as they come, so the daemon's write of
    its next request never waits for this process to finish writing an
    answer the daemon has not started reading: both sides writing into full
    pipes would wait on each other for ever."""
    received: queue.SimpleQueue[tuple[int, list[tuple[str, StatKey]]] | None] = queue.SimpleQueue()
    threading.Thread(target=_receive, args=(requests, received), daemon=True).start()
    while True:
        try:
            request = received.get(timeout=IDLE_EXIT_S)
        except queue.Empty:
            return
        if request is None:
            return  # the daemon is gone, or closed us
        write_all(replies, answer(*request))


def _receive(requests: int, received: queue.SimpleQueue[tuple[int, list[tuple[str, StatKey]]] | None]) -> None:
    """Queue each request read; None at the end of stdin."""
    while (header := read_exactly(requests, REQUEST_HEADER.size)) is not None:
        length, asked = REQUEST_HEADER.unpack(header)
        payload = read_exactly(requests, length)
        if payload is None:
            break
        received.put((asked, decode_request(payload, 0 if asked == LIST else KEY_SIZE)))
    received.put(None)


def main() -> None:
    os.nice(NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the daemon's to handle
    replies = os.dup(1)
    os.dup2(2, 1)  # nothing printed by accident can corrupt the answers
    try:
        serve(0, replies)
    except BrokenPipeError:
        pass  # the daemon stopped reading: it is gone


if __name__ == "__main__":
    main()
