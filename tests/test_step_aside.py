"""A long answer steps aside now and then (releases the interpreter lock
and the core), so short answers for other contexts get through; a short
answer never does (many of them for one root would only queue for its lock)."""

from __future__ import annotations

import os
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
