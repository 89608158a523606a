"""Hashing many files in worker processes: every record as the daemon itself
would make it, workers started only for batches worth one, restarted when
they die, and gone when their daemon is; and the kernel's page-cache answers
the choice of reading ahead rests on."""

from __future__ import annotations

import ctypes
import mmap
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest
from support.daemon import start_daemon
from support.processes import processes_with, running
from support.waiting import wait_until

from ctxwatchd.budget import TreeTooLarge
from ctxwatchd.context import hash_worker, hashing
from ctxwatchd.context.records import in_page_cache, read_ahead
from ctxwatchd.context.tree import Tree

WORKER = hash_worker.__name__.encode()


def hash_workers_of(parent: int) -> list[int]:
    """Pids of the hash worker processes whose parent is `parent`."""
    return processes_with(WORKER, parent=parent)


def _tree(folder: Path, count: int, size: int = 100) -> tuple[Tree, list[hashing.Item]]:
    folder.mkdir(exist_ok=True)
    for i in range(count):
        (folder / f"f{i:05d}").write_bytes(f"file {i}\n".encode() * (size // 8 + 1))
    tree = Tree(str(folder))
    return tree, sorted(tree.children(tree.top, "").items())


def _records(tree: Tree, items: list[hashing.Item]) -> dict[str, tuple[bytes, bytes]]:
    return {rel: (entry.key, entry.blob) for rel, entry in items}


def _made_here(folder: Path) -> dict[str, tuple[bytes, bytes]]:
    """The records the daemon's own thread makes for the same files."""
    tree = Tree(str(folder))
    items = sorted(tree.children(tree.top, "").items())
    for item in items:
        tree.read(*item)
    return _records(tree, items)


def hash_all(tree: Tree, items: list[hashing.Item], workers: hashing.HashWorkers) -> None:
    with hashing.FileHasher(tree, workers) as hasher:
        for item in items:
            hasher.add(item)


@pytest.fixture
def workers():
    pool = hashing.HashWorkers(2)
    yield pool
    pool.close()


def test_a_large_batch_is_hashed_by_worker_processes_as_the_daemon_would(tmp_path, workers):
    tree, items = _tree(tmp_path / "c", 2000, size=3000)
    hash_all(tree, items, workers)
    assert len(hash_workers_of(os.getpid())) == 2
    assert tree.files_hashed == len(items)
    assert all(not entry.unread or entry.racy for _, entry in items)
    assert _records(tree, items) == _made_here(tmp_path / "c")


def test_a_few_files_start_no_process(tmp_path, workers):
    tree, items = _tree(tmp_path / "c", hashing.PROBE_FILES + hashing.BATCH_FILES - 1)
    hash_all(tree, items, workers)
    assert hash_workers_of(os.getpid()) == []
    assert tree.files_hashed == len(items)


def test_workers_killed_between_batches_are_started_again(tmp_path, workers):
    tree, items = _tree(tmp_path / "a", 1000)
    hash_all(tree, items, workers)
    killed = hash_workers_of(os.getpid())
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not any(map(running, killed)), what="the workers dead")
    tree, items = _tree(tmp_path / "b", 1000)
    hash_all(tree, items, workers)
    assert tree.files_hashed == len(items)
    assert _records(tree, items) == _made_here(tmp_path / "b")


def test_a_file_gone_after_listing_is_left_for_the_walk_to_report(tmp_path, workers):
    tree, items = _tree(tmp_path / "c", 1000)
    gone = {rel for rel, _ in items[500::7]}
    for rel in gone:
        (tmp_path / "c" / rel).unlink()
    hash_all(tree, items, workers)
    assert {rel for rel, entry in items if not entry.blob} == gone
    assert tree.files_hashed == len(items) - len(gone)


def test_reading_ahead_changes_no_record(tmp_path):
    tree, items = _tree(tmp_path / "c", 300, size=20000)
    files = [(tree.abspath(rel), entry.key) for rel, entry in items]
    plain = list(hash_worker.decode_reply(hash_worker.answer(hash_worker.HASH, files)[hash_worker.REPLY_HEADER.size :]))
    ahead_answer = hash_worker.answer(hash_worker.HASH_READING_AHEAD, files)
    ahead = list(hash_worker.decode_reply(ahead_answer[hash_worker.REPLY_HEADER.size :]))
    assert [(key, blob) for key, blob, _ in plain] == [(key, blob) for key, blob, _ in ahead]
    assert len(plain) == 300


def _folders(folder: Path, count: int) -> Tree:
    """A tree whose root holds `count` folders, each with a file, a folder, a
    symlink and a file not named in UTF-8 (and the first a FIFO)."""
    for i in range(count):
        sub = folder / f"d{i:04d}"
        (sub / "inner").mkdir(parents=True)
        (sub / "f.txt").write_text(f"{i}\n")
        os.symlink("f.txt", sub / "link")
        (sub / os.fsdecode(b"caf\xe9")).write_bytes(b"latin-1 name")
    os.mkfifo(folder / "d0000" / "fifo")
    return Tree(str(folder))


def _listed(tree: Tree, folders: list[hashing.Item]) -> dict[str, dict[str, tuple[str, bytes]]]:
    """Each folder's listing as the tree holds it: kind and stat key by name."""
    return {
        rel: {name: (child.kind, child.key) for name, child in tree.children(entry, rel).items()}
        for rel, entry in folders
    }


@pytest.fixture
def listed_here(monkeypatch) -> int:
    """Fewer folders listed before the workers list the rest: a smaller tree shows it all."""
    monkeypatch.setattr(hashing, "LISTED_HERE", 16)
    return hashing.LISTED_HERE


def list_ahead_then_walk(tree: Tree, workers: hashing.HashWorkers) -> tuple[list[hashing.Item], list[str]]:
    """As a walk does: every folder of the root asked for ahead, then each
    awaited and listed; (the folders, those the tree listed itself)."""
    folders = sorted(tree.children(tree.top, "").items())
    listed_by_walk: list[str] = []
    list_here = tree._list
    tree._list = lambda path: listed_by_walk.append(path) or list_here(path)  # type: ignore[method-assign]
    with hashing.FileHasher(tree, workers) as hasher:
        for rel, entry in folders:
            hasher.list_ahead(rel, entry)
        for rel, entry in folders:
            hasher.await_listing(rel)
            tree.children(entry, rel)
    return folders, listed_by_walk


def test_folders_past_the_first_ones_are_listed_by_the_workers_as_the_daemon_would(tmp_path, workers, listed_here):
    count = listed_here + 3 * hashing.BATCH_FOLDERS + 5
    tree = _folders(tmp_path / "c", count)
    watched: list[str] = []
    tree.before_listing = watched.append
    folders, listed_by_walk = list_ahead_then_walk(tree, workers)
    # One worker lists: the other stays free for another root's walk (a cold index there).
    assert len(hash_workers_of(os.getpid())) == 1
    assert listed_by_walk == [str(tmp_path / "c" / rel) for rel, _ in folders[:listed_here]]
    # Every folder was watched once, before it was listed, wherever it was listed.
    assert sorted(watched) == sorted([str(tmp_path / "c"), *(str(tmp_path / "c" / rel) for rel, _ in folders)])
    fresh = Tree(str(tmp_path / "c"))
    assert _listed(tree, folders) == _listed(fresh, sorted(fresh.children(fresh.top, "").items()))
    assert tree.listed_entries == len(folders) + 4 * len(folders) + 1


def test_a_folder_gone_before_a_worker_lists_it_is_listed_by_the_walk(tmp_path, workers, listed_here):
    count = listed_here + 2 * hashing.BATCH_FOLDERS
    tree = _folders(tmp_path / "c", count)
    tree.children(tree.top, "")
    gone = [f"d{i:04d}" for i in range(listed_here + 3, count, 5)]
    for rel in gone:
        shutil.rmtree(tmp_path / "c" / rel)
    folders, listed_by_walk = list_ahead_then_walk(tree, workers)
    assert listed_by_walk[listed_here:] == [str(tmp_path / "c" / rel) for rel in gone]
    assert {rel for rel, entry in folders if not entry.children} == set(gone)


def test_listings_from_the_workers_past_the_tree_cap_stop_the_walk_and_leave_the_workers_usable(
    tmp_path, workers, listed_here
):
    count = listed_here + 4 * hashing.BATCH_FOLDERS
    tree = _folders(tmp_path / "c", count)
    # The root and the folders the walk lists itself fit; the workers' listings go past the cap.
    tree.max_entries = count + 4 * (listed_here + hashing.BATCH_FOLDERS) + 1
    with pytest.raises(TreeTooLarge):
        list_ahead_then_walk(tree, workers)
    tree, items = _tree(tmp_path / "d", 1000)
    hash_all(tree, items, workers)
    assert tree.files_hashed == len(items)


def test_a_walk_lists_its_folders_itself_while_another_walk_holds_every_worker(tmp_path, workers, listed_here):
    count = listed_here + 2 * hashing.BATCH_FOLDERS
    tree = _folders(tmp_path / "c", count)
    held = [workers.take(wait=False) for _ in range(2)]  # as another root's cold index holds them
    assert None not in held
    done = threading.Event()
    found: list = []
    threading.Thread(
        target=lambda: (found.extend(list_ahead_then_walk(tree, workers)), done.set()), daemon=True
    ).start()
    assert done.wait(60), "the walk waited for workers another walk holds"
    folders, listed_by_walk = found
    assert listed_by_walk == [str(tmp_path / "c" / rel) for rel, _ in folders]
    for worker in held:
        workers.give_back(worker)


def test_a_walk_does_not_wait_for_a_worker_to_list_folders_it_never_entered(tmp_path, workers, listed_here):
    tree = _folders(tmp_path / "c", listed_here + 2 * hashing.BATCH_FOLDERS)
    folders = sorted(tree.children(tree.top, "").items())
    held = [workers.take(wait=False) for _ in range(2)]  # as another root's cold index holds them
    done = threading.Event()

    def walk() -> None:
        with hashing.FileHasher(tree, workers) as hasher:
            for rel, entry in folders:
                hasher.list_ahead(rel, entry)
        done.set()

    threading.Thread(target=walk, daemon=True).start()
    assert done.wait(60), "the walk waited for a worker to list folders it never entered"
    for worker in held:
        workers.give_back(worker)


def test_the_workers_end_with_their_daemon(tmp_path):
    context = tmp_path / "context"
    _tree(context, 1000)
    (context / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    daemon = start_daemon(tmp_path / "d")
    try:
        daemon.client.register(str(context), name="c")
        daemon.client.reports(["c"])
        workers = hash_workers_of(daemon.process.pid)
        assert workers, "a 1,000-file context is hashed by worker processes"
    finally:
        daemon.process.kill()  # no clean stop: the workers see their requests end
        daemon.process.wait()
        daemon.client.close()
    wait_until(lambda: not any(map(running, workers)), what="the workers gone")


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


def test_closing_stops_the_idle_workers_at_once_and_a_busy_one_when_it_is_given_back(tmp_path):
    pool = hashing.HashWorkers(2)
    tree, items = _tree(tmp_path / "c", 1000)
    hash_all(tree, items, pool)
    assert len(hash_workers_of(os.getpid())) == 2
    busy = pool.take(wait=False)  # as a walk on another thread holds it
    assert busy is not None
    pool.close()  # returns without waiting for that walk
    assert len(hash_workers_of(os.getpid())) == 1
    pool.give_back(busy)
    assert hash_workers_of(os.getpid()) == []


def test_without_workers_every_file_is_hashed_here(tmp_path):
    tree, items = _tree(tmp_path / "c", 2000)
    with hashing.FileHasher(tree, None) as hasher:
        for item in items:
            hasher.add(item)
    assert tree.files_hashed == len(items)
    assert hash_workers_of(os.getpid()) == []


def test_requests_and_answers_larger_than_a_pipe_do_not_wait_on_each_other(tmp_path, workers):
    """Long paths make each request, and large extended attributes each
    answer, bigger than a pipe holds: with two requests in flight, both
    sides writing into full pipes would wait for ever."""
    folder = tmp_path
    for _ in range(8):
        folder = folder / ("d" * 200)
    folder.mkdir(parents=True)
    for i in range(2 * hashing.BATCH_FILES * hashing.IN_FLIGHT):
        path = folder / f"{i:05d}-{'n' * 200}"
        path.write_bytes(b"x")
        os.setxattr(path, "user.big", bytes([i % 251]) * 3000)
    tree = Tree(str(folder))  # every path sent is absolute: about 2,000 bytes each
    items = sorted(tree.children(tree.top, "").items())
    done = threading.Event()
    threading.Thread(target=lambda: (hash_all(tree, items, workers), done.set()), daemon=True).start()
    assert done.wait(120), "hashing hung: the daemon and a worker wait on each other's full pipe"
    assert tree.files_hashed == len(items)
    assert _records(tree, items) == _made_here(folder)
