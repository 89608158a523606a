"""Hashing the files a walk finds, and listing the folders it enters: in
worker processes, off the daemon's interpreter lock.

A file's record costs Python work (open, read, hash, stat again, encode).
Done on the daemon's own interpreter, it held the lock every other query
needs: while a large context was indexed, a small one's answer waited. So
a walk hands the files it finds to a FileHasher, which sends them in
batches to worker processes (hash_worker.py: one per core, each on its own
interpreter, niced below the daemon's threads) while the walk goes on; the
walk's thread only sends paths and installs the records that come back.

Listing a folder (a stat of every entry) is most of a restart, which reads
no file: past the first LISTED_HERE folders, the walk has the workers list
the folders it will enter next (list_ahead: each is watched first, so what
changes after its listing comes as an event), and installs each listing as
it reaches that folder (await_listing). A folder whose listing failed in
the worker is listed on the walk's thread, which reports the error. A walk
that only lists holds one worker: a cold index of another root started
meanwhile finds the other free.

The first PROBE_FILES files are hashed on the walk's thread and tell whether
the files come from the page cache (the kernel says so; where it cannot,
reads slower than DISK_BOUND_S mean the disk): from the disk, each worker
has the kernel read ahead of the file it hashes, so the disk always has
reads queued. A walk that finds fewer than a batch more hashes them itself:
not worth a process.
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
from pathlib import Path
from typing import NamedTuple

from ..budget import check
from . import hash_worker
from .records import in_page_cache
from .tree import Entry, Tree

log = logging.getLogger(__name__)

Item = tuple[str, Entry]  # (tree-relative path, entry)

PROBE_FILES = 64  # files hashed on the calling thread before deciding
# Files per request to a worker: small enough to keep every worker busy to
# the end. A walk that finds fewer after the probe hashes them itself.
BATCH_FILES = 256
LISTED_HERE = 1024  # folders a walk lists itself before the workers list the rest: a small tree needs no process
BATCH_FOLDERS = 32  # folders per listing request
IN_FLIGHT = 2  # batches sent to one worker at a time: the next waits in its pipe
WAITING_BATCHES = 8  # batches found and not sent, past which the walk waits for the workers
DISK_BOUND_S = 0.00012  # where the kernel cannot tell: a file read slower than this on average came from the disk
STOP_WAIT_S = 2.0  # how long a stopped worker may take to exit before it is killed
READING_FILES = "reading the context's files"  # what a query over its time limit was doing
PACKAGE_FOLDER = str(Path(hash_worker.__file__).resolve().parents[2])  # where `ctxwatchd` is found


class _Batch(NamedTuple):
    listing: bool  # folders to list, else files to hash
    items: list[Item]


class _Worker:
    """One worker process, started when first needed and again if it exits."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def send(self, request: bytes) -> None:
        if self._process is None or self._process.poll() is not None:
            self._start()
        assert self._process is not None and self._process.stdin is not None
        hash_worker.write_all(self._process.stdin.fileno(), request)

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
            # Without `site` (-S) and with only the package's folder to import
            # from, a worker's interpreter costs a few megabytes less.
            [sys.executable, "-S", "-m", hash_worker.__name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd="/",  # no module of the daemon's working folder is imported by accident
            env={**os.environ, "PYTHONPATH": PACKAGE_FOLDER},
        )


class HashWorkers:
    """The worker processes, shared by every root's walks."""

    def __init__(self, count: int) -> None:
        # Last in, first out: a walk that gives a worker back and takes one
        # again gets the same process, not a second one started for nothing.
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        for _ in range(count):
            self._idle.put(_Worker())
        self._closed = False

    def take(self, wait: bool) -> _Worker | None:
        """An idle worker; None when none is (and `wait` is false)."""
        try:
            return self._idle.get(block=wait)
        except queue.Empty:
            return None

    def give_back(self, worker: _Worker) -> None:
        if self._closed:
            worker.stop()
        else:
            self._idle.put(worker)

    def close(self) -> None:
        """Stop the idle workers now, and the others when they are given back
        (a walk still running keeps its workers until it ends: never waited for)."""
        self._closed = True
        while (worker := self.take(wait=False)) is not None:
            worker.stop()


class FileHasher:
    """Hashes the files one walk finds, as it finds them: full batches go to
    idle workers while the walk goes on (see the module's docstring), up to
    IN_FLIGHT per worker so that none waits for the walk's thread between
    two. Used as a context manager: leaving it waits for every answer."""

    def __init__(self, tree: Tree, workers: HashWorkers | None) -> None:
        self._tree = tree
        self._workers = workers
        self._probed = 0
        self._probe_answers: list[bool] = []  # the kernel's, where it could tell
        self._probe_seconds = 0.0
        self._reading_ahead: bool | None = None  # decided by the probe: the files come from the disk
        self._found: list[Item] = []  # after the probe, not in a batch yet
        self._folders_asked = 0  # not listed yet, by list_ahead()
        self._folders_found: list[Item] = []  # to be listed by a worker, not in a batch yet
        self._listing: set[str] = set()  # folders a worker is to list: their listings are not installed yet
        self._unsent: set[str] = set()  # those of them not sent to a worker yet
        self._batches: deque[_Batch] = deque()  # files to hash, not sent yet
        self._folder_batches: deque[_Batch] = deque()  # folders to list, not sent yet: sent first
        self._sent_any = False
        self._in_flight: dict[_Worker, deque[_Batch]] = {}  # the workers this walk holds: batches sent
        self._answers = selectors.DefaultSelector()  # to wait for the answers of the workers in _waited_on
        self._waited_on: set[_Worker] = set()

    def __enter__(self) -> FileHasher:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *rest: object) -> None:
        try:
            if error_type is None:
                self._finish()
        finally:
            for worker in list(self._in_flight):  # left with requests unanswered (an error, the time limit)
                self._release(worker, stop=True)
            self._answers.close()

    def add(self, item: Item) -> None:
        if self._reading_ahead is None:
            self._add_to_probe(item)
            return
        self._found.append(item)
        if len(self._found) >= BATCH_FILES:
            self._batches.append(_Batch(False, self._found))
            self._found = []
            self.poll()
            while len(self._batches) > WAITING_BATCHES:  # the walk is ahead of the workers: memory stays flat
                self._wait_for_answers()

    def list_ahead(self, rel: str, entry: Entry) -> None:
        """Have a worker list the folder at `rel`, which the walk enters
        later, unless it is listed already (see the module's docstring)."""
        if self._workers is None or entry.children is not None:
            return
        self._folders_asked += 1
        if self._folders_asked <= LISTED_HERE:
            return
        self._tree.before_listing(self._tree.abspath(rel))
        self._listing.add(rel)
        self._unsent.add(rel)
        self._folders_found.append((rel, entry))
        if len(self._folders_found) >= BATCH_FOLDERS:
            self._batch_folders()
            self.poll()

    def await_listing(self, rel: str) -> None:
        """Before the walk lists the folder at `rel`: wait for its listing if
        a worker is making it (installed then, or left for the walk when the
        worker failed). If this walk holds no worker and none is free
        (another root's walk holds them), the walk lists it, and the others
        not sent yet, itself: it never waits for another root."""
        if rel in self._unsent:
            self._batch_folders()
            self._send_waiting(wait=False)
            if rel in self._unsent and not self._in_flight:
                self._take_back_folders()
                return
        while rel in self._listing:
            self._wait_for_answers()

    def _take_back_folders(self) -> None:
        """Forget the folders not sent to a worker yet: the walk lists them."""
        self._folders_found = []
        self._folder_batches.clear()
        self._listing -= self._unsent
        self._unsent.clear()

    def _batch_folders(self) -> None:
        if self._folders_found:
            self._folder_batches.append(_Batch(True, self._folders_found))
            self._folders_found = []

    def _waiting(self) -> bool:
        """Whether batches wait to be sent."""
        return bool(self._folder_batches or self._batches)

    def _next_batch(self) -> _Batch:
        """Folders first: the walk waits for their listings."""
        return self._folder_batches.popleft() if self._folder_batches else self._batches.popleft()

    def poll(self) -> None:
        """Install the answers that came, and send batches to workers (never
        waits). Called for every folder a walk enters: a restart's walk,
        which hashes nothing, makes no system call here."""
        if self._waited_on:
            for ready, _ in self._answers.select(timeout=0):
                self._install(ready.data)
        if self._waiting():
            self._send_waiting(wait=False)

    def _add_to_probe(self, item: Item) -> None:
        """Hash one of the first files here; after PROBE_FILES, decide where the files come from."""
        cached = in_page_cache(self._tree.abspath(item[0]))  # before reading puts it there
        started = time.perf_counter()
        hash_quietly(self._tree, item)
        self._probe_seconds += time.perf_counter() - started
        self._probed += 1
        if cached is not None:  # a file gone meanwhile says nothing
            self._probe_answers.append(cached)
        if self._probed < PROBE_FILES:
            return
        if self._probe_answers:
            self._reading_ahead = self._probe_answers.count(False) * 2 > len(self._probe_answers)
        else:
            self._reading_ahead = self._probe_seconds / self._probed > DISK_BOUND_S

    def _finish(self) -> None:
        # Folders asked for and not entered are not worth waiting for a worker.
        self._take_back_folders()
        if self._found and not self._sent_any and not self._batches:
            for item in self._found:  # fewer than a batch in all: not worth a process
                hash_quietly(self._tree, item)
        elif self._found:
            self._batches.append(_Batch(False, self._found))
        self._found = []
        while self._waiting() or self._in_flight:
            self._wait_for_answers()

    def _wait_for_answers(self) -> None:
        """Send what waits, then wait for an answer and install it (when a
        worker has some: without workers the batches were hashed here)."""
        self._send_waiting(wait=not self._in_flight)
        for ready, _ in self._answers.select() if self._waited_on else ():
            self._install(ready.data)
            check(READING_FILES)

    def _send_waiting(self, wait: bool) -> None:
        """Send waiting batches: to the workers held, then to idle ones (with
        `wait`, waiting for one if none is held)."""
        if self._workers is None:  # no workers at all (nor folders to list): this thread hashes
            while self._batches:
                for item in self._batches.popleft().items:
                    hash_quietly(self._tree, item)
            return
        for held, sent in list(self._in_flight.items()):
            while self._waiting() and len(sent) < IN_FLIGHT and held in self._in_flight:
                self._send(held, self._next_batch())
        while self._waiting():
            if self._in_flight and not self._batches:
                return  # folders alone go to one worker: the other stays free for another root's walk
            worker = self._workers.take(wait)
            if worker is None:
                return
            wait = False
            self._in_flight[worker] = deque()
            while self._waiting() and worker in self._in_flight and len(self._in_flight[worker]) < IN_FLIGHT:
                self._send(worker, self._next_batch())

    def _send(self, worker: _Worker, batch: _Batch) -> None:
        if batch.listing:
            request = hash_worker.encode_listing_request([self._tree.abspath(rel) for rel, _ in batch.items])
        else:
            files = [(self._tree.abspath(rel), entry.key) for rel, entry in batch.items]
            request = hash_worker.encode_request(files, bool(self._reading_ahead))
        sent = self._in_flight[worker]
        for _ in range(1 if sent else 2):  # an idle one may have exited since its last batch: a new one
            try:
                worker.send(request)
            except OSError as error:
                failure = error
                if not sent:
                    worker.stop()
            else:
                if worker not in self._waited_on:
                    self._answers.register(worker, selectors.EVENT_READ, worker)
                    self._waited_on.add(worker)
                sent.append(batch)
                self._sent_any = True
                if batch.listing:
                    self._unsent.difference_update(rel for rel, _ in batch.items)
                return
        self._hash_here(worker, failure, [*sent, batch])

    def _install(self, worker: _Worker) -> None:
        try:
            payload = worker.receive()
        except OSError as error:  # it died: this thread does what it had
            self._hash_here(worker, error, list(self._in_flight[worker]))
            return
        batch = self._in_flight[worker].popleft()
        if self._waiting():  # keep it busy before installing: the two overlap
            self._send(worker, self._next_batch())
        if worker in self._in_flight and not self._in_flight[worker]:
            self._release(worker)
        if batch.listing:
            for (rel, entry), listing in zip(batch.items, hash_worker.decode_listings(payload), strict=True):
                self._listing.discard(rel)
                if listing is not None:  # else the walk lists it, and says what is wrong
                    self._tree.install_listing(rel, entry, listing)
            return
        for (_, entry), hashed in zip(batch.items, hash_worker.decode_reply(payload), strict=True):
            if hashed is not None:
                self._tree.install(entry, *hashed)

    def _hash_here(self, worker: _Worker, error: OSError, batches: list[_Batch]) -> None:
        """A worker failed: stop it, and hash what it had on this thread
        (the folders it had are listed by the walk when it reaches them)."""
        self._release(worker, stop=True)
        files = [item for batch in batches if not batch.listing for item in batch.items]
        folders = {rel for batch in batches if batch.listing for rel, _ in batch.items}
        self._listing -= folders
        self._unsent -= folders
        log.warning("a hash worker failed (%s); %d files hashed in the daemon instead", error, len(files))
        for item in files:
            hash_quietly(self._tree, item)

    def _release(self, worker: _Worker, stop: bool = False) -> None:
        """Give a worker back to the pool (stopped first, if asked: it is
        started afresh when next needed)."""
        del self._in_flight[worker]
        if worker in self._waited_on:  # before stopping: its pipe is still open
            self._answers.unregister(worker)
            self._waited_on.discard(worker)
        if stop:
            worker.stop()
        assert self._workers is not None, "only a taken worker is given back"
        self._workers.give_back(worker)


def hash_quietly(tree: Tree, item: Item) -> None:
    try:
        tree.read(*item)
    except OSError:
        pass  # the walk reads it again and reports the error on the step


def worker_count() -> int:
    """One worker per core this process may run on."""
    return len(os.sched_getaffinity(0))
