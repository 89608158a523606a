"""WatchInvalidations (`CtxwatchClient.watch`): the report at once, then a new
report each time the answer changes; cancelling a stream leaves the daemon
serving.

Streams are read on a worker thread, one report at a time, with bounded waits,
so a stream that never delivers fails the test instead of hanging it. Between
two reads the client's generator is suspended, so the test can close it
(which cancels the call).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import grpc
import pytest
from support.contexts import make_context
from support.daemon import Daemon

from ctxwatch.client import CtxwatchClient, CtxwatchError, channel_target
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

WAIT_S = 10.0  # bound of every wait for a report; a healthy daemon answers in milliseconds
DOCKERFILE = """\
FROM scratch
COPY app.txt /app/app.txt
COPY src/ /app/src/
RUN ["/bin/true"]
"""
FILES = {"app.txt": "hello\n", "src/a.py": "print('a')\n"}
CACHED, INVALIDATED = pb.STEP_STATUS_CACHED, pb.STEP_STATUS_INVALIDATED


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def own_client(daemon: Daemon) -> CtxwatchClient:
    """A connection of the test's own, with a deadline on unary calls (a daemon
    that stopped serving fails the test, never hangs it). Closing it cancels
    any stream a failed test left open."""
    return CtxwatchClient(grpc.insecure_channel(channel_target(daemon.socket)), daemon.socket, timeout=WAIT_S)


@pytest.fixture
def client(shared_daemon) -> Iterator[CtxwatchClient]:
    """Our own connection to the shared daemon."""
    with own_client(shared_daemon) as own:
        yield own


@pytest.fixture
def quiet_client(daemon) -> Iterator[CtxwatchClient]:
    """A connection to a daemon of the test's own: nothing else happens in it,
    so a push can only come from the change the test makes."""
    with own_client(daemon) as own:
        yield own


class Stream:
    """A `client.watch()` stream, read on a worker thread with bounded waits."""

    def __init__(self, client: CtxwatchClient, ref, options: pb.BuildOptions | None = None) -> None:
        self.reports = client.watch(ref, options)
        self.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watch-reader")
        self.received: list[pb.Report] = []

    def next(self, timeout: float = WAIT_S, what: str = "") -> pb.Report:
        """The next report; CtxwatchError when the stream fails."""
        future = self.reader.submit(next, self.reports)
        try:
            report = future.result(timeout=timeout)
        except FutureTimeout:
            pytest.fail(f"no report {what} within {timeout:.0f} s (received so far: {len(self.received)})")
        except StopIteration:
            pytest.fail("the stream ended")
        if self.received:
            assert report != self.received[-1], "the stream sent the same report twice in a row"
        self.received.append(report)
        return report

    def until(self, condition: Callable[[pb.Report], bool], what: str) -> pb.Report:
        """Read reports until one satisfies `condition` (the stream is debounced:
        a report in between is allowed, the last one must match the files)."""
        for _ in range(20):
            report = self.next(what=what)
            if condition(report):
                return report
        pytest.fail(f"20 reports, none {what}; the last: {self.received[-1]}")

    def cancel(self) -> None:
        """Close the client's generator between two reads: it cancels the call."""
        self.reports.close()
        self.reader.shutdown(wait=True)


def statuses(report: pb.Report) -> list[int]:
    return [s.status for s in report.steps]


def test_watch_streams_the_report_then_each_change(client, tmp_path):
    ctx = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
    name = unique("stream")
    client.register(str(ctx), name=name)
    try:
        client.mark_built(name)
        stream = Stream(client, name)

        first = stream.next()
        assert first.all_cached and statuses(first) == [CACHED] * 3
        [current] = client.reports([name])
        assert first == current

        # A write to a COPY'd file: that step and the ones after it re-run.
        (ctx / "src" / "a.py").write_text("print('changed')\n")
        changed = stream.until(lambda r: not r.all_cached, "invalidated after the write")
        assert statuses(changed) == [CACHED, INVALIDATED, INVALIDATED]
        assert changed.steps[1].cause == pb.CAUSE_INPUTS_CHANGED
        assert [(c.path, c.kind) for c in changed.steps[1].changed_paths] == [("src/a.py", pb.CHANGE_KIND_CONTENT)]
        assert changed.steps[2].cause == pb.CAUSE_UPSTREAM
        assert [s.key for s in changed.steps] == [s.key for s in client.reports([name])[0].steps]

        # The user builds: the stream says everything is cached again.
        built = client.mark_built(name)
        rebuilt = stream.until(lambda r: r.all_cached, "all cached after MarkBuilt")
        assert statuses(rebuilt) == [CACHED] * 3
        assert rebuilt.builds_recorded == 2
        assert [s.key for s in rebuilt.steps] == [s.key for s in built.report.steps]

        # Changed back to what the first build saw: BuildKit still has it.
        (ctx / "src" / "a.py").write_text("print('a')\n")
        reverted = stream.until(
            lambda r: [s.key for s in r.steps] == [s.key for s in first.steps],
            "with the first build's keys after the revert",
        )
        assert reverted.all_cached
        stream.cancel()
    finally:
        client.unregister(name)


def test_watch_sees_edits_of_a_dockerfile_outside_the_context(quiet_client, tmp_path):
    client = quiet_client
    ctx = make_context(tmp_path / "ctx", None, FILES)
    elsewhere = tmp_path / "build"
    elsewhere.mkdir()
    dockerfile = elsewhere / "Dockerfile"
    dockerfile.write_text(DOCKERFILE)
    name = unique("outside")
    registered = client.register(str(ctx), dockerfile=str(dockerfile), name=name)
    assert registered.context.dockerfile == str(dockerfile)
    try:
        client.mark_built(name)
        stream = Stream(client, name)
        assert stream.next().all_cached

        # Edited in place: the RUN line changes.
        dockerfile.write_text(DOCKERFILE.replace('RUN ["/bin/true"]', 'RUN ["/bin/true", "again"]'))
        edited = stream.until(
            lambda r: r.steps[-1].instruction == 'RUN ["/bin/true", "again"]', "with the edited RUN line"
        )
        assert statuses(edited) == [CACHED, CACHED, INVALIDATED]
        assert edited.steps[-1].cause == pb.CAUSE_INSTRUCTION_CHANGED
        assert edited.steps[-1].old_instruction == 'RUN ["/bin/true"]'

        # Saved by an editor (new file renamed over it): a COPY line changes.
        tmp = elsewhere / ".Dockerfile.swp"
        tmp.write_text(DOCKERFILE.replace("COPY app.txt /app/app.txt", "COPY app.txt /srv/app.txt"))
        os.replace(tmp, dockerfile)
        saved = stream.until(
            lambda r: r.steps[0].instruction == "COPY app.txt /srv/app.txt", "with the renamed-over Dockerfile"
        )
        assert statuses(saved) == [INVALIDATED] * 3
        assert [s.key for s in saved.steps] == [s.key for s in client.reports([name])[0].steps]
        stream.cancel()
    finally:
        client.unregister(name)


def test_watch_sees_dockerfile_edits_after_its_outside_folder_is_recreated(quiet_client, tmp_path):
    """A branch switch removes the folder holding the Dockerfile and brings it
    back: the Dockerfile's comings and goings and later edits are all pushed."""
    client = quiet_client
    ctx = make_context(tmp_path / "ctx", None, FILES)
    build = tmp_path / "build"
    build.mkdir()
    dockerfile = build / "Dockerfile"
    dockerfile.write_text(DOCKERFILE)
    name = unique("recreated")
    client.register(str(ctx), dockerfile=str(dockerfile), name=name)
    try:
        client.mark_built(name)
        stream = Stream(client, name)
        assert stream.next().all_cached

        shutil.rmtree(build)
        gone = stream.until(lambda r: bool(r.error), "with an error once the Dockerfile is gone")
        assert "Dockerfile" in gone.error and not gone.steps

        build.mkdir()
        dockerfile.write_text(DOCKERFILE)
        back = stream.until(lambda r: not r.error, "without an error once the Dockerfile is back")
        assert back.all_cached

        # A change in the context that shows in the answer, makes one event
        # (a folder's mode) and makes the daemon read no file (its own reads
        # are events too): once its report is in, every earlier event has been
        # handled, and only the edit below can make the next push.
        os.chmod(ctx / "src", 0o700)
        stream.until(lambda r: r.steps[1].status == INVALIDATED, "with the new mode of src/")

        dockerfile.write_text(DOCKERFILE.replace('RUN ["/bin/true"]', 'RUN ["/bin/false"]'))
        edited = stream.until(lambda r: r.steps[-1].instruction == 'RUN ["/bin/false"]', "with the edited RUN line")
        assert statuses(edited) == [CACHED, INVALIDATED, INVALIDATED]
        stream.cancel()
    finally:
        unregister_quietly(client, name)


def two_contexts_with_dockerfiles_in_one_folder(client: CtxwatchClient, tmp_path: Path) -> tuple[Path, str, str]:
    """Two contexts whose Dockerfiles live in the same folder, outside both contexts."""
    build = tmp_path / "build"
    build.mkdir()
    names = unique("one"), unique("two")
    for name in names:
        (build / f"{name}.Dockerfile").write_text(DOCKERFILE)
        client.register(
            str(make_context(tmp_path / name, None, FILES)), dockerfile=str(build / f"{name}.Dockerfile"), name=name
        )
    return build, *names


def unregister_quietly(client: CtxwatchClient, name: str) -> None:
    """Clean-up that does not hide the test's own failure."""
    try:
        client.unregister(name)
    except CtxwatchError:
        pass


def test_watch_sees_dockerfile_edits_after_a_context_sharing_its_folder_is_unregistered(quiet_client, tmp_path):
    client = quiet_client
    build, one, two = two_contexts_with_dockerfiles_in_one_folder(client, tmp_path)
    try:
        client.mark_built(two)
        client.unregister(one)  # must not take the folder's watch away from `two`
        stream = Stream(client, two)
        assert stream.next().all_cached

        (build / f"{two}.Dockerfile").write_text(DOCKERFILE.replace('RUN ["/bin/true"]', 'RUN ["/bin/false"]'))
        edited = stream.until(lambda r: r.steps[-1].instruction == 'RUN ["/bin/false"]', "with the edited RUN line")
        assert statuses(edited) == [CACHED, CACHED, INVALIDATED]
        stream.cancel()
    finally:
        unregister_quietly(client, one)
        unregister_quietly(client, two)


def test_unregistering_two_contexts_whose_dockerfiles_share_a_folder(client, tmp_path):
    _, one, two = two_contexts_with_dockerfiles_in_one_folder(client, tmp_path)
    try:
        assert client.unregister(one).context.name == one
        assert client.unregister(two).context.name == two
        assert not {one, two} & {c.name for c in client.list()}
        watched = {r.path for r in client.daemon_status().roots}
        assert not {str(tmp_path / one), str(tmp_path / two)} & watched, "a watched root outlived its context"
    finally:
        unregister_quietly(client, one)
        unregister_quietly(client, two)


def test_cancelled_streams_leave_the_daemon_serving(shared_daemon, client, tmp_path):
    ctx = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
    name = unique("cancel")
    client.register(str(ctx), name=name)
    try:
        # More streams than the daemon has worker threads (16): a cancelled
        # stream that kept its thread would leave none for the calls below.
        for _ in range(20):
            stream = Stream(client, name)
            assert stream.next().steps
            stream.cancel()
        assert name in [c.name for c in client.list()]
        status = client.daemon_status()
        assert status.pid == shared_daemon.process.pid
        assert str(ctx) in [r.path for r in status.roots]
        assert shared_daemon.process.poll() is None

        # A stream opened after the cancellations still follows the files.
        stream = Stream(client, name)
        assert statuses(stream.next()) == [pb.STEP_STATUS_INVALIDATED] * 3  # never built
        client.mark_built(name)
        assert stream.until(lambda r: r.all_cached, "all cached after MarkBuilt").all_cached
        stream.cancel()
        assert client.reports([name])[0].all_cached
    finally:
        client.unregister(name)


def test_watch_of_an_unknown_context_fails_with_not_found(shared_daemon, client):
    missing = unique("no-such-context")
    stream = Stream(client, pb.ContextRef(name=missing))
    with pytest.raises(CtxwatchError) as failure:
        stream.next()
    assert failure.value.code == "NOT_FOUND"
    assert missing in failure.value.message
    assert missing not in [c.name for c in client.list()]  # and the daemon goes on serving
    assert client.daemon_status().pid == shared_daemon.process.pid


def test_watch_ends_with_not_found_when_the_context_is_unregistered(client, tmp_path):
    ctx = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
    name = unique("gone")
    client.register(str(ctx), name=name)
    stream = Stream(client, name)
    assert stream.next().steps
    client.unregister(name)
    with pytest.raises(CtxwatchError) as failure:
        stream.next()
    assert failure.value.code == "NOT_FOUND"
    assert name in failure.value.message


def test_many_streams_of_one_context_each_get_each_change(shared_daemon, client, tmp_path):
    """Streams with the same question share the answer to a change (server/sharing.py):
    every one of them still gets it, and a stream asking with other options gets its own."""
    ctx = make_context(tmp_path / "ctx", DOCKERFILE.replace("RUN", "ARG EXTRA\nRUN"), FILES)
    name = unique("streams")
    client.register(str(ctx), name=name)
    clients = [own_client(shared_daemon) for _ in range(3)]
    try:
        client.mark_built(name)
        same = [Stream(c, name) for c in clients for _ in range(2)]
        other = Stream(client, name, other_options())
        for stream in same:
            assert statuses(stream.next()) == [CACHED] * 3
        assert other.next().steps[0].status == CACHED

        (ctx / "src" / "a.py").write_text("print('changed')\n")
        for stream in same:
            changed = stream.until(lambda r: not r.all_cached, "invalidated after the write")
            assert [(c.path, c.kind) for c in changed.steps[1].changed_paths] == [("src/a.py", pb.CHANGE_KIND_CONTENT)]
        changed = other.until(lambda r: r.steps[1].status == INVALIDATED, "invalidated after the write")
        assert [s.key for s in changed.steps] == [s.key for s in client.reports([name], other_options())[0].steps]
        assert changed.steps[2].key != same[0].received[-1].steps[2].key  # the RUN sees the build arg
        for stream in [*same, other]:
            stream.cancel()
    finally:
        for c in clients:
            c.close()
        client.unregister(name)


def other_options() -> pb.BuildOptions:
    return pb.BuildOptions(build_args={"EXTRA": "1"})  # read by the RUN step
