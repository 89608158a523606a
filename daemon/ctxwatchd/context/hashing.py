"""Hashing many files as fast as the GIL and the disk allow.

Two cases, told apart by asking the kernel whether the first files are in
the page cache (where it cannot tell, by timing their reads):

- From the page cache (a branch switch, a warm restart), a small file costs
  Python work under the GIL, and two threads taking turns at it are slower
  than one. Small files stay on the calling thread; large files, whose
  reading and hashing happen mostly outside the GIL, go to the workers.
- From the disk (a cold index), the calling thread hashes every file in walk
  order while the kernel reads the next ones (read-ahead hints): the disk
  always has reads queued, and no second thread competes for the GIL.

Timing alone can take a fast disk for the page cache; the kernel's answer
cannot (the measurements behind these choices are in CHANGELOG.md).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor

from .records import key_size
from .tree import Entry

Item = tuple[str, Entry]  # (tree-relative path, entry)

LARGE_FILE = 256 * 1024  # bytes: from here on a file is worth a thread of its own
PROBE_FILES = 64  # files looked at on the calling thread before deciding
DISK_BOUND_S = 0.00012  # where the kernel cannot tell: a file read slower than this on average came from the disk
READ_AHEAD = 16  # files the kernel is reading ahead of the one being hashed, from the disk


def hash_files(
    files: list[Item],
    hash_one: Callable[[Item], None],
    pool: Executor | None,
    workers: int,
    in_page_cache: Callable[[Item], bool | None] = lambda item: None,
    read_ahead: Callable[[Item], None] = lambda item: None,
) -> None:
    """Call hash_one for every item, on this thread and, from the page cache,
    up to `workers` of the pool. `in_page_cache` says whether a file's
    content is in the page cache (None: cannot tell); `read_ahead` has the
    kernel start reading a file."""
    probe, rest = files[:PROBE_FILES], files[PROBE_FILES:]
    cached = [in_page_cache(item) for item in probe] if rest else []  # before reading puts them there
    started = time.perf_counter()
    for item in probe:
        hash_one(item)
    if not rest:
        return
    known = [answer for answer in cached if answer is not None]  # a file gone meanwhile says nothing
    if known:
        from_disk = known.count(False) * 2 > len(known)
    else:
        from_disk = (time.perf_counter() - started) / len(probe) > DISK_BOUND_S
    if from_disk:
        _hash_reading_ahead(rest, hash_one, read_ahead)
    elif pool is None or workers < 1:
        for item in rest:
            hash_one(item)
    else:
        large = deque(item for item in rest if key_size(item[1].key) >= LARGE_FILE)
        small = deque(item for item in rest if key_size(item[1].key) < LARGE_FILE)
        pending = [pool.submit(_hash_all, large.popleft, hash_one) for _ in range(min(workers, len(large)))]
        _hash_all(small.popleft, hash_one)
        _hash_all(large.pop, hash_one)  # then help with the large files, from the other end
        for future in pending:
            future.result()


def _hash_reading_ahead(
    files: list[Item], hash_one: Callable[[Item], None], read_ahead: Callable[[Item], None]
) -> None:
    """Hash in order, the next READ_AHEAD files always being read by the kernel."""
    for item in files[:READ_AHEAD]:
        read_ahead(item)
    for ahead, item in enumerate(files, start=READ_AHEAD):
        if ahead < len(files):
            read_ahead(files[ahead])
        hash_one(item)


def _hash_all(take: Callable[[], Item], hash_one: Callable[[Item], None]) -> None:
    """Hash what `take` gives until it raises IndexError (deque's popleft and
    pop are atomic: threads share a queue)."""
    while True:
        try:
            item = take()
        except IndexError:
            return
        hash_one(item)
