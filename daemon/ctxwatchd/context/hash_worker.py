"""A worker process that reads and hashes files for the daemon.

Run as `python -m ctxwatchd.context.hash_worker` by hashing.HashWorkers. It
imports only what a record needs, reads requests on stdin and answers on
stdout, and exits when stdin closes (so it never outlives the daemon,
however the daemon stops) or after IDLE_EXIT_S without a request.

A request is a batch of files, each as the daemon's tree knows it (its
absolute path and the stat key it was listed with); the answer gives, for
each file in order, the record's node bytes and the stat key they are valid
for, or a failure (the daemon's walk then reads that file itself and
reports the error where it belongs).
"""

from __future__ import annotations

import os
import queue
import signal
import struct
import threading
import time
from collections.abc import Iterator

from .nodes import FS_ENCODING, FS_ERRORS, encode_file
from .records import KEY_SIZE, KIND_DIR, StatKey, read_ahead, read_record

IDLE_EXIT_S = 60.0
READ_AHEAD = 16  # files the kernel is reading ahead of the one being hashed, from the disk
# Below the daemon's own threads (a query's answer gets a core at once) and
# the user's programs: a cold index takes what the machine leaves (a higher
# value would starve it on a busy machine).
NICENESS = 10

REQUEST_HEADER = struct.Struct("<IB")  # payload bytes, read-ahead flag
PATH_LENGTH = struct.Struct("<I")
REPLY_HEADER = struct.Struct("<I")  # payload bytes
HASHED = struct.Struct("<BqI")  # 1 (hashed), when (ns), node size; then the stat key and the node
FAILED = b"\0"


def encode_request(files: list[tuple[str, StatKey]], reading_ahead: bool) -> bytes:
    parts: list[bytes] = []
    for path, key in files:
        raw = path.encode(FS_ENCODING, FS_ERRORS)
        parts += (PATH_LENGTH.pack(len(raw)), raw, key)
    payload = b"".join(parts)
    return REQUEST_HEADER.pack(len(payload), reading_ahead) + payload


def decode_request(payload: bytes) -> list[tuple[str, StatKey]]:
    files, pos = [], 0
    while pos < len(payload):
        (length,) = PATH_LENGTH.unpack_from(payload, pos)
        pos += PATH_LENGTH.size
        path = payload[pos : pos + length].decode(FS_ENCODING, FS_ERRORS)
        pos += length
        files.append((path, payload[pos : pos + KEY_SIZE]))
        pos += KEY_SIZE
    return files


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
    pos = 0
    while pos < len(payload):
        if payload[pos] == 0:
            pos += 1
            yield None
            continue
        _, hashed_at, length = HASHED.unpack_from(payload, pos)
        pos += HASHED.size
        key = payload[pos : pos + KEY_SIZE]
        pos += KEY_SIZE
        yield key, payload[pos : pos + length], hashed_at
        pos += length


def answer(files: list[tuple[str, StatKey]], reading_ahead: bool) -> bytes:
    if reading_ahead:  # from the disk: the kernel reads the next files while this one is hashed
        for path, _ in files[:READ_AHEAD]:
            read_ahead(path)
    replies = []
    for ahead, (path, key) in enumerate(files, start=READ_AHEAD):
        if reading_ahead and ahead < len(files):
            read_ahead(files[ahead][0])
        replies.append(hash_one(path, key))
    payload = b"".join(replies)
    return REPLY_HEADER.pack(len(payload)) + payload


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
    received: queue.SimpleQueue[tuple[list[tuple[str, StatKey]], bool] | None] = queue.SimpleQueue()
    threading.Thread(target=_receive, args=(requests, received), daemon=True).start()
    while True:
        try:
            request = received.get(timeout=IDLE_EXIT_S)
        except queue.Empty:
            return
        if request is None:
            return  # the daemon is gone, or closed us
        write_all(replies, answer(*request))


def _receive(requests: int, received: queue.SimpleQueue[tuple[list[tuple[str, StatKey]], bool] | None]) -> None:
    """Queue each request read; None at the end of stdin."""
    while (header := read_exactly(requests, REQUEST_HEADER.size)) is not None:
        length, reading_ahead = REQUEST_HEADER.unpack(header)
        payload = read_exactly(requests, length)
        if payload is None:
            break
        received.put((decode_request(payload), bool(reading_ahead)))
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
