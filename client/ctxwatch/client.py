"""A typed Python client for ctxwatchd: one method per RPC, errors as CtxwatchError."""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import grpc

from ctxwatch_api import paths
from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatch_api.v1 import ctxwatch_pb2_grpc as pb_grpc
from ctxwatch_api.wire import channel_options

DEFAULT_CONNECT_TIMEOUT = 10.0

RefLike = pb.ContextRef | str


class CtxwatchError(Exception):
    """A failed call: `code` is the gRPC status name (e.g. NOT_FOUND), `message` the daemon's."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def channel_target(socket_path: Path) -> str:
    """The gRPC target for a Unix socket path."""
    return f"unix:{os.path.abspath(socket_path)}"


def context_ref(text: str) -> pb.ContextRef:
    """A CLI argument as a ContextRef: an existing path by its absolute path, anything else by name."""
    if os.path.exists(text):
        return pb.ContextRef(path=os.path.abspath(text))
    return pb.ContextRef(name=text)


def has_error(report: pb.Report) -> bool:
    """The context failed (e.g. its Dockerfile does not parse) or a step would fail (e.g. an unreadable source)."""
    return bool(report.error) or any(step.status == pb.STEP_STATUS_ERROR for step in report.steps)


def parse_build_args(items: Iterable[str]) -> dict[str, str]:
    """`["K=V", ...]` as a dict (later items win, as in docker build)."""
    build_args: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"invalid build arg {item!r}: expected KEY=VALUE")
        build_args[key] = value
    return build_args


def build_options(
    build_args: Iterable[str] = (),
    target: str | None = None,
    no_cache: bool = False,
    no_cache_filter: Iterable[str] = (),
    strict_remote: bool | None = None,
    build_contexts: Iterable[str] = (),
) -> pb.BuildOptions:
    """BuildOptions from docker-build-style values; `no_cache_filter` items may be comma-separated.
    `strict_remote` None leaves it to the context's setting and the daemon's config file."""
    stages = [stage.strip() for item in no_cache_filter for stage in item.split(",")]
    return pb.BuildOptions(
        build_args=parse_build_args(build_args),
        target=target or "",
        no_cache=no_cache,
        no_cache_filter=[stage for stage in stages if stage],
        strict_remote=strict_remote,
        build_contexts=parse_build_contexts(build_contexts),
    )


def parse_build_contexts(items: Iterable[str]) -> dict[str, str]:
    """`["name=VALUE", ...]` (`--build-context`): a folder (made absolute against
    the current folder, as docker buildx does) or a docker-image://, oci-layout:// value."""
    contexts: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"invalid build context {item!r}: expected NAME=PATH or NAME=docker-image://REF")
        contexts[name] = named_context_value(value, os.getcwd())
    return contexts


def named_context_value(value: str, cwd: str) -> str:
    """A named context's value as the daemon takes it: a folder made absolute
    against `cwd`, anything else (docker-image://, oci-layout://, target:, a
    git or http URL) as given."""
    if "://" in value or value.startswith(("target:", "git@")):
        return value
    return os.path.normpath(os.path.join(cwd, value))


class CtxwatchClient:
    """One connection to ctxwatchd. Use `connect()` to get one; close it (or use `with`)."""

    def __init__(self, channel: grpc.Channel, socket_path: Path, timeout: float | None = None) -> None:
        self.socket_path = socket_path
        self._channel = channel
        self._stub = pb_grpc.CtxwatchStub(channel)
        # No default deadline: the first report after a cold start can take a while.
        self._timeout = timeout

    def register(
        self,
        path: str,
        dockerfile: str | None = None,
        build_args: Mapping[str, str] | None = None,
        target: str | None = None,
        name: str | None = None,
        **settings,
    ) -> pb.RegisterContextResponse:
        """Register (or update) a context; a relative `dockerfile` is relative to `path`.
        `settings`: build_contexts, no_cache, no_cache_filter, labels (RegisterContextRequest's fields)."""
        request = register_request(path, dockerfile, build_args, target, name, **settings)
        return self._call(self._stub.RegisterContext, request)

    def unregister(self, ref: RefLike, forget: bool = False) -> pb.UnregisterContextResponse:
        """Stop watching a context; its recorded builds are kept unless `forget`."""
        request = pb.UnregisterContextRequest(context=_as_ref(ref), forget=forget)
        return self._call(self._stub.UnregisterContext, request)

    def list(self) -> list[pb.Context]:
        return list(self._call(self._stub.ListContexts, pb.ListContextsRequest()).contexts)

    def reports(self, refs: Iterable[RefLike] = (), options: pb.BuildOptions | None = None) -> builtins.list[pb.Report]:
        """Reports of the given contexts (none: every registered one), in request order."""
        request = pb.GetReportsRequest(contexts=[_as_ref(ref) for ref in refs], options=options)
        return list(self._call(self._stub.GetReports, request).reports)

    def mark_built(
        self, ref: RefLike, options: pb.BuildOptions | None = None, run: pb.BuildRun | None = None
    ) -> pb.MarkBuiltResponse:
        """Record a build; `run` is a build ctxwatch watched (what BuildKit did, the prediction before it)."""
        request = pb.MarkBuiltRequest(context=_as_ref(ref), options=options, run=run)
        return self._call(self._stub.MarkBuilt, request)

    def prune(
        self, refs: Iterable[RefLike] = (), keep: int = 0, older_than_s: float = 0.0, dry_run: bool = False
    ) -> pb.PruneBuildsResponse:
        """Forget all but the newest `keep` builds of the contexts (none given: all), only those at least
        `older_than_s` old when given; with `dry_run`, count them and forget nothing."""
        request = pb.PruneBuildsRequest(
            contexts=[_as_ref(ref) for ref in refs], keep=keep, older_than_seconds=older_than_s, dry_run=dry_run
        )
        return self._call(self._stub.PruneBuilds, request)

    def watch(self, ref: RefLike, options: pb.BuildOptions | None = None) -> Iterator[pb.Report]:
        """The context's report now, then each time its answer changes (until closed)."""
        request = pb.WatchInvalidationsRequest(context=_as_ref(ref), options=options)
        stream = self._stub.WatchInvalidations(request)
        try:
            with self._rpc_errors():
                yield from stream
        finally:
            stream.cancel()

    def open_watch(self, ref: RefLike, options: pb.BuildOptions | None = None) -> Watch:
        """Like `watch`, as an object another thread may `cancel()` (an editor closing the file)."""
        request = pb.WatchInvalidationsRequest(context=_as_ref(ref), options=options)
        return Watch(self._stub.WatchInvalidations(request), self._rpc_errors)

    def find_readers(self, path: str, refs: Iterable[RefLike] = ()) -> pb.FindReadersResponse:
        """The steps of the contexts (none given: all) that read the file or folder `path`."""
        request = pb.FindReadersRequest(path=os.path.abspath(path), contexts=[_as_ref(ref) for ref in refs])
        return self._call(self._stub.FindReaders, request)

    def daemon_status(self) -> pb.DaemonStatus:
        return self._call(self._stub.GetDaemonStatus, pb.GetDaemonStatusRequest())

    def prediction_stats(self) -> pb.PredictionStats:
        """How the predictions of watched builds compared with BuildKit (part of the daemon's status)."""
        return self.daemon_status().predictions

    def shutdown(self) -> None:
        self._call(self._stub.Shutdown, pb.ShutdownRequest())

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> CtxwatchClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method, request):
        with self._rpc_errors():
            return method(request, timeout=self._timeout)

    @contextmanager
    def _rpc_errors(self) -> Iterator[None]:
        """The one place an RpcError becomes a CtxwatchError."""
        try:
            yield
        except grpc.RpcError as err:
            code = err.code()
            message = err.details() or ""
            if code == grpc.StatusCode.UNAVAILABLE:
                message = f"cannot reach ctxwatchd on {self.socket_path}: {message}"
            raise CtxwatchError(code.name, message) from None


class Watch:
    """An open WatchInvalidations stream: iterate for reports; `cancel()` ends it from any thread."""

    def __init__(self, call, rpc_errors) -> None:
        self._call = call
        self._rpc_errors = rpc_errors

    def __iter__(self) -> Iterator[pb.Report]:
        with self._rpc_errors():
            yield from self._call

    def cancel(self) -> None:
        self._call.cancel()


def register_request(
    path: str,
    dockerfile: str | None = None,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    name: str | None = None,
    **settings,
) -> pb.RegisterContextRequest:
    return pb.RegisterContextRequest(
        path=os.path.abspath(path),
        dockerfile=dockerfile or "",
        build_args=dict(build_args or {}),
        target=target or "",
        name=name or "",
        **settings,
    )


def connect(
    socket_path: str | Path | None = None,
    spawn: bool = True,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
    state_dir: str | None = None,
) -> CtxwatchClient:
    """A client for the daemon on `socket_path` (None: $CTXWATCH_SOCKET or the default).

    When no daemon answers, start one (`spawn`) and wait up to `timeout` seconds
    for it, or raise CtxwatchError("UNAVAILABLE", ...) saying how to start it.
    `state_dir` is passed to a daemon this starts.
    """
    # Imported here because spawn imports this module for CtxwatchError.
    from ctxwatch.spawn import SERVING, ensure_daemon, health

    path = paths.resolve_socket_path(str(socket_path) if socket_path else None)
    channel = grpc.insecure_channel(channel_target(path), options=channel_options())
    # A daemon serving already (the common case) is asked on the channel the calls then use: one connection.
    if health(channel) != SERVING:
        channel.close()  # after a refused connection it would wait out gRPC's reconnect backoff
        ensure_daemon(path, state_dir=state_dir, spawn=spawn, timeout=timeout)
        channel = grpc.insecure_channel(channel_target(path), options=channel_options())
    return CtxwatchClient(channel, path)


def local_client(socket_path: Path) -> CtxwatchClient:
    """A client for a service this process serves itself (see ctxwatchd.local): nothing to probe or start."""
    return CtxwatchClient(grpc.insecure_channel(channel_target(socket_path), options=channel_options()), socket_path)


def _as_ref(ref: RefLike) -> pb.ContextRef:
    return context_ref(ref) if isinstance(ref, str) else ref
