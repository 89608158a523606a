"""Hashing many files: in worker processes, off the daemon's interpreter lock.

A file's record costs Python work (open, read, hash, stat again, encode).
Done on the daemon's own interpreter, it held the lock every other query
needs: while a large context was indexed, a small one's answer waited. So a
batch of files goes to worker processes (hash_worker.py), one per core, each
on its own interpreter; the calling thread only sends paths and installs the
records that come back, and waits, leaving the lock free, in between.

A few files are not worth a process: they are hashed on the calling thread,
as are the first PROBE_FILES of a batch, which also tell whether the files
come from the page cache. From the disk (a cold index) each worker has the
kernel read ahead of the file it hashes, so the disk always has reads queued.
Where the kernel cannot tell, reads slower than DISK_BOUND_S mean the disk.
"""

from __future__ import annotations

import logging
import os
import queue
import selectors
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from ..budget import check
from . import hash_worker
from .records import in_page_cache
from .tree import Entry, Tree

log = logging.getLogger(__name__)

Item = tuple[str, Entry]  # (tree-relative path, entry)

PROBE_FILES = 64  # files hashed on the calling thread before deciding
WORKER_MIN_FILES = 256  # fewer files than this after the probe are hashed on the calling thread
BATCH_FILES = 256  # files per request to a worker: small enough to keep every worker busy to the end
DISK_BOUND_S = 0.00012  # where the kernel cannot tell: a file read slower than this on average came from the disk
STOP_WAIT_S = 2.0
READING_FILES = "reading the context's files"  # what a query over its time limit was doing


class _Worker:
    """One worker process, started when first needed and again if it exits."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def send(self, files: list[tuple[str, bytes]], reading_ahead: bool) -> None:
        if self._process is None or self._process.poll() is not None:
            self._start()
        assert self._process is not None and self._process.stdin is not None
        hash_worker.write_all(self._process.stdin.fileno(), hash_worker.encode_request(files, reading_ahead))

    def receive(self) -> bytes:
        """The answer to the request sent (OSError when the worker is gone)."""
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        header = hash_worker.read_exactly(fd, hash_worker.REPLY_HEADER.size)
        payload = header and hash_worker.read_exactly(fd, hash_worker.REPLY_HEADER.unpack(header)[0])
        if payload is None:
            raise BrokenPipeError("the hash worker exited")
        return payload

    def fileno(self) -> int:
        assert self._process is not None and self._process.stdout is not None
        return self._process.stdout.fileno()

    def stop(self) -> None:
        """End the process (its pipes closed, it exits) and wait for it."""
        process, self._process = self._process, None
        if process is None:
            return
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()
        try:
            process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _start(self) -> None:
        self.stop()  # reaps one that exited on its own (idle)
        self._process = subprocess.Popen(
            [sys.executable, "-m", hash_worker.__name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd="/",  # no module of the daemon's working folder is imported by accident
        )


class HashWorkers:
    """Worker processes shared by every root: a batch takes the workers that
    are free (at least one: it waits for one if need be)."""

    def __init__(self, count: int) -> None:
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        for _ in range(count):
            self._idle.put(_Worker())
        self._all = count

    def close(self) -> None:
        for _ in range(self._all):
            self._idle.get().stop()

    def hash(self, tree: Tree, items: list[Item], reading_ahead: bool) -> None:
        """Hash every item; a file a worker could not read is left as it was
        (the walk reads it and reports why)."""
        batches = deque(items[start : start + BATCH_FILES] for start in range(0, len(items), BATCH_FILES))
        with self._taken() as workers, selectors.DefaultSelector() as waiting:
            for worker in workers:
                if batches:
                    self._send(worker, waiting, batches.popleft(), tree, reading_ahead)
            while waiting.get_map():
                for ready, _ in waiting.select():
                    worker, batch = ready.data
                    waiting.unregister(worker)
                    self._install(worker, batch, tree, reading_ahead)
                    check(READING_FILES)
                    if batches:
                        self._send(worker, waiting, batches.popleft(), tree, reading_ahead)

    @contextmanager
    def _taken(self) -> Iterator[list[_Worker]]:
        taken = [self._idle.get()]
        while True:
            try:
                taken.append(self._idle.get_nowait())
            except queue.Empty:
                break
        busy = list(taken)
        try:
            yield busy
            busy.clear()
        finally:
            for worker in busy:  # left with a request unanswered (an error, the time limit): start afresh
                worker.stop()
            for worker in taken:
                self._idle.put(worker)

    @staticmethod
    def _send(
        worker: _Worker, waiting: selectors.BaseSelector, batch: list[Item], tree: Tree, reading_ahead: bool
    ) -> None:
        files = [(tree.abspath(rel), entry.key) for rel, entry in batch]
        for _ in range(2):  # once more on a new process: this one may have exited since (idle)
            try:
                worker.send(files, reading_ahead)
            except OSError as error:
                worker.stop()
                failure = error
            else:
                waiting.register(worker, selectors.EVENT_READ, (worker, batch))
                return
        log.warning("no hash worker could start (%s); %d files hashed in the daemon instead", failure, len(batch))
        for item in batch:
            hash_quietly(tree, item)

    @staticmethod
    def _install(worker: _Worker, batch: list[Item], tree: Tree, reading_ahead: bool) -> None:
        try:
            payload = worker.receive()
        except OSError as error:  # it died on this batch: the calling thread does it
            log.warning("a hash worker stopped (%s); %d files hashed in the daemon instead", error, len(batch))
            worker.stop()
            for item in batch:
                hash_quietly(tree, item)
            return
        for (_, entry), hashed in zip(batch, hash_worker.decode_reply(payload), strict=True):
            if hashed is not None:
                tree.install(entry, *hashed)


def hash_files(tree: Tree, files: list[Item], workers: HashWorkers | None) -> None:
    """Hash every item (see the module's docstring for where)."""
    probe, rest = files[:PROBE_FILES], files[PROBE_FILES:]
    cached = [in_page_cache(tree.abspath(rel)) for rel, _ in probe] if rest else []  # before reading puts them there
    started = time.perf_counter()
    for item in probe:
        hash_quietly(tree, item)
    if not rest:
        return
    known = [answer for answer in cached if answer is not None]  # a file gone meanwhile says nothing
    if known:
        from_disk = known.count(False) * 2 > len(known)
    else:
        from_disk = (time.perf_counter() - started) / len(probe) > DISK_BOUND_S
    if workers is not None and len(rest) >= WORKER_MIN_FILES:
        workers.hash(tree, rest, from_disk)
    else:
        for item in rest:
            hash_quietly(tree, item)


def hash_quietly(tree: Tree, item: Item) -> None:
    try:
        tree.read(*item)
    except OSError:
        pass  # the walk reads it again and reports the error on the step


def worker_count() -> int:
    """One worker per core this process may run on."""
    return len(os.sched_getaffinity(0))
