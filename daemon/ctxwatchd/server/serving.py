"""The running daemon: the engine behind a gRPC server, until it is told to stop.

Under systemd (`Type=notify`) the daemon sends READY=1 once it serves and
STOPPING=1 when it shuts down.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sqlite3
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ctxwatch_api.v1 import ctxwatch_pb2, ctxwatch_pb2_grpc
from ctxwatch_api.wire import MAX_REPLY_BYTES, MAX_REQUEST_BYTES

from .. import __version__
from ..builders.buildx import BuildxRefs
from ..cache.store import Store
from ..config import Config
from ..engine import Engine
from ..folder_events import FolderEvents, start_observer
from ..private import NotPrivate
from . import idle
from .handlers import WrappingServer, lenient
from .loop import LoopThread
from .main import LOOPBACK, STOP_SIGNALS, TOKEN_FILE, WAKE_SIGNAL, AlreadyRunning, claim_socket
from .reflection import enable_reflection
from .service import CtxwatchService
from .tcp import TokenCheck, load_or_create_token

log = logging.getLogger("ctxwatchd")
QUERY_SWITCH_INTERVAL_S = 0.001
WORKERS = 16  # threads the engine's work runs on; an open call or stream takes none
WARM_UP_MARKER = "warming-up"  # in the state folder: the context the warm-up is answering
SAVE_WAIT_S = 3.0  # at a stop, how long to wait for a running query before leaving without saving


def notify_systemd(message: str) -> None:
    """sd_notify without a dependency: one datagram to $NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(address)
            s.sendall(message.encode())
        except OSError as e:
            log.warning("could not notify systemd (%s): %s", message, e)


def serve(store: Store, socket_path: Path, state_dir: Path, config: Config, tcp_port: int | None = None) -> int:
    """Answer on the socket until a stop signal (blocked by the caller before
    any thread started) or a Shutdown call, then save and close the store."""
    engine = Engine(
        store,
        max_builds=config.max_builds,
        private_folders=(str(socket_path.parent),),
        strict_remote=config.strict_remote,
        answer_time_limit=config.answer_time_limit,
        max_tree_entries=config.max_tree_entries,
    )
    # What exists now (modules, the registry) lives as long as the daemon:
    # frozen, it is not traversed again by each full collection that a large
    # tree's listing triggers (about 0.1 s of a restart at 100,000 files).
    gc.freeze()
    # A query for one root must not wait long behind another root's hashing
    # thread for the interpreter lock: hand it over every 1 ms, not 5 ms.
    sys.setswitchinterval(QUERY_SWITCH_INTERVAL_S)
    threading.Thread(
        target=engine.warm_up, args=(str(state_dir / WARM_UP_MARKER),), name="warm-up", daemon=True
    ).start()
    # The daemon's own folders (socket, buildx's records) are watched, never polled.
    observer = start_observer()
    builds = None
    if config.builder.watch_buildx:  # builds run without `ctxwatch build`
        builds = BuildxRefs(
            config.builder,
            engine.contexts,
            store.builder_ref_seen,
            engine.learn_build,
            engine.mark_builder_ref,
        )
        builds.start(observer)
    stop = threading.Event()
    token = load_or_create_token(state_dir) if tcp_port is not None else None
    loop = LoopThread("grpc")
    workers = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="rpc")
    service = CtxwatchService(engine, str(socket_path), str(state_dir), stop, workers)
    server, health_servicer, our_socket = loop.run(_start_server(service, socket_path, token, tcp_port))
    log.info("ctxwatchd %s serving on %s (state in %s)", __version__, socket_path, state_dir)
    if tcp_port is not None:
        log.info("also serving on %s:%d; callers need the token in %s", LOOPBACK, tcp_port, state_dir / TOKEN_FILE)
    notify_systemd("READY=1")
    main_thread = threading.get_ident()
    socket_events = FolderEvents(
        observer, str(socket_path.parent), lambda: signal.pthread_kill(main_thread, WAKE_SIGNAL)
    )
    stop_signal = None
    while True:
        socket_events.retarget()  # before looking: a removal from now on wakes this thread
        if not _is_ours(socket_path, our_socket):
            # Someone removed the socket (or its folder): clients could no longer
            # reach this daemon and would start a second one. Bind it again.
            log.warning("the socket %s was removed; serving on it again", socket_path)
            loop.run(server.stop(grace=1))
            try:
                claim_socket(socket_path)
                server, health_servicer, our_socket = loop.run(_start_server(service, socket_path, token, tcp_port))
            except (AlreadyRunning, NotPrivate, OSError) as e:
                log.error("cannot serve on %s again (%s); stopping", socket_path, e)
                break
            continue
        if (stop_signal := _next_stop_signal()) is not None:
            break
    socket_events.close()
    stop.set()
    log.info("shutting down (%s)", stop_signal.name if stop_signal else "socket lost")
    engine.notify_activity()  # ends open watch streams
    notify_systemd("STOPPING=1")
    loop.run(health_servicer.enter_graceful_shutdown())
    loop.run(server.stop(grace=2))
    workers.shutdown(wait=False)
    loop.close()
    if builds is not None:
        builds.stop()
    observer.stop()
    _remove_socket(socket_path, our_socket)
    if not _save(engine, store):
        # A query is stuck (in the kernel, say): a stop signal is honoured
        # anyway. What was recorded is committed; the worker threads that
        # would be joined at exit are left behind.
        logging.shutdown()
        os._exit(0)
    log.info("stopped")
    return 0


def _next_stop_signal() -> signal.Signals | None:
    """Wait for a stop signal, or for WAKE_SIGNAL (something changed in the
    socket's folder): the stop signal, else None. A wait ended without either
    (after SIGSTOP and SIGCONT the kernel may end it with a signal number that
    is not ours) counts as a wake-up."""
    info = signal.sigwaitinfo({*STOP_SIGNALS, WAKE_SIGNAL})
    if info.si_signo not in STOP_SIGNALS:
        return None
    return signal.Signals(info.si_signo)


async def _start_server(
    service: CtxwatchService, socket_path: Path, token: str | None, tcp_port: int | None
) -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    """A gRPC server with every service, listening (on the loop it runs on);
    the socket's inode tells it from a later one."""
    interceptors: list[grpc.aio.ServerInterceptor] = [TokenCheck(token)] if token is not None else []
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ("grpc.max_send_message_length", MAX_REPLY_BYTES),
        ],
    )
    handlers = WrappingServer(server, [*idle.wraps(), lenient])  # what every call of every method goes through
    ctxwatch_pb2_grpc.add_CtxwatchServicer_to_server(service, handlers)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, handlers)
    service_name = ctxwatch_pb2.DESCRIPTOR.services_by_name["Ctxwatch"].full_name
    enable_reflection((service_name, health.SERVICE_NAME), handlers)
    old_umask = os.umask(0o177)  # the socket is created 0600
    try:
        server.add_insecure_port(f"unix:{socket_path}")
        if tcp_port is not None:
            try:
                server.add_insecure_port(f"{LOOPBACK}:{tcp_port}")
            except RuntimeError as e:  # grpc's asyncio server says "Failed to bind"
                raise OSError(f"cannot listen on {LOOPBACK}:{tcp_port}: {e}") from None
        await server.start()
    finally:
        os.umask(old_umask)
    os.chmod(socket_path, 0o600)
    for name in ("", service_name):  # the whole server, and the service by its name
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, health_servicer, os.stat(socket_path).st_ino


def _is_ours(path: Path, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def _save(engine: Engine, store: Store) -> bool:
    """Save the hash cache and close the store; False when a stuck query kept the engine."""
    try:
        if not engine.close(timeout=SAVE_WAIT_S):
            log.error(
                "a query is still running after %g s (%s); stopping without saving the hash cache",
                SAVE_WAIT_S,
                engine.activity() or "busy",
            )
            return False
    except (sqlite3.Error, OSError) as e:
        # A full disk, say: what was recorded is already committed and stays.
        log.error("could not save the hash cache (%s); recorded contexts and builds are kept", e)
    try:
        store.close()
    except sqlite3.Error as e:
        log.error("could not close the state file cleanly (%s); what was committed is kept", e)
    return True


def _remove_socket(path: Path, inode: int) -> None:
    """Remove our socket, never one a newer daemon created at the same path."""
    try:
        if os.stat(path).st_ino == inode:
            path.unlink()
    except FileNotFoundError:
        pass
