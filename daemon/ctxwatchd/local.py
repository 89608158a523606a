"""The engine without a daemon: scan, answer, exit (`ctxwatch --no-daemon`).

`LocalClient` offers the same methods as the gRPC client, backed by an
in-process engine over the same state file, so CI and one-off runs get the
same answers (and the same recorded builds) as the daemon. It is also the
honest baseline the daemon is measured against.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ctxwatch.client import CtxwatchError, context_ref, register_request
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

from .cache.store import Store
from .engine import Engine, context_message
from .errors import ApiError
from .server.main import STATE_FILE


class LocalClient:
    """In-process stand-in for CtxwatchClient (no watching: every call scans)."""

    def __init__(self, state_dir: Path) -> None:
        self.store = Store(state_dir / STATE_FILE)
        self.engine = Engine(self.store, watch=False)

    def register(
        self,
        path: str,
        dockerfile: str | None = None,
        build_args=None,
        target: str | None = None,
        name: str | None = None,
    ) -> pb.RegisterContextResponse:
        with _errors():
            row, updated = self.engine.register(register_request(path, dockerfile, build_args, target, name))
        return pb.RegisterContextResponse(context=context_message(row), updated=updated)

    def unregister(self, ref) -> pb.Context:
        with _errors():
            return context_message(self.engine.unregister(_as_ref(ref)))

    def list(self) -> list[pb.Context]:
        return [context_message(c.row) for c in sorted(self.engine.contexts.values(), key=lambda c: c.row.name)]

    def reports(self, refs: Iterable = (), options: pb.BuildOptions | None = None) -> list[pb.Report]:
        options = options or pb.BuildOptions()
        with _errors():
            targets = [self.engine.resolve(_as_ref(r)) for r in refs] or sorted(
                self.engine.contexts.values(), key=lambda c: c.row.name
            )
            return self.engine.reports(targets, options)

    def mark_built(self, ref, options: pb.BuildOptions | None = None) -> pb.MarkBuiltResponse:
        with _errors():
            return self.engine.mark_built(self.engine.resolve(_as_ref(ref)), options or pb.BuildOptions())

    def prune(self, refs: Iterable = (), keep: int = 0) -> pb.PruneBuildsResponse:
        with _errors():
            builds, nodes = self.engine.prune([_as_ref(r) for r in refs], keep)
        return pb.PruneBuildsResponse(builds_removed=builds, nodes_removed=nodes)

    def watch(self, ref, options: pb.BuildOptions | None = None) -> Iterator[pb.Report]:
        raise CtxwatchError("FAILED_PRECONDITION", "watch needs the daemon (drop --no-daemon)")

    def close(self) -> None:
        self.engine.close()
        self.store.close()

    def __enter__(self) -> LocalClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _as_ref(ref) -> pb.ContextRef:
    return context_ref(ref) if isinstance(ref, str) else ref


@contextmanager
def _errors() -> Iterator[None]:
    """Engine errors read exactly as the daemon's would."""
    try:
        yield
    except ApiError as e:
        raise CtxwatchError(e.code.name, e.message) from None
