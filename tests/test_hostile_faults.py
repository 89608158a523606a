"""One context never stops the others: a Dockerfile swapped for a FIFO in a
loop never blocks the daemon, and a context whose warm-up never finished is
skipped at the next start.

Found before: `WatchedFile.read` stat'ed, then opened without O_NONBLOCK
under the engine lock; a rename loop between a file and a FIFO left the
daemon blocked in the kernel and every RPC timing out.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from support.contexts import make_context
from support.daemon import Daemon, guarded_client, start_daemon, stop_or_kill
from support.hostile import assert_serving, report_of
from support.waiting import wait_until

from ctxwatch.client import CtxwatchClient
from ctxwatchd.server.serving import WARM_UP_MARKER

SWAP_FOR_S = 3.0
CONTENT = {"Dockerfile": "FROM scratch\nCOPY a.txt /a\n", ".dockerignore": "x\n", "a.txt": "a\n"}


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[Daemon, CtxwatchClient]]:
    daemon = start_daemon(tmp_path / "daemon")
    client = guarded_client(daemon.socket, timeout=30)
    yield daemon, client
    client.close()
    daemon.client.close()
    stop_or_kill(daemon.process)


def swap_loop(folder, name: str, stop: threading.Event) -> int:
    """Rename a regular file and a FIFO over `name` in turn until stopped; the number of swaps."""
    regular, fifo = folder / f".{name}.file", folder / f".{name}.fifo"
    regular.write_text((folder / name).read_text())
    swaps = 0
    while not stop.is_set():
        if not fifo.exists():
            os.mkfifo(fifo)
        os.rename(fifo, folder / name)
        regular.write_text("FROM scratch\nCOPY a.txt /a\n")
        os.rename(regular, folder / name)
        swaps += 2
    return swaps


@pytest.mark.parametrize("swapped", ["Dockerfile", ".dockerignore", "a.txt"])
def test_file_swapped_with_a_fifo_in_a_loop_never_blocks(served, tmp_path, swapped):
    daemon, client = served
    ctx = make_context(tmp_path / "ctx", CONTENT["Dockerfile"], {"a.txt": CONTENT["a.txt"], ".dockerignore": "x\n"})
    other = make_context(tmp_path / "other", "FROM scratch\nCOPY b.txt /b\n", {"b.txt": "b\n"})
    client.register(str(ctx), name="swapped")
    client.register(str(other), name="other")
    stop = threading.Event()
    swaps: list[int] = []
    swapper = threading.Thread(target=lambda: swaps.append(swap_loop(ctx, swapped, stop)))
    swapper.start()
    answers = 0
    try:
        deadline = time.monotonic() + SWAP_FOR_S
        while time.monotonic() < deadline:
            report = report_of(client, "swapped")  # an error or a report; within the client's deadline
            assert report.error or report.steps
            assert report_of(client, "other").error == ""
            answers += 1
    finally:
        stop.set()
        swapper.join()
    assert swaps[0] > 10 and answers > 0
    # Once the file stays a file, the answer is the file's.
    (ctx / swapped).unlink()
    (ctx / swapped).write_text(
        {"Dockerfile": "FROM scratch\nCOPY a.txt /a\n", ".dockerignore": "x\n"}.get(swapped, "a\n")
    )
    report = report_of(client, "swapped")
    assert report.error == "" and [s.error for s in report.steps] == ["" for _ in report.steps], report
    assert_serving(daemon, client)


def test_context_whose_warm_up_never_finished_is_skipped_and_said(tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY a.txt /a\n", {"a.txt": "a\n"})
    first = start_daemon(tmp_path / "d")
    first.client.register(str(ctx), name="stalled")
    first.client.register(str(make_context(tmp_path / "ok", "FROM scratch\n")), name="fine")
    first.stop()
    # What a daemon killed while warming up "stalled" leaves behind.
    (first.state_dir / WARM_UP_MARKER).write_text("stalled")
    daemon = start_daemon(tmp_path / "d")
    try:
        client = guarded_client(daemon.socket)
        log = daemon.log
        wait_until(lambda: "not warming up stalled" in log.read_text(), 30, "the warm-up skipping 'stalled'")
        assert "not warming up stalled: the last start was stopped while warming it up" in log.read_text()
        assert "not warming up fine" not in log.read_text()
        assert report_of(client, "stalled").error == ""  # answered when asked
        client.close()
    finally:
        daemon.stop()
