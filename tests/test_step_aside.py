"""A long answer steps aside now and then (releases the interpreter lock
and the core), so short answers for other contexts get through; a short
answer never does (many of them for one root would only queue for its lock)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from ctxwatchd import budget


@pytest.fixture
def steps_aside(monkeypatch) -> list[float]:
    """Each time check() steps aside (the real sched_yield runs too)."""
    calls: list[float] = []
    real = os.sched_yield

    def counted() -> None:
        calls.append(time.monotonic())
        real()

    monkeypatch.setattr(os, "sched_yield", counted)
    return calls


def answer_for(seconds: float) -> float:
    """An answer whose loops call check() for `seconds`; when it started."""
    started = time.monotonic()  # before the answer's own start: its first 20 ms end after ours
    with budget.time_limit(0):
        while time.monotonic() < started + seconds:
            budget.check("working")
    return started


def test_a_long_answer_steps_aside_now_and_then(steps_aside):
    started = answer_for(budget.LONG_ANSWER_S * 3)
    assert len(steps_aside) >= 2
    assert steps_aside[0] - started >= budget.LONG_ANSWER_S  # not in its first 20 ms
    # Now and then, not at every check (the loop checks about once a microsecond).
    assert len(steps_aside) <= 2 * budget.LONG_ANSWER_S / budget.STEP_ASIDE_EVERY_S + 1


def test_a_short_answer_never_steps_aside(steps_aside):
    answer_for(budget.LONG_ANSWER_S / 4)
    assert steps_aside == []


def test_outside_an_answer_nothing_steps_aside(steps_aside):
    end = time.monotonic() + budget.LONG_ANSWER_S * 2
    while time.monotonic() < end:
        budget.check("working")
    assert steps_aside == []


@pytest.fixture
def busy_core():
    """This thread and two programs that never stop computing share one core."""
    cpu = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    spin = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True:\n    pass\n"
    programs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2)]
    os.sched_setaffinity(0, {cpu})  # this thread only
    try:
        time.sleep(0.2)  # both are computing now
        yield cpu
    finally:
        os.sched_setaffinity(0, before)
        for program in programs:
            program.kill()
            program.wait()


@pytest.fixture
def timed_steps(monkeypatch) -> list[float]:
    """How long each step aside took (the real sched_yield runs)."""
    aside: list[float] = []
    real = os.sched_yield

    def timed() -> None:
        started = time.monotonic()
        real()
        aside.append(time.monotonic() - started)

    monkeypatch.setattr(os, "sched_yield", timed)
    return aside


def test_on_a_busy_core_a_long_answer_gives_at_most_a_tenth_of_its_time_away(busy_core, timed_steps):
    """Each step aside there hands the core to another program for
    milliseconds: the steps then come less often, rather than the answer
    giving most of its time away (the rule before: about 95% of it here)."""
    aside = timed_steps
    seconds = 1.0
    answer_for(seconds)
    assert max(aside) > 20 * budget.STEP_ASIDE_EVERY_S, "the core was not busy: this test shows nothing"
    # A tenth, and the last step's own length (nothing after it in the answer makes up for it).
    assert sum(aside) <= budget.STEP_ASIDE_SHARE * seconds + max(aside)


def test_time_taken_by_the_daemons_own_threads_does_not_space_the_steps(timed_steps):
    """What stepping aside is for: another thread of the daemon runs (here,
    one that computes on the same core). The steps go on every
    STEP_ASIDE_EVERY_S after each, however long that thread ran."""
    cpu = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    stop = threading.Event()

    def compute() -> None:
        os.sched_setaffinity(0, {cpu})  # this thread only
        while not stop.is_set():
            pass

    other = threading.Thread(target=compute)
    os.sched_setaffinity(0, {cpu})
    other.start()
    try:
        seconds = 0.5
        answer_for(seconds)
    finally:
        stop.set()
        other.join()
        os.sched_setaffinity(0, before)
    assert max(timed_steps) > 20 * budget.STEP_ASIDE_EVERY_S, "the other thread never ran: this test shows nothing"
    # Spaced by the time given away, each step would be followed by nine
    # times its length without one: at most a tenth of the answer in steps.
    assert sum(timed_steps) > 2 * budget.STEP_ASIDE_SHARE * seconds
