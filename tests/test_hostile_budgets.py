"""Per-context budgets: one context's answer has a time limit and a bounded
number of views; past them that context gets an error saying which, and
the daemon serves the others meanwhile (README.md, "Limits").

Found before: inside the caps, a Dockerfile of a few thousand instructions
could still keep one answer busy for minutes (2,000 `COPY --from` of a stage
of 1,000 RUNs: over a minute), holding a worker thread and the root's lock
the whole time, and each different `COPY --exclude` set kept digests of the
whole context of its own, without bound.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.contexts import make_context
from support.daemon import Daemon, guarded_client, start_daemon, stop_or_kill
from support.hostile import assert_serving, report_of
from support.waiting import wait_until

from ctxwatch.client import CtxwatchClient
from ctxwatchd import limits
from ctxwatchd.budget import OutOfTime, time_limit
from ctxwatchd.context.ignore import PathMatcher
from ctxwatchd.context.tree import Tree
from ctxwatchd.context.view import WIDE_FOLDER, ContextView

TIME_LIMIT_S = 2.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, CtxwatchClient]]:
    folder = tmp_path_factory.mktemp("hostile-budgets-daemon")
    (folder / "config.toml").write_text(f"answer_time_limit = {TIME_LIMIT_S}\n")
    daemon = start_daemon(folder)
    client = guarded_client(daemon.socket)
    innocent = make_context(tmp_path_factory.mktemp("innocent") / "ctx", "FROM scratch\nCOPY a /a\n", {"a": "a\n"})
    client.register(str(innocent), name="innocent")
    yield daemon, client
    client.close()
    daemon.client.close()
    stop_or_kill(daemon.process)


def slow_dockerfile(runs: int, copies: int) -> str:
    """Within every cap, but each COPY --from of a wildcard depends on every RUN of the stage it reads
    (each is named in its report): work for the keys that grows with RUNs times copies."""
    lines = ["FROM alpine AS many", *(f"RUN echo {i}" for i in range(runs)), "FROM alpine"]
    lines += [f"COPY --from=many /f{i}* /app/{i}/" for i in range(copies)]
    return "\n".join(lines) + "\n"


def test_an_answer_past_its_time_limit_is_an_error_and_the_others_answer_meanwhile(served, tmp_path):
    daemon, client = served
    client.register(str(make_context(tmp_path / "slow", slow_dockerfile(3000, 3000))), name="slow")
    answered: dict[str, object] = {}
    asker = threading.Thread(target=lambda: answered.update(slow=report_of(client, "slow")))
    asker.start()
    wait_until(lambda: "answering for slow" in client.daemon_status().activity, what="the slow answer", interval=0.01)
    # While the slow answer runs, another context (another root) answers, more than once.
    others = [report_of(client, "innocent") for _ in range(3)]
    asker.join(timeout=60)
    assert not asker.is_alive(), "the slow answer was not stopped"
    assert [r.error for r in others] == ["", "", ""]
    report = answered["slow"]
    assert f"answering took longer than {TIME_LIMIT_S:g} s (answer_time_limit" in report.error, report.error
    assert "computing the step keys" in report.error
    assert report.steps == []
    # The root's lock was released: the context can be asked again, and removed.
    assert "answer_time_limit" in report_of(client, "slow").error
    client.unregister("slow")
    assert_serving(daemon, client)


def test_more_copy_exclude_sets_than_the_limit_are_an_error_on_the_step(served, tmp_path):
    daemon, client = served
    sets = limits.MAX_EXCLUDE_SETS
    copies = [f"COPY --exclude=x{i} . /d{i}" for i in range(sets + 2)]
    ctx = make_context(tmp_path / "excludes", "\n".join(["FROM scratch", *copies, ""]), {"a": "a\n"})
    client.register(str(ctx), name="excludes")
    report = report_of(client, "excludes")
    assert report.error == ""
    errors = [s.error for s in report.steps]
    assert errors[:sets] == [""] * sets
    assert all(f"more than {sets} different COPY --exclude sets" in e for e in errors[sets:]), errors[sets:]
    # The same sets again are no new views: a COPY repeating an earlier set is answered.
    repeat = "\n".join(["FROM scratch", *copies, "COPY --exclude=x0 . /again", ""])
    (ctx / "Dockerfile").write_text(repeat)
    assert report_of(client, "excludes").steps[-1].error == ""
    assert_serving(daemon, client)


def wide_tree(root: Path, folders: int, files: int) -> None:
    """A wide folder (more than WIDE_FOLDER entries: encoded in blocks) of small folders."""
    for i in range(folders):
        sub = root / "wide" / f"d{i:05}"
        sub.mkdir(parents=True)
        for j in range(files):
            (sub / f"f{j}").write_text(f"{i} {j}\n")


def test_a_walk_stopped_by_the_time_limit_goes_on_where_it_stopped_and_agrees(tmp_path):
    """Stopping a walk of a wide folder half-way keeps what it finished and
    loses nothing: walks under a tiny limit, repeated, end with the digest a
    walk without a limit computes."""
    wide_tree(tmp_path / "ctx", WIDE_FOLDER + 200, 4)
    view = ContextView(Tree(str(tmp_path / "ctx")), "", PathMatcher([]))
    stops, node = 0, None
    for _ in range(10_000):  # each walk gets further: never this many
        try:
            with time_limit(0.05):
                node = view.node("")
            break
        except OutOfTime as e:
            assert e.doing == "reading the context's files"
            stops += 1
    assert stops >= 2, "the walk was never stopped half-way: make the tree larger"
    fresh = ContextView(Tree(str(tmp_path / "ctx")), "", PathMatcher([])).node("")
    assert node is not None and fresh is not None and node.digest == fresh.digest
    # And a change after the stopped walks is seen.
    os.unlink(tmp_path / "ctx" / "wide" / "d00007" / "f1")
    view.tree.refresh("wide/d00007/f1")
    changed = ContextView(Tree(str(tmp_path / "ctx")), "", PathMatcher([])).node("")
    assert changed is not None and view.node("").digest == changed.digest != fresh.digest
