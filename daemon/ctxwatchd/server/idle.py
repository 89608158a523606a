"""Exit after a while without clients: for a daemon the CLI started on demand.

One timer, started when the last call or stream ends and cancelled when the
next one begins: a daemon nobody asks costs no CPU waiting for it. Off (0)
unless `--idle-timeout` is given; the systemd service does not give it.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import grpc

from .handlers import Wrap, around_each_call
from .settings import SETTINGS

log = logging.getLogger("ctxwatchd")


def wraps() -> list[Wrap]:
    """What makes each method count its calls, when an idle timeout is set (one timer for
    the daemon's life: a server started again on a re-bound socket shares it)."""
    return [_the_timer().wrap] if SETTINGS.idle_timeout_s > 0 else []


@functools.cache
def _the_timer() -> IdleTimer:
    return IdleTimer(SETTINGS.idle_timeout_s, _exit)


def _exit() -> None:
    log.info("no client for %g s: exiting (--idle-timeout)", SETTINGS.idle_timeout_s)
    os.kill(os.getpid(), signal.SIGTERM)  # the main thread waits for exactly that


class IdleTimer:
    """Calls `on_idle` once no call or stream has been open for `timeout_s` seconds."""

    def __init__(self, timeout_s: float, on_idle: Callable[[], None]) -> None:
        self._timeout_s = timeout_s
        self._on_idle = on_idle
        self._lock = threading.Lock()
        self._open = 0
        self._timer: threading.Timer | None = None
        with self._lock:
            self._arm()

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The method's handler, each of its calls counted."""
        return around_each_call(handler, self._counted)

    @asynccontextmanager
    async def _counted(self, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        self._begin()
        try:
            yield
        finally:
            self._end()

    def _begin(self) -> None:
        with self._lock:
            self._open += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _end(self) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0:
                self._arm()

    def _arm(self) -> None:
        timer = threading.Timer(self._timeout_s, self._fire)
        timer.daemon = True
        timer.name = "idle-timeout"
        self._timer = timer
        timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._open or self._timer is None or threading.current_thread() is not self._timer:
                return  # a call began meanwhile
        self._on_idle()
