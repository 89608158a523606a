"""The gRPC service: validates requests, asks the engine, maps errors to status codes.

It runs on grpc's asyncio server (serving.py): an open call costs no thread.
The engine's work (hashing, parsing: blocking, CPU) runs on a pool of worker
threads, never on the event loop, so a watch stream waiting for a change, or
500 of them, takes no worker, and the health check (served on the loop)
answers whatever the workers are doing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor

import grpc

from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatch_api.v1 import ctxwatch_pb2_grpc as pb_grpc

from .. import __version__
from ..engine import Engine
from ..errors import AlreadyExists, ApiError, FailedPrecondition, InvalidArgument, NotFound
from ..limits import MAX_CONTEXTS_PER_REQUEST, REPLY_BUDGET_BYTES
from ..registry import ContextRef, Registered
from ..requests import BuildOptions
from .settings import SETTINGS
from .sharing import SharedAnswers
from .wire import (
    build_options,
    build_run,
    built_message,
    context_message,
    context_ref,
    context_refs,
    printable,
    readers_message,
    registration,
    report_message,
    root_message,
    stats_message,
)

log = logging.getLogger(__name__)
WATCH_DEBOUNCE_S = 0.05


_STATUS_CODES = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
}


def status_code(error: ApiError) -> grpc.StatusCode:
    """The gRPC status a client's error is answered with."""
    return _STATUS_CODES.get(type(error), grpc.StatusCode.INTERNAL)


def _answers(method: Callable) -> Callable:
    """An RPC from a method that answers on a worker thread: ApiError becomes its
    status code; any other failure INTERNAL, logged."""
    return _rpc(method, shared=False)


def _shared_answers(method: Callable) -> Callable:
    """An RPC like `_answers` whose identical requests arriving together share
    one answer (sharing.py): for methods that only read."""
    return _rpc(method, shared=True)


def _rpc(method: Callable, shared: bool) -> Callable:
    @functools.wraps(method)
    async def rpc(self: CtxwatchService, request, context: grpc.aio.ServicerContext):
        try:
            if shared:
                key = request.SerializeToString(deterministic=True)
                return await self.shared[method.__name__].answer(key, lambda: self.on_worker(method, self, request))
            return await self.on_worker(method, self, request)
        except ApiError as e:
            await context.abort(status_code(e), e.message)
        except Exception as e:  # the daemon stays up whatever one request does
            log.exception("%s failed", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method.__name__}: {e}")

    return rpc


class CtxwatchService(pb_grpc.CtxwatchServicer):
    def __init__(
        self, engine: Engine, socket_path: str, state_dir: str, shutdown: threading.Event, workers: Executor
    ) -> None:
        self.engine = engine
        self.socket_path = socket_path
        self.state_dir = state_dir
        self.shutdown = shutdown
        self.workers = workers  # where the engine's work runs: never on the event loop
        self.started = time.monotonic()
        self.shared: defaultdict[str, SharedAnswers] = defaultdict(SharedAnswers)  # by method name

    async def on_worker(self, work: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(self.workers, work, *args)

    @_answers
    def RegisterContext(self, request: pb.RegisterContextRequest) -> pb.RegisterContextResponse:
        row, updated = self.engine.register(registration(request))
        return pb.RegisterContextResponse(context=context_message(row), updated=updated)

    @_answers
    def UnregisterContext(self, request: pb.UnregisterContextRequest) -> pb.UnregisterContextResponse:
        row, kept = self.engine.unregister(context_ref(request.context), forget=request.forget)
        return pb.UnregisterContextResponse(context=context_message(row), builds_kept=kept)

    @_answers
    def ListContexts(self, request: pb.ListContextsRequest) -> pb.ListContextsResponse:
        return pb.ListContextsResponse(contexts=[context_message(row) for row in self.engine.contexts()])

    @_shared_answers
    def GetReports(self, request: pb.GetReportsRequest) -> pb.GetReportsResponse:
        targets = self.engine.resolve_all(_limited(request.contexts))
        _each_once([t.row.name for t in targets])
        reports = self.engine.reports(targets, build_options(request.options))
        return pb.GetReportsResponse(reports=_within_budget([report_message(r) for r in reports]))

    @_answers
    def MarkBuilt(self, request: pb.MarkBuiltRequest) -> pb.MarkBuiltResponse:
        run = build_run(request.run) if request.HasField("run") else None
        reg = self.engine.resolve(context_ref(request.context))
        built = built_message(self.engine.mark_built(reg, build_options(request.options), run))
        if built.ByteSize() > REPLY_BUDGET_BYTES:
            built.report.CopyFrom(_within_budget([built.report])[0])
        return built

    @_answers
    def PruneBuilds(self, request: pb.PruneBuildsRequest) -> pb.PruneBuildsResponse:
        builds, nodes = self.engine.prune(
            _limited(request.contexts), request.keep, request.older_than_seconds, request.dry_run
        )
        return pb.PruneBuildsResponse(builds_removed=builds, nodes_removed=nodes)

    async def WatchInvalidations(
        self, request: pb.WatchInvalidationsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Report]:
        """Stream the report, then every changed one, until the client leaves.
        Between two reports the stream only waits on the event loop: no thread."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake() -> None:  # on the thread that made the change: hand the news to the loop
            loop.call_soon_threadsafe(changed.set)

        stop_listening = self.engine.on_activity(wake)
        try:
            if not self.engine.watching:
                raise FailedPrecondition("watch needs the daemon (drop --no-daemon)")
            reg = await self.on_worker(self.engine.resolve, context_ref(request.context))
            options = build_options(request.options)
            # (While a stream waits it holds its context: no other context has that id.)
            shared_key = b"%d\0" % id(reg) + request.options.SerializeToString(deterministic=True)
            sent = b""
            while not self.shutdown.is_set():
                changed.clear()  # before answering: a change while it runs means one more round
                # Streams of one context with the same options share the answer to a change.
                report = await self.shared["WatchInvalidations"].answer(
                    shared_key, lambda: self.on_worker(self._watched_report, reg, options)
                )
                encoded = report.SerializeToString(deterministic=True)
                if encoded != sent:
                    sent = encoded
                    yield report
                await changed.wait()  # a client that leaves cancels this wait
                await asyncio.sleep(WATCH_DEBOUNCE_S)  # let a burst of events settle into one report
        except ApiError as e:
            await context.abort(status_code(e), e.message)
        finally:
            stop_listening()

    def _watched_report(self, reg: Registered, options: BuildOptions) -> pb.Report:
        if not self.engine.is_registered(reg):
            raise NotFound(f"context: {reg.row.name!r} was unregistered")
        (report,) = _within_budget([report_message(self.engine.report(reg, options))])
        return report

    @_answers
    def FindReaders(self, request: pb.FindReadersRequest) -> pb.FindReadersResponse:
        found = readers_message(self.engine.find_readers(request.path, _limited(request.contexts)))
        if found.ByteSize() > REPLY_BUDGET_BYTES:
            used, kept = 0, []
            for reader in found.readers:
                used += reader.ByteSize()
                if used > REPLY_BUDGET_BYTES:
                    break
                kept.append(reader)
            left_out = len(found.readers) - len(kept)
            del found.readers[len(kept) :]
            found.unknown.append(
                f"{left_out} readers left out: the reply would exceed {REPLY_BUDGET_BYTES} bytes; name one context"
            )
        return found

    @_answers
    def GetDaemonStatus(self, request: pb.GetDaemonStatusRequest) -> pb.DaemonStatus:
        return pb.DaemonStatus(
            version=__version__,
            pid=os.getpid(),
            socket_path=printable(self.socket_path),
            state_dir=printable(self.state_dir),
            contexts=self.engine.context_count(),
            roots=[root_message(root) for root in self.engine.status()],
            memory_rss_bytes=_rss_bytes(),
            queue_depth=self.engine.queue_depth(),
            uptime_seconds=time.monotonic() - self.started,
            activity=printable(self.engine.activity()),
            log_file=printable(SETTINGS.log_destination),
            idle_timeout_seconds=SETTINGS.idle_timeout_s,
            predictions=stats_message(self.engine.prediction_stats()),
        )

    @_answers
    def Shutdown(self, request: pb.ShutdownRequest) -> pb.ShutdownResponse:
        log.info("shutdown requested by a client")
        os.kill(os.getpid(), signal.SIGTERM)  # the main thread waits for exactly that
        return pb.ShutdownResponse()


def _limited(refs) -> list[ContextRef]:
    if len(refs) > MAX_CONTEXTS_PER_REQUEST:
        raise InvalidArgument(
            f"contexts: {len(refs)} given; at most {MAX_CONTEXTS_PER_REQUEST} per request (an empty list means all)"
        )
    return context_refs(refs)


def _each_once(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidArgument(f"contexts: {name!r} is named more than once; name each context once")
        seen.add(name)


def _within_budget(reports: list[pb.Report]) -> list[pb.Report]:
    """The reports, those past the reply budget without their steps (a note says
    how many were left out): a large answer is cut, never failed."""
    used = 0
    sent = []
    for whole in reports:
        report, size = whole, whole.ByteSize()
        if used + size > REPLY_BUDGET_BYTES:
            cut = pb.Report()
            cut.CopyFrom(whole)  # the whole one is shared (wire.report_message): change a copy
            del cut.steps[:]
            cut.notes.append(
                f"{len(whole.steps)} steps left out: the reply would exceed {REPLY_BUDGET_BYTES} bytes; "
                "ask for this context alone"
            )
            report, size = cut, cut.ByteSize()
        used += size
        sent.append(report)
    return sent


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
