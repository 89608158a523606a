"""What one context may cost: how long one answer may take, and how many
paths its watched folder's tree may list (memory).

An answer for one context (parse, plan, step keys, the walk of its files) runs
under a time limit; the long loops call `check`, which raises OutOfTime once
the limit has passed. That context's report then says so, its root's lock is
released, and the daemon serves the others: a huge or pathological Dockerfile
or tree cannot hold a worker, or the contexts sharing its root, for ever.
What was read and hashed before the stop is kept (file digests, folder
digests finished), so asking again goes on from there.

The time limit is per thread: one answer's, set by `time_limit` around it.

A long answer (a cold index) also steps aside: past LONG_ANSWER_S, `check`
lets the other threads run every STEP_ASIDE_EVERY_S, so a short answer for
another context waits for a few of these steps, not for the interpreter to
force a switch at each of its own (about a millisecond each). Short answers
never step aside: many of them for one root would only queue for its lock.

The tree of one watched folder holds every path listed in it (about 0.4 KB
of memory each): past `max_tree_entries` paths, listing raises TreeTooLarge,
its contexts' reports say so and the tree's listings are dropped, so one
context with a huge folder it does not ignore cannot take the memory of the
daemon serving the others.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

LONG_ANSWER_S = 0.02
STEP_ASIDE_EVERY_S = 0.0002
DEFAULT_TIME_LIMIT_S = 120.0  # the config file's answer_time_limit; README "Limits"
DEFAULT_MAX_TREE_ENTRIES = 4_000_000  # the config file's max_tree_entries: about 1.6 GB of memory


class OutOfTime(Exception):
    """An answer took longer than its time limit."""

    def __init__(self, limit_s: float, doing: str) -> None:
        super().__init__(
            f"answering took longer than {limit_s:g} s (answer_time_limit in the config file) and was stopped "
            f"while {doing}; the daemon serves the other contexts. What was read and hashed is kept: "
            "asking again goes on from there"
        )
        self.doing = doing


class TreeTooLarge(Exception):
    """A watched folder's tree would list more paths than its cap."""

    def __init__(self, root: str, cap: int) -> None:
        super().__init__(f"{root} holds more than {cap:,} files and folders")
        self.root = root
        self.cap = cap


class _Limit(threading.local):
    deadline: float | None = None
    seconds: float = 0.0
    started: float = float("inf")  # when the outermost answer of this thread started
    stepped_aside: float = 0.0


_limit = _Limit()


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Within the block, on this thread, `check` raises OutOfTime once `seconds`
    have passed (0 or less: no limit). Nested, the earlier deadline holds."""
    outer, outer_seconds, outer_started = _limit.deadline, _limit.seconds, _limit.started
    now = time.monotonic()
    _limit.started = min(outer_started, now)
    if seconds > 0:
        deadline = now + seconds
        if outer is None or deadline < outer:
            _limit.deadline, _limit.seconds = deadline, seconds
    try:
        yield
    finally:
        _limit.deadline, _limit.seconds, _limit.started = outer, outer_seconds, outer_started


def check(doing: str) -> None:
    """Raise OutOfTime when this thread's answer is past its time limit, and
    step aside now and then in a long one (see the module's docstring).
    Called in every loop whose length an untrusted input decides: cheap."""
    now = time.monotonic()
    deadline = _limit.deadline
    if deadline is not None and now > deadline:
        raise OutOfTime(_limit.seconds, doing)
    if now - _limit.started > LONG_ANSWER_S and now - _limit.stepped_aside > STEP_ASIDE_EVERY_S:
        _limit.stepped_aside = now
        os.sched_yield()  # releases the interpreter lock, and the core, for a moment
