"""hash_files: every file hashed exactly once, on the threads each case calls for."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from ctxwatchd.context import hashing
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


def test_from_the_page_cache_small_files_stay_on_the_calling_thread(tmp_path, pool, monkeypatch):
    monkeypatch.setattr(hashing, "DISK_BOUND_S", 1.0)  # a loaded machine must not look like a slow disk
    sizes = [100] * 300 + [hashing.LARGE_FILE] * 5
    items = _items(tmp_path, sizes)
    record = Recorder()
    hashing.hash_files(items, record, pool, workers=2)
    assert set(record.calls.values()) == {1} and len(record.calls) == len(items)
    me = threading.current_thread().name
    small = [name for (name, entry), size in zip(items, sizes) if size < hashing.LARGE_FILE]
    assert all(record.threads[name] == me for name in small)


def test_from_the_disk_every_thread_takes_a_contiguous_share(tmp_path, pool):
    items = _items(tmp_path, [100] * 400)
    record = Recorder(delay_s=2 * hashing.DISK_BOUND_S)
    hashing.hash_files(items, record, pool, workers=2)
    assert set(record.calls.values()) == {1} and len(record.calls) == len(items)
    threads_in_order = [record.threads[name] for name, _ in items[hashing.PROBE_FILES:]]
    assert len(set(threads_in_order)) >= 2  # the waits overlapped
    # Runs of neighbours on one thread, not alternate files (about 336 runs):
    # a share per thread, plus what finished threads take from the others' backs.
    runs = sum(1 for a, b in zip(threads_in_order, threads_in_order[1:]) if a != b) + 1
    assert runs <= 20
    assert threads_in_order[0] == threading.current_thread().name  # the caller starts its own share


def test_without_a_pool_everything_runs_here(tmp_path):
    items = _items(tmp_path, [10] * 100)
    record = Recorder()
    hashing.hash_files(items, record, None, workers=0)
    assert set(record.threads.values()) == {threading.current_thread().name}
    assert sum(record.calls.values()) == 100
