"""Identical requests that arrive together share one answer.

Fifty clients asking the same question at once would each cost a hop to a
worker thread, a sync and an evaluation, all of them taking turns at the
interpreter lock. Instead, the requests with the same bytes that arrive
while one such request is being answered wait, together, for the next
answer, which starts once the current one ends: one worker hop, one sync and
one evaluation serve them all.

The next answer starts after every request sharing it arrived, and a request
takes what it syncs (its ticket) when it starts, so each request still sees
every write made before it was sent. Runs on the server's event loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

_Answer = TypeVar("_Answer")


class SharedAnswers(Generic[_Answer]):
    """One answer at a time per request key; the requests that come meanwhile share the next one."""

    def __init__(self) -> None:
        self._next: dict[bytes, asyncio.Task[_Answer]] = {}  # not started: requests arriving now join it
        self._running: dict[bytes, asyncio.Task[_Answer]] = {}  # started: a request arriving now is too late

    async def answer(self, key: bytes, work: Callable[[], Awaitable[_Answer]]) -> _Answer:
        """The answer for `key`, from `work` started after this call (or shared with calls of the same key
        that will start it). A caller that leaves (its call cancelled) leaves the answer to the others."""
        shared = self._next.get(key)
        if shared is None:
            shared = self._next[key] = asyncio.ensure_future(self._start(key, work))
            shared.add_done_callback(_retrieved)
        return await asyncio.shield(shared)

    async def _start(self, key: bytes, work: Callable[[], Awaitable[_Answer]]) -> _Answer:
        running = self._running.get(key)
        if running is not None:
            await asyncio.wait([running])  # it may have started before a request now waiting here
        this = self._next.pop(key)  # from here on, a new request waits for the next answer
        self._running[key] = this
        try:
            return await work()
        finally:
            if self._running.get(key) is this:
                del self._running[key]


def _retrieved(task: asyncio.Task) -> None:
    """Mark a shared answer's failure as seen: each waiting caller got it, and when every caller left,
    nobody needs it (asyncio would log it as never retrieved)."""
    if not task.cancelled():
        task.exception()
