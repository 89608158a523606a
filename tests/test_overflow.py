"""Lost file events (inotify queue overflow): the daemon notices, says so in
its status, and answers from a re-scan, never from a stale tree.

(a) in-process: an Engine that watches, and the EventsLostEvent the observer
    delivers on an overflow;
(b) a real daemon whose inotify queue is made tiny (as root, through
    /proc/sys/fs/inotify/max_queued_events, which the kernel reads when the
    inotify instance is created) and real bursts of file events.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.contexts import make_context
from support.daemon import Daemon, answer, fresh_report, start_daemon
from support.inotify import lowered_inotify_setting, wait_until_seen, watching_engine
from support.waiting import wait_until
from watchdog.events import EventsLostEvent

from ctxwatch.client import CtxwatchError
from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatchd.engine import Engine
from ctxwatchd.registry import ContextRef, Registration
from ctxwatchd.requests import BuildOptions
from ctxwatchd.results import RootStatus
from ctxwatchd.server.wire import report_message

MAX_QUEUED_EVENTS = Path("/proc/sys/fs/inotify/max_queued_events")
TINY_QUEUE = 16
LOST = re.compile(r"lost|dropped|overflow", re.IGNORECASE)
DOCKERFILE = """\
FROM scratch
COPY . /all
COPY src/ /src/
COPY *.txt /txt/
RUN ["/bin/true"]
"""


def overflow_files(modules: int = 20) -> dict[str, str]:
    """Files of the context: a folder to remove, one to re-mode, and `modules` files to edit."""
    return {
        ".dockerignore": "*.log\n",
        "a.txt": "a\n",
        "docs/readme.md": "readme\n",
        "src/lib/util.py": "util\n",
        **{f"src/m{i}.py": f"print({i})\n" for i in range(modules)},
    }


def change_everything(ctx: Path) -> None:
    """Edits of every kind a re-scan must find."""
    (ctx / "a.txt").write_text("A, changed\n")  # content
    os.chmod(ctx / "src" / "m0.py", 0o755)  # mode
    (ctx / "docs" / "readme.md").unlink()  # removal
    (ctx / "b.txt").write_text("new\n")  # addition
    (ctx / "src" / "new" / "deep").mkdir(parents=True)  # new folders with files
    (ctx / "src" / "new" / "deep" / "x.py").write_text("x\n")
    shutil.rmtree(ctx / "src" / "lib")  # folder replaced by a file
    (ctx / "src" / "lib").write_text("now a file\n")
    os.chmod(ctx / "docs", 0o700)  # folder mode
    os.symlink("a.txt", ctx / "link")  # symlink
    os.replace(ctx / "src" / "m1.py", ctx / "src" / "m2.py")  # rename over a file


# -- (a) in-process ------------------------------------------------------------------------


def root_status(engine: Engine, path: Path) -> RootStatus:
    [status] = [r for r in engine.status() if r.path == str(path)]
    return status


@pytest.mark.parametrize("seen", [False, True], ids=["events-dropped", "events-seen"])
def test_events_lost_makes_the_engine_rescan_before_answering(tmp_path, seen):
    ctx = make_context(tmp_path / "ctx", DOCKERFILE, overflow_files())
    with watching_engine(tmp_path / "state") as engine:
        engine.register(Registration(path=str(ctx), name="lost"))
        reg = engine.resolve(ContextRef(name="lost"))
        built = engine.mark_built(reg, BuildOptions())
        assert built.report.all_cached
        root = reg.root
        assert root_status(engine, ctx).healthy

        change_everything(ctx)
        (ctx / "zz-barrier").write_text("")  # its event comes after every event of the edits above
        wait_until_seen(root, "zz-barrier")
        if not seen:
            with root.lock:  # what the kernel does on an overflow: the events are gone
                root.dirty.clear()
            stale = report_message(engine.report(reg, BuildOptions()))
            assert answer(stale) != answer(fresh_report(ctx)), (
                "precondition: without its events the tree should not know of the edits"
            )

        root.dispatch(EventsLostEvent(root.path, is_directory=True))  # what the observer delivers on IN_Q_OVERFLOW
        status = root_status(engine, ctx)
        assert not status.healthy
        assert LOST.search(status.message), status.message

        report = report_message(engine.report(reg, BuildOptions()))
        assert answer(report) == answer(fresh_report(ctx))
        assert not report.all_cached
        assert [s.status for s in report.steps] == [pb.STEP_STATUS_INVALIDATED] * 4
        assert LOST.search(root_status(engine, ctx).message)  # the loss stays on record after the re-scan

        # After the re-scan the events flow again: a later edit shows without another overflow.
        (ctx / "a.txt").write_text("a\n")
        (ctx / "b.txt").unlink()
        report = report_message(engine.report(reg, BuildOptions()))
        assert answer(report) == answer(fresh_report(ctx))


# -- (b) a real daemon, a real overflow ----------------------------------------------------


def tiny_inotify_queue(limit: int = TINY_QUEUE):
    """Lower the kernel's per-instance queue limit for instances created inside the block."""
    return lowered_inotify_setting(MAX_QUEUED_EVENTS, lambda: limit)


@pytest.fixture
def overflowing_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon whose inotify queue holds only TINY_QUEUE events."""
    with tiny_inotify_queue():
        daemon = start_daemon(tmp_path / "daemon")  # serving means its inotify instance exists
    yield daemon
    daemon.stop()


def daemon_root(daemon: Daemon, path: Path) -> pb.WatchedRoot:
    roots = [r for r in daemon.client.daemon_status().roots if r.path == str(path)]
    assert len(roots) == 1, daemon.client.daemon_status()
    return roots[0]


def wait_for_reported_loss(daemon: Daemon, path: Path, timeout: float = 30.0) -> pb.WatchedRoot:
    """The root's status once the daemon has handled the kernel's overflow
    notice (GetDaemonStatus does not sync, so the notice may still be queued)."""

    def reported() -> pb.WatchedRoot | None:
        root = daemon_root(daemon, path)
        return root if not root.healthy and LOST.search(root.message) else None

    return wait_until(reported, timeout, f"the daemon reporting lost events for {path}")


def test_a_real_queue_overflow_is_reported_and_answers_come_from_a_rescan(overflowing_daemon, tmp_path):
    client = overflowing_daemon.client
    ctx = make_context(tmp_path / "ctx", DOCKERFILE, overflow_files(100))
    client.register(str(ctx), name="burst")
    built = client.mark_built(pb.ContextRef(name="burst"))
    assert built.report.all_cached

    # A burst (a branch switch, an unpacked archive): far more events than the
    # queue holds. The daemon is stopped meanwhile so that it cannot keep up
    # by reading fast: the kernel must drop events.
    os.kill(overflowing_daemon.process.pid, signal.SIGSTOP)
    try:
        (ctx / "gen").mkdir()
        for i in range(1000):
            (ctx / "gen" / f"g{i}.txt").write_text(f"generated {i}\n")
        for i in range(100):
            (ctx / "src" / f"m{i}.py").write_text(f"print('changed {i}')\n")
        change_everything(ctx)
    finally:
        os.kill(overflowing_daemon.process.pid, signal.SIGCONT)

    # Unhealthy until a query has re-scanned; the status names the cause.
    wait_for_reported_loss(overflowing_daemon, ctx)

    [report] = client.reports([pb.ContextRef(name="burst")])
    assert answer(report) == answer(fresh_report(ctx))
    assert [s.status for s in report.steps] == [pb.STEP_STATUS_INVALIDATED] * 4
    assert LOST.search(daemon_root(overflowing_daemon, ctx).message)
    log = overflowing_daemon.log.read_text()
    assert "overflow" in log.lower(), log[-2000:]

    # Still right after more edits and another query.
    (ctx / "a.txt").write_text("a\n")
    shutil.rmtree(ctx / "gen")
    [report] = client.reports([pb.ContextRef(name="burst")])
    assert answer(report) == answer(fresh_report(ctx))


def test_a_quiet_context_answers_while_another_one_overflows_the_queue(overflowing_daemon, tmp_path):
    """All roots share the daemon's inotify queue. While a burst in one context
    keeps it overflowing, queries of another context must fall back to a
    re-scan: a sync cookie whose event the kernel dropped must not leave the
    query waiting (and failing with UNAVAILABLE)."""
    client = overflowing_daemon.client
    quiet, busy = (
        make_context(tmp_path / "quiet", DOCKERFILE, overflow_files()),
        make_context(tmp_path / "busy", DOCKERFILE, overflow_files()),
    )
    client.register(str(quiet), name="quiet")
    client.register(str(busy), name="busy")
    client.mark_built(pb.ContextRef(name="quiet"))
    client.mark_built(pb.ContextRef(name="busy"))

    stop = threading.Event()

    def flood() -> None:
        for i in range(2_000_000):
            if stop.is_set():
                return
            (busy / "src" / f"g{i % 50}.txt").write_text(f"{i}\n")

    # One certain overflow first (the daemon cannot read while stopped), then a
    # flood that keeps the queue busy while the quiet context is queried.
    os.kill(overflowing_daemon.process.pid, signal.SIGSTOP)
    try:
        for i in range(200):
            (busy / "src" / f"g{i % 50}.txt").write_text(f"first {i}\n")
    finally:
        os.kill(overflowing_daemon.process.pid, signal.SIGCONT)
    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    failure: CtxwatchError | None = None
    try:
        for _ in range(300):
            try:
                [report] = client.reports([pb.ContextRef(name="quiet")])
            except CtxwatchError as e:
                failure = e
                break
            assert report.all_cached  # nothing changed in the quiet context
    finally:
        stop.set()
        flooder.join(timeout=60)
    assert failure is None, f"a query during an overflow failed instead of re-scanning: {failure}"

    # The queue is shared: the quiet context's events may have been lost too.
    assert LOST.search(daemon_root(overflowing_daemon, quiet).message)
    for name, ctx in (("quiet", quiet), ("busy", busy)):
        [report] = client.reports([pb.ContextRef(name=name)])
        assert answer(report) == answer(fresh_report(ctx))
