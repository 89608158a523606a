"""Hostile build contexts: links out of the context and in loops, special
files, unreadable files, a huge file, very deep and very wide folders, names
that are not UTF-8, and files that vanish while they are hashed.

Each test asserts the precise outcome and that the daemon still serves
afterwards. The module runs its own daemon (a hang here must not wedge the
session's shared one) and talks to it through a client with a deadline, so a
daemon that blocks fails the test instead of hanging the run.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.contexts import make_context
from support.daemon import Daemon, guarded_client, start_daemon, stop_or_kill
from support.local import LocalClient

from ctxwatch import spawn
from ctxwatch.client import CtxwatchClient, CtxwatchError
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

DEADLINE_S = 120.0  # a watchdog, not a speed bar: only a hung daemon gets near it
MiB = 1 << 20


# -- fixtures and helpers -------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, CtxwatchClient]]:
    daemon = start_daemon(tmp_path_factory.mktemp("hostile-trees-daemon"))
    client = guarded_client(daemon.socket, DEADLINE_S)
    yield daemon, client
    client.close()
    daemon.client.close()
    stop_or_kill(daemon.process)


_names = iter(range(1_000_000))


def register(client: CtxwatchClient, ctx: Path, dockerfile: str | None = None) -> str:
    name = f"hostile-{next(_names)}"
    client.register(str(ctx), dockerfile=dockerfile, name=name)
    return name


def report_of(client: CtxwatchClient, name: str) -> pb.Report:
    (report,) = client.reports([pb.ContextRef(name=name)])
    assert report.error == "", report.error
    return report


def context_steps(report: pb.Report) -> list[pb.Step]:
    """The steps that read the context (the tests' Dockerfiles start FROM scratch)."""
    return [s for s in report.steps if s.instruction.split()[0].upper() in ("COPY", "ADD")]


def changes(step: pb.Step) -> set[tuple[str, int]]:
    return {(c.path, c.kind) for c in step.changed_paths}


def assert_serving(daemon: Daemon, client: CtxwatchClient) -> None:
    assert daemon.process.poll() is None, "ctxwatchd exited"
    assert isinstance(client.list(), list)


def assert_cached_after_build(client: CtxwatchClient, name: str) -> None:
    response = client.mark_built(pb.ContextRef(name=name))
    assert response.failed == ""
    assert report_of(client, name).all_cached


class ReaderDetector:
    """Notices anyone opening a FIFO for reading, and unblocks them (a blocked
    open of a FIFO returns once a writer opens it): the test fails instead of
    hanging. Opening for writing without blocking succeeds only while a
    reader has the FIFO open."""

    def __init__(self, fifo: Path) -> None:
        self.fifo = fifo
        self.readers_seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(30_000):  # bounded: the test's own deadline ends it long before
            if self._stop.wait(0.02):
                return
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue  # ENXIO: nobody has it open for reading
            self.readers_seen += 1
            os.close(fd)

    def __enter__(self) -> ReaderDetector:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


# -- symlinks -------------------------------------------------------------------------


def outside_files(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_text("outside 1\n")
    (outside / "other.txt").write_text("other\n")
    (outside / "dir" / "inner.txt").write_text("inner\n")
    return outside


def test_symlinks_out_of_the_context_in_a_copied_folder_are_recorded_as_links(served, tmp_path):
    daemon, client = served
    outside = outside_files(tmp_path)
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY data/ /data/\n", {"data/keep.txt": "keep\n"})
    os.symlink(outside / "secret.txt", ctx / "data" / "abs")
    os.symlink("../../outside/secret.txt", ctx / "data" / "rel")
    os.symlink(outside / "dir", ctx / "data" / "absdir")
    name = register(client, ctx)
    (step,) = context_steps(report_of(client, name))
    assert (step.status, step.cause) == (pb.STEP_STATUS_INVALIDATED, pb.CAUSE_NEVER_BUILT)
    assert_cached_after_build(client, name)

    # Everything the links point at changes; the links themselves do not.
    (outside / "secret.txt").write_text("outside 2, longer\n")
    os.chmod(outside / "secret.txt", 0o600)
    (outside / "dir" / "inner.txt").write_text("inner 2\n")
    (outside / "dir" / "new.txt").write_text("new\n")
    assert report_of(client, name).all_cached, "a file outside the context invalidated a COPY"

    # The link is recorded as a link: its target text counts.
    os.symlink("../../outside/other.txt", ctx / "data" / "rel.new")
    os.replace(ctx / "data" / "rel.new", ctx / "data" / "rel")
    (step,) = context_steps(report_of(client, name))
    assert step.status == pb.STEP_STATUS_INVALIDATED
    assert changes(step) == {("data/rel", pb.CHANGE_KIND_SYMLINK_TARGET)}
    assert "outside/other.txt" in step.changed_paths[0].detail
    assert_serving(daemon, client)


def test_absolute_symlink_source_resolves_inside_the_context(served, tmp_path):
    """`COPY data/abs` with abs -> /<outside>/secret.txt reads <context>/<outside>/secret.txt."""
    daemon, client = served
    outside = outside_files(tmp_path)
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY data/abs /x\n", {"data/keep.txt": "keep\n"})
    os.symlink(outside / "secret.txt", ctx / "data" / "abs")
    name = register(client, ctx)
    (step,) = context_steps(report_of(client, name))
    assert step.status == pb.STEP_STATUS_ERROR
    assert "not found" in step.error and "data/abs" in step.error

    inside = ctx / str(outside / "secret.txt").lstrip("/")
    inside.parent.mkdir(parents=True)
    inside.write_text("inside 1\n")
    (step,) = context_steps(report_of(client, name))
    assert (step.status, step.cause) == (pb.STEP_STATUS_INVALIDATED, pb.CAUSE_NEVER_BUILT)
    assert_cached_after_build(client, name)
    (outside / "secret.txt").write_text("outside 2\n")
    assert report_of(client, name).all_cached
    inside.write_text("inside 2\n")
    (step,) = context_steps(report_of(client, name))
    assert (step.status, step.cause) == (pb.STEP_STATUS_INVALIDATED, pb.CAUSE_INPUTS_CHANGED)
    assert_serving(daemon, client)


def test_relative_symlink_source_cannot_climb_out_of_the_context(served, tmp_path):
    """`..` stops at the context root: data/rel -> ../../outside/secret.txt is <context>/outside/secret.txt."""
    daemon, client = served
    outside = outside_files(tmp_path)
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY data/rel /x\n", {"data/keep.txt": "keep\n"})
    os.symlink("../../outside/secret.txt", ctx / "data" / "rel")
    assert (ctx / "data" / "rel").read_text() == "outside 1\n"  # the host would follow it out
    name = register(client, ctx)
    (step,) = context_steps(report_of(client, name))
    assert step.status == pb.STEP_STATUS_ERROR
    assert "not found" in step.error and "data/rel" in step.error

    (ctx / "outside").mkdir()
    (ctx / "outside" / "secret.txt").write_text("inside 1\n")
    (step,) = context_steps(report_of(client, name))
    assert (step.status, step.cause) == (pb.STEP_STATUS_INVALIDATED, pb.CAUSE_NEVER_BUILT)
    assert_cached_after_build(client, name)
    (outside / "secret.txt").write_text("outside 2\n")
    assert report_of(client, name).all_cached
    (ctx / "outside" / "secret.txt").write_text("inside 2\n")
    (step,) = context_steps(report_of(client, name))
    assert (step.status, step.cause) == (pb.STEP_STATUS_INVALIDATED, pb.CAUSE_INPUTS_CHANGED)
    assert_serving(daemon, client)


def test_symlinked_parent_folder_of_a_copy_source_is_followed_inside_the_context(served, tmp_path):
    """`COPY linkdir/f.txt` with linkdir -> real: BuildKit's checksum
    (cache/contenthash getFollowLinksWalk) resolves symlinks in every parent
    component of a source, scoped to the context, so this copies real/f.txt.
    cache/keys.py _follow_symlinks only follows the last component: the step
    is reported as an ERROR '"/linkdir/f.txt": not found'."""
    daemon, client = served
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY linkdir/f.txt /x\n", {"real/f.txt": "one\n"})
    os.symlink("real", ctx / "linkdir")
    name = register(client, ctx)
    (step,) = context_steps(report_of(client, name))
    assert (step.status, step.error) == (pb.STEP_STATUS_INVALIDATED, ""), step.error
    assert_cached_after_build(client, name)
    (ctx / "real" / "f.txt").write_text("two\n")
    (step,) = context_steps(report_of(client, name))
    assert (step.status, step.cause) == (pb.STEP_STATUS_INVALIDATED, pb.CAUSE_INPUTS_CHANGED)
    assert_serving(daemon, client)


def test_symlink_loops_in_a_copied_folder_are_copied_as_links(served, tmp_path):
    daemon, client = served
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY data/ /data/\n", {"data/keep.txt": "keep\n"})
    os.symlink("b", ctx / "data" / "a")
    os.symlink("a", ctx / "data" / "b")
    os.symlink("self", ctx / "data" / "self")
    os.symlink(".", ctx / "data" / "here")  # a folder containing itself
    name = register(client, ctx)
    (step,) = context_steps(report_of(client, name))
    assert (step.status, step.cause) == (pb.STEP_STATUS_INVALIDATED, pb.CAUSE_NEVER_BUILT)
    assert_cached_after_build(client, name)
    os.unlink(ctx / "data" / "a")
    os.symlink("c", ctx / "data" / "a")
    (step,) = context_steps(report_of(client, name))
    assert changes(step) == {("data/a", pb.CHANGE_KIND_SYMLINK_TARGET)}
    assert_serving(daemon, client)


@pytest.mark.parametrize("source", ["data/a", "data/self", "data/here/here/a"])
def test_symlink_loop_as_a_copy_source_is_an_error(served, tmp_path, source):
    daemon, client = served
    ctx = make_context(tmp_path / "ctx", f"FROM scratch\nCOPY {source} /x\n", {"data/keep.txt": "keep\n"})
    os.symlink("b", ctx / "data" / "a")
    os.symlink("a", ctx / "data" / "b")
    os.symlink("self", ctx / "data" / "self")
    os.symlink(".", ctx / "data" / "here")
    name = register(client, ctx)
    (step,) = context_steps(report_of(client, name))
    assert step.status == pb.STEP_STATUS_ERROR
    assert source in step.error
    assert_serving(daemon, client)


# -- special files ----------------------------------------------------------------------


def test_fifo_in_a_copied_folder_is_never_opened(served, tmp_path):
    daemon, client = served
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY data/ /data/\n", {"data/keep.txt": "keep\n"})
    fifo = ctx / "data" / "fifo"
    os.mkfifo(fifo, 0o644)
    os.chmod(fifo, 0o644)
    with ReaderDetector(fifo) as detector:
        name = register(client, ctx)
        (step,) = context_steps(report_of(client, name))
        assert (step.status, step.cause) == (pb.STEP_STATUS_INVALIDATED, pb.CAUSE_NEVER_BUILT)
        assert_cached_after_build(client, name)
        os.chmod(fifo, 0o600)
        (step,) = context_steps(report_of(client, name))
    assert detector.readers_seen == 0, "the daemon opened the FIFO for reading"
    assert step.status == pb.STEP_STATUS_INVALIDATED
    assert [(c.path, c.kind, c.detail) for c in step.changed_paths] == [
        ("data/fifo", pb.CHANGE_KIND_MODE, "mode 0644 -> 0600")
    ]
    assert_serving(daemon, client)


@pytest.mark.parametrize("special", [".dockerignore", "Dockerfile"])
def test_fifo_in_place_of_the_dockerignore_or_dockerfile_is_never_opened(served, tmp_path, special):
    """Found failing: engine.WatchedFile.read() opened whatever was at the path;
    a FIFO there blocked the daemon, holding the engine lock (every context
    stops answering), until someone wrote to it. Expected: never opened; the
    context's report is an error naming the file."""
    daemon, client = served
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY keep.txt /keep.txt\n", {"keep.txt": "keep\n"})
    name = register(client, ctx)
    report_of(client, name)
    (ctx / special).unlink(missing_ok=True)
    os.mkfifo(ctx / special)
    try:
        with ReaderDetector(ctx / special) as detector:
            (report,) = client.reports([pb.ContextRef(name=name)])
    finally:
        (ctx / special).unlink()
    assert detector.readers_seen == 0, f"the daemon opened the FIFO {special} for reading (and blocked on it)"
    assert str(ctx / special) in report.error and report.steps == []
    assert_serving(daemon, client)


def bound_unix_socket(path: Path) -> socket.socket:
    """A listening Unix socket at `path` (bound at a short path, then moved:
    socket paths are limited to ~108 bytes)."""
    short = Path(tempfile.mkdtemp(prefix="cw")) / "s"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(short))
    server.listen(1)
    os.rename(short, path)
    os.rmdir(short.parent)
    return server


def test_unix_socket_and_device_nodes_are_never_opened(served, tmp_path):
    """A socket cannot be opened at all, and char device 1,5 (/dev/zero's)
    never ends: either read would show (an error status, or no answer)."""
    daemon, client = served
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY data/ /data/\n", {"data/keep.txt": "keep\n"})
    specials = ["data/sock"]
    listener = bound_unix_socket(ctx / "data" / "sock")
    try:
        for rel, minor in (("data/null", 3), ("data/zero", 5)):
            try:
                os.mknod(ctx / rel, stat.S_IFCHR | 0o644, os.makedev(1, minor))
            except PermissionError:
                continue  # no CAP_MKNOD here: the socket case still runs
            specials.append(rel)
        for rel in specials:
            os.chmod(ctx / rel, 0o644)
        name = register(client, ctx)
        (step,) = context_steps(report_of(client, name))
        assert (step.status, step.cause, step.error) == (pb.STEP_STATUS_INVALIDATED, pb.CAUSE_NEVER_BUILT, "")
        assert_cached_after_build(client, name)

        for rel in specials:
            os.chmod(ctx / rel, 0o600)
        (step,) = context_steps(report_of(client, name))
        assert changes(step) == {(rel, pb.CHANGE_KIND_MODE) for rel in specials}
        assert_cached_after_build(client, name)

        # They were special files: replacing them by regular files changes their type.
        for rel in specials:
            os.unlink(ctx / rel)
            (ctx / rel).write_text("now a regular file\n")
            os.chmod(ctx / rel, 0o600)
        (step,) = context_steps(report_of(client, name))
        assert {(c.path, c.kind, c.detail) for c in step.changed_paths} == {
            (rel, pb.CHANGE_KIND_TYPE, "special file -> file") for rel in specials
        }
    finally:
        listener.close()
    assert_serving(daemon, client)


# -- unreadable files: the daemon runs as an unprivileged user ---------------------------

NOBODY = 65534


@pytest.fixture(scope="module")
def nobody_daemon() -> Iterator[tuple[Path, subprocess.Popen, CtxwatchClient]]:
    """A daemon running as `nobody` (root reads any file, so it cannot show
    what an unreadable file does), on a folder nobody can reach."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the daemon as an unprivileged user")
    parent = "/var/tmp" if os.path.isdir("/var/tmp") else None
    base = Path(tempfile.mkdtemp(prefix="ctxw-nobody-", dir=parent))
    try:
        os.chown(base, NOBODY, NOBODY)
        sock, log = base / "run" / "d.sock", base / "ctxwatchd.log"
        # The checkout may sit in a folder `nobody` cannot enter: give the
        # daemon a copy of the packages it imports.
        env = {**os.environ, "PYTHONPATH": str(copy_packages_for_nobody(base / "lib"))}
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [
                    "setpriv",
                    f"--reuid={NOBODY}",
                    f"--regid={NOBODY}",
                    "--clear-groups",
                    sys.executable,
                    "-s",
                    "-m",
                    "ctxwatchd",
                    "--socket",
                    str(sock),
                    "--state-dir",
                    str(base / "state"),
                ],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        deadline = time.monotonic() + 30
        while not spawn.is_serving(sock):
            if process.poll() is not None or time.monotonic() > deadline:
                stop_or_kill(process)
                pytest.skip(f"ctxwatchd cannot run as nobody here:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        client = guarded_client(sock, DEADLINE_S)
        yield base, process, client
        client.close()
        stop_or_kill(process)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def copy_packages_for_nobody(lib: Path) -> Path:
    """A copy of ctxwatchd, ctxwatch and what they import, readable by anyone."""
    import google.protobuf

    lib.mkdir(parents=True)
    shutil.copytree(
        Path(google.protobuf.__file__).parents[1], lib / "google", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in (
        "ctxwatchd",
        "ctxwatch",
        "grpc",
        "grpc_health",
        "grpc_reflection",
        "watchdog",
        "platformdirs",
        "typing_extensions",
    ):
        source = Path(importlib.import_module(name).__file__)
        if source.name == "__init__.py":
            shutil.copytree(source.parent, lib / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:  # a single-file module
            shutil.copy2(source, lib / source.name)
    return lib


def nobody_context(base: Path, name: str, dockerfile: str, files: dict[str, str]) -> Path:
    ctx = make_context(base / name, dockerfile, files)
    for root, _dirs, names in os.walk(ctx):
        os.chown(root, NOBODY, NOBODY)
        for entry in names:
            os.chown(os.path.join(root, entry), NOBODY, NOBODY)
    return ctx


def test_unreadable_file_is_a_step_error_naming_it(nobody_daemon):
    base, process, client = nobody_daemon
    ctx = nobody_context(
        base,
        "unreadable-file",
        "FROM scratch\nCOPY data/ /data/\nCOPY data/ok.txt /ok.txt\n",
        {"data/secret.txt": "secret\n", "data/ok.txt": "ok\n"},
    )
    (ctx / "Dockerfile.single").write_text("FROM scratch\nCOPY data/secret.txt /s\n")
    os.chmod(ctx / "data" / "secret.txt", 0)
    folder = register(client, ctx)
    single = register(client, ctx, "Dockerfile.single")

    first, second = context_steps(report_of(client, folder))
    assert first.status == pb.STEP_STATUS_ERROR
    assert "data/secret.txt" in first.error and "permission denied" in first.error.lower()
    assert (second.status, second.cause, second.upstream_step) == (
        pb.STEP_STATUS_INVALIDATED,
        pb.CAUSE_UPSTREAM,
        first.index,
    )
    (step,) = context_steps(report_of(client, single))
    assert step.status == pb.STEP_STATUS_ERROR and "data/secret.txt" in step.error

    os.chmod(ctx / "data" / "secret.txt", 0o644)
    for name in (folder, single):
        assert {s.status for s in report_of(client, name).steps} == {pb.STEP_STATUS_INVALIDATED}
    assert process.poll() is None and isinstance(client.list(), list)


def test_unreadable_folder_is_a_step_error_naming_it(nobody_daemon):
    """A folder the daemon cannot list, inside a copied folder: the COPY step
    is STEP_STATUS_ERROR naming the folder. Found failing: the whole GetReports
    call failed with INTERNAL (a PermissionError from Tree._list, reached
    through ContextView._visit, was not turned into a ContextReadError)."""
    base, process, client = nobody_daemon
    ctx = nobody_context(
        base, "unreadable-folder", "FROM scratch\nCOPY data/ /data/\n", {"data/ok.txt": "ok\n", "data/sub/x.txt": "x\n"}
    )
    os.chmod(ctx / "data" / "sub", 0)
    name = register(client, ctx)
    try:
        (report,) = client.reports([pb.ContextRef(name=name)])
    except CtxwatchError as e:
        pytest.fail(f"GetReports failed instead of reporting the step: {e}")
    (step,) = context_steps(report)
    assert step.status == pb.STEP_STATUS_ERROR and "data/sub" in step.error, (report.error, step)
    assert process.poll() is None and isinstance(client.list(), list)


def test_folder_made_unreadable_after_listing_is_a_step_error_naming_it(nobody_daemon):
    """A folder that becomes unreadable after the daemon listed it is an error
    too, on every report (the old listing must not be reused, and the error
    names the folder, not the readable context root)."""
    base, process, client = nobody_daemon
    ctx = nobody_context(
        base,
        "folder-made-unreadable",
        "FROM scratch\nCOPY data/ /data/\n",
        {"data/ok.txt": "ok\n", "data/sub/x.txt": "x\n"},
    )
    name = register(client, ctx)
    report_of(client, name)
    client.mark_built(pb.ContextRef(name=name))
    os.chmod(ctx / "data" / "sub", 0)
    answers = [client.reports([pb.ContextRef(name=name)])[0] for _ in range(2)]
    for report in answers:
        steps = context_steps(report)
        assert (
            report.error == "" and steps and steps[0].status == pb.STEP_STATUS_ERROR and "data/sub" in steps[0].error
        ), f"report.error={report.error!r}, steps={[(s.status, s.error) for s in steps]}"
    assert process.poll() is None and isinstance(client.list(), list)


# -- size -------------------------------------------------------------------------------


def test_200_mb_sparse_file_is_hashed_in_flat_memory(served, tmp_path):
    daemon, client = served
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY big.bin /big.bin\n")
    size = 200 * MiB
    with open(ctx / "big.bin", "wb") as f:
        f.truncate(size)
        f.seek(size - 1)
        f.write(b"\x01")
    name = register(client, ctx)
    (step,) = context_steps(report_of(client, name))
    assert (step.status, step.cause) == (pb.STEP_STATUS_INVALIDATED, pb.CAUSE_NEVER_BUILT)
    assert_cached_after_build(client, name)
    with open(ctx / "big.bin", "r+b") as f:  # the last byte only: same size
        f.seek(-1, os.SEEK_END)
        f.write(b"\x02")
    assert (ctx / "big.bin").stat().st_size == size
    (step,) = context_steps(report_of(client, name))
    assert step.status == pb.STEP_STATUS_INVALIDATED
    assert changes(step) == {("big.bin", pb.CHANGE_KIND_CONTENT)}
    rss = client.daemon_status().memory_rss_bytes
    assert 0 < rss < 150 * MiB, f"daemon RSS {rss / MiB:.0f} MiB after hashing a {size // MiB} MiB file"
    assert_serving(daemon, client)


DEPTH = 600


@pytest.fixture(scope="module")
def deep(served, tmp_path_factory) -> tuple[str, Path, Path]:
    """A context whose folder is DEPTH folders deep, registered once."""
    _, client = served
    ctx = make_context(
        tmp_path_factory.mktemp("deep") / "ctx", "FROM scratch\nCOPY deep/ /deep/\n", {"deep/top.txt": "top\n"}
    )
    bottom = ctx / "deep" / "/".join(["d"] * DEPTH)
    bottom.mkdir(parents=True)
    (bottom / "leaf.txt").write_text("leaf 1\n")
    return register(client, ctx), ctx, bottom


def test_600_folders_deep_tree_is_hashed_and_cached(served, deep):
    daemon, client = served
    name, ctx, bottom = deep
    (step,) = context_steps(report_of(client, name))
    assert step.status in (pb.STEP_STATUS_INVALIDATED, pb.STEP_STATUS_CACHED) and step.error == ""
    assert_cached_after_build(client, name)
    (ctx / "deep" / "top.txt").write_text(f"top {time.time_ns()}\n")
    (step,) = context_steps(report_of(client, name))
    assert changes(step) == {("deep/top.txt", pb.CHANGE_KIND_CONTENT)}
    assert_serving(daemon, client)


def test_change_600_folders_deep_is_explained(served, deep):
    """A change 600 folders deep is explained with the file's path. Found
    failing: cache/diff.py Differ._compare/_compare_children recursed once per
    folder level, so GetReports failed with INTERNAL "maximum recursion depth
    exceeded"."""
    daemon, client = served
    name, ctx, bottom = deep
    report_of(client, name)
    assert_cached_after_build(client, name)
    (bottom / "leaf.txt").write_text(f"leaf {time.time_ns()}\n")
    try:
        (step,) = context_steps(report_of(client, name))
    except CtxwatchError as e:
        pytest.fail(f"GetReports failed: {e.code}: {e.message[:200]}")
    leaf = "deep/" + "d/" * DEPTH + "leaf.txt"
    assert step.status == pb.STEP_STATUS_INVALIDATED
    assert changes(step) == {(leaf, pb.CHANGE_KIND_CONTENT)}
    assert_serving(daemon, client)


WIDTH = 20_000


def test_20000_entry_folder(served, tmp_path):
    """Entries are hard links to one file (cheap to make on a slow disk); each
    is still a path of its own for the daemon."""
    daemon, client = served
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY wide/ /wide/\n", {"one.txt": "same\n"})
    (ctx / "wide").mkdir()
    for i in range(WIDTH):
        os.link(ctx / "one.txt", ctx / "wide" / f"f{i:05d}")
    name = register(client, ctx)
    (step,) = context_steps(report_of(client, name))
    assert (step.status, step.cause) == (pb.STEP_STATUS_INVALIDATED, pb.CAUSE_NEVER_BUILT)
    assert_cached_after_build(client, name)
    (ctx / "replacement").write_text("different\n")
    os.replace(ctx / "replacement", ctx / "wide" / "f12345")
    (ctx / "wide" / "new").write_text("new\n")
    os.unlink(ctx / "wide" / "f00007")
    (step,) = context_steps(report_of(client, name))
    assert changes(step) == {
        ("wide/f12345", pb.CHANGE_KIND_CONTENT),
        ("wide/new", pb.CHANGE_KIND_ADDED),
        ("wide/f00007", pb.CHANGE_KIND_REMOVED),
    }
    assert step.changed_paths_total == 3
    (root,) = [r for r in client.daemon_status().roots if r.path == str(ctx)]
    assert root.files >= WIDTH
    assert_serving(daemon, client)


# -- names --------------------------------------------------------------------------------


def test_file_names_that_are_not_utf8_are_hashed_and_shown_escaped(served, tmp_path):
    daemon, client = served
    ctx = make_context(
        tmp_path / "ctx", "FROM scratch\nCOPY data/ /data/\nCOPY data/*.txt /txt/\n", {"data/ok.txt": "ok\n"}
    )
    data = os.fsencode(ctx / "data")
    with open(data + b"/\xff\xfe.txt", "wb") as f:
        f.write(b"one\n")
    os.mkdir(data + b"/dir-\xc3(")
    with open(data + b"/dir-\xc3(/inner", "wb") as f:
        f.write(b"inner\n")
    name = register(client, ctx)
    steps = context_steps(report_of(client, name))
    assert [(s.status, s.cause) for s in steps] == [(pb.STEP_STATUS_INVALIDATED, pb.CAUSE_NEVER_BUILT)] * 2
    assert_cached_after_build(client, name)

    with open(data + b"/\xff\xfe.txt", "wb") as f:
        f.write(b"two, longer\n")
    with open(data + b"/dir-\xc3(/inner", "wb") as f:
        f.write(b"inner 2, longer\n")
    with open(data + b"/new-\x80.txt", "wb") as f:
        f.write(b"new\n")
    folder, glob = context_steps(report_of(client, name))
    assert changes(folder) == {
        ("data/\\xff\\xfe.txt", pb.CHANGE_KIND_CONTENT),
        ("data/dir-\\xc3(/inner", pb.CHANGE_KIND_CONTENT),
        ("data/new-\\x80.txt", pb.CHANGE_KIND_ADDED),
    }
    assert glob.status == pb.STEP_STATUS_INVALIDATED
    assert_serving(daemon, client)


# -- files that vanish while they are read ------------------------------------------------


def fresh_scan(ctx: Path, state: Path) -> list[tuple]:
    with LocalClient(state) as local:
        local.register(str(ctx), name="fresh")
        (report,) = local.reports([pb.ContextRef(name="fresh")])
    return decisions(report)


def decisions(report: pb.Report) -> list[tuple]:
    return [report.error, *((s.instruction, s.key, s.status, s.cause, s.error) for s in report.steps)]


def daemon_has_open(pid: int, path: Path) -> bool:
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(f"{fd_dir}/{fd}") == str(path):
                return True
        except OSError:
            continue  # closed meanwhile
    return False


def test_files_deleted_while_being_hashed_are_not_errors(served, tmp_path):
    """A file listed, then deleted before the daemon reads it, counts as
    deleted: no report shows an error. Found failing: the step was
    STEP_STATUS_ERROR "cannot read 'data/fNNNN.txt': No such file or
    directory" (Tree.record -> read_record raised FileNotFoundError, turned
    into a ContextReadError), an answer no state of the folder has.

    To hit the window every time, the folder starts with a 100 MiB file that
    sorts first: once the daemon has it open (it hashes in name order, after
    listing the folder), the other files are deleted while queries go on."""
    daemon, client = served
    count = 300
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY data/ /data/\nCOPY data/*.txt /glob/\n")
    (ctx / "data").mkdir()
    big = ctx / "data" / "0-big.bin"
    with open(big, "wb") as f:
        f.truncate(100 * MiB)
    for i in range(count):
        (ctx / "data" / f"f{i:04d}.txt").write_bytes(bytes([i % 251]) * 2048)
    name = register(client, ctx)  # nothing listed or hashed yet: the first query does it all
    first_answered, done = threading.Event(), threading.Event()

    def delete_all() -> None:
        try:
            for _ in range(100_000):  # bounded: until the daemon hashes the big file, or answered
                if first_answered.is_set() or daemon_has_open(daemon.process.pid, big):
                    break
                time.sleep(0.0005)
            for i in reversed(range(count)):
                os.unlink(ctx / "data" / f"f{i:04d}.txt")
        finally:
            done.set()

    deleter = threading.Thread(target=delete_all, daemon=True)
    errors: list[str] = []
    deleter.start()
    for _ in range(1000):
        finished = done.is_set()
        (report,) = client.reports([pb.ContextRef(name=name)])
        first_answered.set()
        errors += [report.error] if report.error else []
        errors += [s.error for s in report.steps if s.status == pb.STEP_STATUS_ERROR]
        if finished:
            break
    deleter.join(timeout=60)
    assert done.is_set()
    (final,) = client.reports([pb.ContextRef(name=name)])
    assert decisions(final) == fresh_scan(ctx, tmp_path / "fresh-state")
    assert [s.status for s in final.steps] == [pb.STEP_STATUS_INVALIDATED] * 2
    assert errors == [], f"{len(errors)} error(s) while files were deleted, e.g. {errors[0]!r}"
    assert_serving(daemon, client)
