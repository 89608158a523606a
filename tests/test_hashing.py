"""hash_files: every file hashed exactly once, on the threads each case calls for,
and the kernel's page-cache answers it decides by."""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ctxwatchd.context import hashing
from ctxwatchd.context.records import in_page_cache, read_ahead
from ctxwatchd.context.tree import new_entry


def _items(tmp_path, sizes: list[int]) -> list[hashing.Item]:
    items = []
    for i, size in enumerate(sizes):
        path = tmp_path / f"f{i:04d}"
        path.write_bytes(b"x" * size)
        items.append((path.name, new_entry(os.lstat(path))))
    return items


class Recorder:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: Counter[str] = Counter()
        self.threads: dict[str, str] = {}
        self.lock = threading.Lock()

    def __call__(self, item: hashing.Item) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)  # a read that waits on the disk
        with self.lock:
            self.calls[item[0]] += 1
            self.threads[item[0]] = threading.current_thread().name


@pytest.fixture
def pool():
    with ThreadPoolExecutor(2, thread_name_prefix="worker") as executor:
        yield executor


def test_from_the_page_cache_small_files_stay_on_the_calling_thread(tmp_path, pool):
    sizes = [100] * 300 + [hashing.LARGE_FILE] * 5
    items = _items(tmp_path, sizes)
    record = Recorder(delay_s=2 * hashing.DISK_BOUND_S)  # slow, but the kernel says cached: a loaded machine
    hashing.hash_files(items, record, pool, workers=2, in_page_cache=lambda item: True)
    assert set(record.calls.values()) == {1} and len(record.calls) == len(items)
    me = threading.current_thread().name
    small = [name for (name, entry), size in zip(items, sizes, strict=True) if size < hashing.LARGE_FILE]
    assert all(record.threads[name] == me for name in small)
    assert any(record.threads[name] != me for name, _ in items[300:])  # large files went to the workers


class ReadAhead:
    """Records each hint with how far ahead of the files hashed so far it came."""

    def __init__(self, record: Recorder) -> None:
        self.record = record
        self.lead: dict[str, int] = {}

    def __call__(self, item: hashing.Item) -> None:
        self.lead[item[0]] = sum(self.record.calls.values())


def test_from_the_disk_one_thread_hashes_in_order_while_the_kernel_reads_ahead(tmp_path, pool):
    items = _items(tmp_path, [100] * 300 + [hashing.LARGE_FILE] * 5)
    record = Recorder()  # fast, but the kernel says not cached: a fast disk
    ahead = ReadAhead(record)
    hashing.hash_files(items, record, pool, workers=2, in_page_cache=lambda item: False, read_ahead=ahead)
    assert set(record.calls.values()) == {1} and len(record.calls) == len(items)
    assert set(record.threads.values()) == {threading.current_thread().name}
    assert list(record.calls) == [name for name, _ in items]  # walk order
    after_probe = [name for name, _ in items[hashing.PROBE_FILES :]]
    assert set(ahead.lead) == set(after_probe)  # every file read ahead, once
    for position, name in enumerate(after_probe):
        hashed_before = hashing.PROBE_FILES + position
        assert hashed_before - hashing.READ_AHEAD <= ahead.lead[name] <= hashed_before


def test_where_the_kernel_cannot_tell_slow_reads_mean_the_disk(tmp_path, pool):
    items = _items(tmp_path, [100] * 200)
    record = Recorder(delay_s=2 * hashing.DISK_BOUND_S)
    ahead = ReadAhead(record)
    hashing.hash_files(items, record, pool, workers=2, read_ahead=ahead)
    assert set(record.threads.values()) == {threading.current_thread().name}
    assert len(ahead.lead) == len(items) - hashing.PROBE_FILES


def test_files_the_kernel_says_nothing_about_do_not_count(tmp_path, pool):
    items = _items(tmp_path, [100] * 200)
    gone = {name for name, _ in items[: hashing.PROBE_FILES : 4]}  # deleted before they could be asked about
    record = Recorder()  # fast reads: timing alone would say "page cache"
    ahead = ReadAhead(record)
    hashing.hash_files(
        items, record, pool, workers=2, in_page_cache=lambda item: None if item[0] in gone else False, read_ahead=ahead
    )
    assert len(ahead.lead) == len(items) - hashing.PROBE_FILES  # decided by the kernel's answers: the disk


def test_without_a_pool_everything_runs_here(tmp_path):
    items = _items(tmp_path, [10] * 100)
    record = Recorder()
    hashing.hash_files(items, record, None, workers=0, in_page_cache=lambda item: True)
    assert set(record.threads.values()) == {threading.current_thread().name}
    assert sum(record.calls.values()) == 100


def _resident(path: Path) -> bool:
    """Whether the kernel holds the file's first page, by mincore(2): the oracle in_page_cache is checked against."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, mmap.PAGESIZE, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap")
        vector = ctypes.create_string_buffer(1)
        try:
            if libc.mincore(address, mmap.PAGESIZE, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            libc.munmap(address, mmap.PAGESIZE)
    finally:
        os.close(fd)
    return bool(vector.raw[0] & 1)


def _drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # clean pages can be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_a_file_just_read_is_in_the_page_cache(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(os.urandom(1 << 20))
    path.read_bytes()
    if not _resident(path):
        pytest.skip("the kernel evicted the page just read (memory pressure): nothing to compare with")
    assert in_page_cache(str(path)) is True


def test_a_file_the_kernel_dropped_is_not_in_the_page_cache(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(os.urandom(1 << 20))
    _drop_from_page_cache(path)
    if _resident(path):
        # POSIX_FADV_DONTNEED is advice: under load ext4 may keep the pages (seen in CI).
        pytest.skip("the kernel kept the pages after POSIX_FADV_DONTNEED: nothing to compare with")
    assert in_page_cache(str(path)) is False


def test_the_page_cache_question_about_a_missing_file_has_no_answer(tmp_path):
    assert in_page_cache(str(tmp_path / "missing")) is None
    read_ahead(str(tmp_path / "missing"))  # a hint only: a missing file is reported when it is read
