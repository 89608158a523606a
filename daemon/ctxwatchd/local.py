"""The engine without a daemon: scan, answer, exit (`ctxwatch --no-daemon`).

`LocalServer` serves the daemon's own gRPC service, over an engine that does
not watch (every query scans), on a private socket inside this process. The
command line talks to it with its ordinary client, so CI and one-off runs get
the same answers, errors and recorded builds as the daemon through the same
code, with no second adapter to keep in step. It is also the honest baseline
the daemon is measured against.
"""

from __future__ import annotations

import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from ctxwatch_api.v1 import ctxwatch_pb2_grpc as pb_grpc

from .cache.store import Store
from .config import Config, load, resolve_path
from .engine import Engine
from .server.loop import LoopThread
from .server.main import STATE_FILE
from .server.service import CtxwatchService

SOCKET_NAME = "local.sock"


class LocalServer:
    """The service over `state_dir`'s state, on a socket only this process knows (`socket_path`)."""

    def __init__(self, state_dir: Path, config: Config | None = None) -> None:
        config = config or load(resolve_path())  # the user's config file, as the daemon reads it
        self._folder = tempfile.TemporaryDirectory(prefix="ctxwatch-local-")  # 0700: private to this user
        self.socket_path = Path(self._folder.name) / SOCKET_NAME
        self._store = Store(state_dir / STATE_FILE)
        self._engine = Engine(
            self._store,
            watch=False,
            max_builds=config.max_builds,
            strict_remote=config.strict_remote,
            answer_time_limit=config.answer_time_limit,
            max_tree_entries=config.max_tree_entries,
        )
        self._workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="local-rpc")
        service = CtxwatchService(self._engine, str(self.socket_path), str(state_dir), threading.Event(), self._workers)
        self._loop = LoopThread("local-grpc")
        self._server = self._loop.run(self._start(service))

    async def _start(self, service: CtxwatchService) -> grpc.aio.Server:
        server = grpc.aio.server()
        pb_grpc.add_CtxwatchServicer_to_server(service, server)
        server.add_insecure_port(f"unix:{self.socket_path}")
        await server.start()
        return server

    def close(self) -> None:
        self._loop.run(self._server.stop(grace=None))
        self._loop.close()
        self._workers.shutdown()
        self._engine.close()
        self._store.close()
        self._folder.cleanup()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
