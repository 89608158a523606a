"""The memory cap: one watched folder's tree lists at most `max_tree_entries`
paths (each costs the daemon about 0.4 KB). Past it, the contexts of that
folder get an error naming the context, the folder, the cap and what to do;
the tree's listings are dropped (the memory comes back), the daemon serves
the other contexts, and the context answers again once it fits: files
removed, a .dockerignore leaving them out, or a higher cap.

Found before: nothing bounded the tree, so a context whose folder grew to
millions of files (an unignored node_modules, a build output) took the
memory of the daemon serving every other context.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.contexts import make_context
from support.daemon import Daemon, guarded_client, start_daemon, stop_or_kill
from support.hostile import assert_serving, report_of

from ctxwatch.client import CtxwatchClient
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

CAP = 60  # paths one watched folder may list: small, so the test lists little
DOCKERFILE = "FROM scratch\nCOPY . /app\n"


def start(folder: Path, cap: int) -> tuple[Daemon, CtxwatchClient]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(f"max_tree_entries = {cap}\n")
    daemon = start_daemon(folder)
    return daemon, guarded_client(daemon.socket)


def stop(daemon: Daemon, client: CtxwatchClient) -> None:
    client.close()
    daemon.client.close()
    stop_or_kill(daemon.process)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Daemon, CtxwatchClient]]:
    daemon, client = start(tmp_path / "daemon", CAP)
    yield daemon, client
    stop(daemon, client)


def add_files(folder: Path, count: int, prefix: str = "f") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"{prefix}{i}").write_text(f"{i}\n")


def root_status(client: CtxwatchClient, path: Path) -> pb.WatchedRoot:
    return next(r for r in client.daemon_status().roots if r.path == str(path))


def assert_answers(client: CtxwatchClient, name: str) -> None:
    report = report_of(client, name)
    assert report.error == ""
    assert [s.instruction for s in report.steps] == ["COPY . /app"]


def assert_over_the_cap(client: CtxwatchClient, name: str, root: Path, cap: int) -> None:
    error = report_of(client, name).error
    assert error.startswith(f"context {name!r}: its watched folder {root} holds more than {cap:,} files and folders")
    assert "max_tree_entries in the config file" in error
    assert "Leave out what the build does not need with .dockerignore" in error
    assert "or raise max_tree_entries and restart the daemon" in error


def test_a_context_past_the_cap_gets_an_error_its_memory_back_and_answers_again_once_it_fits(served, tmp_path):
    daemon, client = served
    innocent = make_context(tmp_path / "innocent", DOCKERFILE, {"a": "a\n"})
    client.register(str(innocent), name="innocent")
    big = make_context(tmp_path / "big", DOCKERFILE, {})
    add_files(big / "src", 40)
    client.register(str(big), name="big")
    assert_answers(client, "big")
    assert root_status(client, big).files == 41  # the Dockerfile and src/: within the cap

    add_files(big / "src", 30, prefix="g")  # 72 paths: past the cap
    assert_over_the_cap(client, "big", big, CAP)
    # Its listings are dropped: the tree holds the root alone (nothing of src/).
    status = root_status(client, big)
    assert (status.files, status.directories) == (0, 1)
    assert not status.healthy
    assert status.message == (
        f"more than {CAP} files and folders (max_tree_entries): its listings were dropped, "
        "and its contexts get an error until it holds fewer"
    )
    # The other context answers, and asking again gives the same error (the daemon stays up).
    assert_answers(client, "innocent")
    assert_over_the_cap(client, "big", big, CAP)
    assert_serving(daemon, client)

    # Files removed: it answers again.
    for i in range(30):
        (big / "src" / f"g{i}").unlink()
    assert_answers(client, "big")
    status = root_status(client, big)
    assert (status.healthy, status.message, status.files) == (True, "", 41)

    # Past the cap again, then the extra files left out with .dockerignore: the tree does not list them.
    add_files(big / "generated", 30)
    assert_over_the_cap(client, "big", big, CAP)
    (big / ".dockerignore").write_text("generated\n")
    assert_answers(client, "big")
    assert root_status(client, big).files <= CAP


def test_a_higher_cap_in_the_config_file_lets_the_context_answer(tmp_path):
    big = make_context(tmp_path / "big", DOCKERFILE, {})
    add_files(big / "src", CAP + 10)
    daemon, client = start(tmp_path / "daemon", CAP)
    try:
        client.register(str(big), name="big")
        assert_over_the_cap(client, "big", big, CAP)
    finally:
        stop(daemon, client)
    daemon, client = start(tmp_path / "daemon", 10 * CAP)  # the same state, a higher cap
    try:
        assert_answers(client, "big")
        assert root_status(client, big).files == CAP + 11
    finally:
        stop(daemon, client)
