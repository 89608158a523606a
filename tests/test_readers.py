"""Many readers: identical requests that arrive together share one answer
(server/sharing.py), and sharing never costs a request a write made before it
was sent, nor gives it the answer to another question."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from support.contexts import make_context

from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatchd.server.sharing import SharedAnswers

READERS = 8  # fewer than the changed paths a step lists (CHANGED_PATHS_LIMIT), so each is named
ROUNDS = 15


def _copy_step(report: pb.Report) -> pb.Step:
    return next(step for step in report.steps if step.instruction.startswith("COPY"))


def _run_together(work, count: int) -> None:
    """Run `work(i)` on `count` threads started at once; re-raise the first failure."""
    start = threading.Barrier(count)
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as e:  # handed to the test's thread
            failures.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a reader hung"
    if failures:
        raise failures[0]


def test_each_of_many_readers_sees_the_write_it_made_before_asking(shared_daemon, tmp_path: Path) -> None:
    """Readers ask the same question at once (so they share answers); each
    first changes a file of its own, and its answer must name that change,
    then, once the file has its built content back, must not."""
    files = {f"f{i}.txt": "built\n" for i in range(READERS)}
    folder = make_context(tmp_path / "ctx", "FROM scratch\nCOPY . /app/\n", files)
    client = shared_daemon.client
    client.register(str(folder), name="many-readers")
    assert client.mark_built("many-readers").report.all_cached

    def reader(i: int) -> None:
        mine = folder / f"f{i}.txt"
        for round in range(ROUNDS):
            mine.write_text(f"reader {i}, round {round}\n")
            [report] = client.reports(["many-readers"])
            changed = {change.path for change in _copy_step(report).changed_paths}
            assert mine.name in changed, f"reader {i}, round {round}: its write is missing from {sorted(changed)}"
            mine.write_text("built\n")
            [report] = client.reports(["many-readers"])
            changed = {change.path for change in _copy_step(report).changed_paths}
            assert mine.name not in changed, f"reader {i}, round {round}: its file is built again, not changed"

    _run_together(reader, READERS)
    [report] = client.reports(["many-readers"])
    assert report.all_cached


def test_readers_asking_different_questions_at_once_get_their_own_answers(shared_daemon, tmp_path: Path) -> None:
    """Requests that differ (target, build args) never share an answer, even when they come together."""
    dockerfile = 'FROM scratch AS one\nARG WHO\nCOPY one.txt /one\nRUN ["/bin/true"]\n'
    dockerfile += "FROM scratch AS two\nCOPY two.txt /two\n"
    folder = make_context(tmp_path / "ctx", dockerfile, {"one.txt": "1\n", "two.txt": "2\n"})
    client = shared_daemon.client
    client.register(str(folder), name="questions")
    questions = [
        pb.BuildOptions(target="one"),
        pb.BuildOptions(target="two"),
        pb.BuildOptions(target="one", build_args={"WHO": "me"}),
        pb.BuildOptions(target="one", build_args={"WHO": "you"}),
    ]
    expected = [client.reports(["questions"], options)[0] for options in questions]
    assert expected[0].steps[-1].instruction != expected[1].steps[-1].instruction
    assert expected[2].steps[-1].key != expected[3].steps[-1].key  # a RUN sees its build args

    def reader(i: int) -> None:
        for _ in range(ROUNDS):
            [report] = client.reports(["questions"], questions[i % len(questions)])
            assert [s.key for s in report.steps] == [s.key for s in expected[i % len(questions)].steps]

    _run_together(reader, 4 * len(questions))


# -- sharing.py on its own: the order in which answers start -------------------------------------


async def _until(condition) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


def test_requests_arriving_while_an_answer_runs_share_the_next_one() -> None:
    async def scenario() -> None:
        shared: SharedAnswers[int] = SharedAnswers()
        started: list[int] = []
        release = [asyncio.Event(), asyncio.Event()]

        async def work() -> int:
            run = len(started)
            started.append(run)
            await release[run].wait()
            return run

        first = asyncio.ensure_future(shared.answer(b"q", work))
        await _until(lambda: started == [0])
        later = [asyncio.ensure_future(shared.answer(b"q", work)) for _ in range(5)]
        for _ in range(10):
            await asyncio.sleep(0)
        assert started == [0], "an answer started before the one running ended"
        release[0].set()
        assert await first == 0
        await _until(lambda: started == [0, 1])
        release[1].set()
        assert await asyncio.gather(*later) == [1] * 5, "the requests that came during the first answer share one"
        assert started == [0, 1]

    asyncio.run(scenario())


def test_requests_for_other_keys_do_not_wait() -> None:
    async def scenario() -> None:
        shared: SharedAnswers[str] = SharedAnswers()
        hold = asyncio.Event()

        async def slow() -> str:
            await hold.wait()
            return "slow"

        async def quick() -> str:
            return "quick"

        waiting = asyncio.ensure_future(shared.answer(b"slow", slow))
        assert await shared.answer(b"quick", quick) == "quick"
        assert not waiting.done()
        hold.set()
        assert await waiting == "slow"

    asyncio.run(scenario())


def test_a_caller_that_leaves_leaves_the_answer_to_the_others() -> None:
    async def scenario() -> None:
        shared: SharedAnswers[str] = SharedAnswers()
        hold = asyncio.Event()

        async def work() -> str:
            await hold.wait()
            return "answer"

        leaving = asyncio.ensure_future(shared.answer(b"q", work))
        staying = asyncio.ensure_future(shared.answer(b"q", work))
        await asyncio.sleep(0)
        leaving.cancel()
        hold.set()
        assert await staying == "answer"
        with pytest.raises(asyncio.CancelledError):
            await leaving

    asyncio.run(scenario())


def test_a_failure_reaches_every_request_sharing_the_answer() -> None:
    async def scenario() -> None:
        shared: SharedAnswers[str] = SharedAnswers()

        async def work() -> str:
            raise LookupError("no such context")

        results = await asyncio.gather(*(shared.answer(b"q", work) for _ in range(3)), return_exceptions=True)
        assert [type(r) for r in results] == [LookupError] * 3
        assert await shared.answer(b"q", lambda: asyncio.sleep(0, "next")) == "next"

    asyncio.run(scenario())
