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
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ctxwatch_api.v1 import ctxwatch_pb2, ctxwatch_pb2_grpc

from .. import __version__
from ..cache.store import Store
from ..engine import Engine
from .main import LOOPBACK, STOP_SIGNALS, TOKEN_FILE
from .reflection import enable_reflection
from .service import CtxwatchService
from .tcp import TokenCheck, load_or_create_token

log = logging.getLogger("ctxwatchd")


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


def serve(store: Store, socket_path: Path, state_dir: Path, max_builds: int, tcp_port: int | None = None) -> int:
    """Answer on the socket until a stop signal (blocked by the caller before
    any thread started) or a Shutdown call, then save and close the store."""
    engine = Engine(store, max_builds=max_builds)
    # What exists now (modules, the registry) lives as long as the daemon:
    # frozen, it is not traversed again by each full collection that a large
    # tree's listing triggers (about 0.1 s of a restart at 100,000 files).
    gc.freeze()
    threading.Thread(target=engine.warm_up, name="warm-up", daemon=True).start()
    stop = threading.Event()
    interceptors = [TokenCheck(load_or_create_token(state_dir))] if tcp_port is not None else []
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="rpc"),
        interceptors=interceptors,
        options=[("grpc.max_receive_message_length", 4 * 1024 * 1024)],
    )
    ctxwatch_pb2_grpc.add_CtxwatchServicer_to_server(
        CtxwatchService(engine, str(socket_path), str(state_dir), stop), server
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    service_name = ctxwatch_pb2.DESCRIPTOR.services_by_name["Ctxwatch"].full_name
    enable_reflection((service_name, health.SERVICE_NAME), server)
    old_umask = os.umask(0o177)  # the socket is created 0600
    try:
        server.add_insecure_port(f"unix:{socket_path}")
        if tcp_port is not None and not server.add_insecure_port(f"{LOOPBACK}:{tcp_port}"):
            raise OSError(f"cannot listen on {LOOPBACK}:{tcp_port}")
        server.start()
    finally:
        os.umask(old_umask)
    os.chmod(socket_path, 0o600)
    our_socket = os.stat(socket_path).st_ino
    for name in ("", service_name):  # the whole server, and the service by its name
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("ctxwatchd %s serving on %s (state in %s)", __version__, socket_path, state_dir)
    if tcp_port is not None:
        log.info("also serving on %s:%d; callers need the token in %s", LOOPBACK, tcp_port, state_dir / TOKEN_FILE)
    notify_systemd("READY=1")
    received = signal.sigwait(STOP_SIGNALS)
    stop.set()
    log.info("shutting down (%s)", signal.Signals(received).name)
    engine.notify_activity()  # ends open watch streams
    notify_systemd("STOPPING=1")
    health_servicer.enter_graceful_shutdown()
    server.stop(grace=2).wait()
    engine.close()
    store.close()
    _remove_socket(socket_path, our_socket)
    log.info("stopped")
    return 0


def _remove_socket(path: Path, inode: int) -> None:
    """Remove our socket, never one a newer daemon created at the same path."""
    try:
        if os.stat(path).st_ino == inode:
            path.unlink()
    except FileNotFoundError:
        pass
