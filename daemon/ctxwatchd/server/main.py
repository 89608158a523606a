"""ctxwatchd: serve on a Unix socket until SIGTERM/SIGINT or a Shutdown call.

The socket lives in a 0700 folder and is itself 0600. A second daemon on
the same socket refuses to start. Under systemd (`Type=notify`) the daemon
sends READY=1 once it serves and STOPPING=1 when it shuts down.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import socket
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ctxwatch import paths
from ctxwatch.v1 import ctxwatch_pb2, ctxwatch_pb2_grpc

from .. import __version__
from ..cache.store import Store
from ..engine import DEFAULT_MAX_BUILDS, Engine
from .service import CtxwatchService
from .tcp import LOOPBACK, TOKEN_FILE, TokenCheck, load_or_create_token

log = logging.getLogger("ctxwatchd")
STATE_FILE = "state.sqlite3"


class AlreadyRunning(Exception):
    pass


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ctxwatchd", description="The ctxwatch daemon (runs in the foreground).")
    parser.add_argument("--socket", help=f"Unix socket path (env {paths.SOCKET_ENV}; default under the user runtime dir)")
    parser.add_argument("--state-dir", help=f"state folder (env {paths.STATE_DIR_ENV}; default under the user state dir)")
    parser.add_argument("--max-builds", type=int, default=DEFAULT_MAX_BUILDS, metavar="N",
                        help=f"recorded builds kept per context, oldest dropped first (default {DEFAULT_MAX_BUILDS})")
    parser.add_argument("--tcp-port", type=int, metavar="PORT",
                        help=f"also serve on {LOOPBACK}:PORT (loopback only); callers must send the token "
                             f"from <state dir>/{TOKEN_FILE} as 'authorization: Bearer <token>'")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--version", action="version", version=f"ctxwatchd {__version__}")
    return parser.parse_args(argv)


def prepare_socket(path: Path) -> None:
    """Create the 0700 folder; refuse if a live daemon answers on the socket;
    remove a stale socket file left by a crash."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: a leftover from a crash
        return
    finally:
        probe.close()
    raise AlreadyRunning(f"another ctxwatchd is already serving on {path}; stop it first (ctxwatch daemon stop)")


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


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def serve(socket_path: Path, state_dir: Path, max_builds: int = DEFAULT_MAX_BUILDS,
          tcp_port: int | None = None) -> int:
    # Block the stop signals before any thread exists (threads inherit the
    # mask), and take them with sigwait in this thread: a signal delivered to
    # a worker thread would otherwise never wake a main thread blocked on a lock.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    prepare_socket(socket_path)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = Store(state_dir / STATE_FILE)
    engine = Engine(store, max_builds=max_builds)
    # What exists now (modules, the registry) lives as long as the daemon:
    # frozen, it is not traversed again by each full collection that a large
    # tree's listing triggers (about 0.1 s of a restart at 100,000 files).
    gc.freeze()
    threading.Thread(target=engine.warm_up, name="warm-up", daemon=True).start()
    stop = threading.Event()
    interceptors = [TokenCheck(load_or_create_token(state_dir))] if tcp_port is not None else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="rpc"),
                         interceptors=interceptors,
                         options=[("grpc.max_receive_message_length", 4 * 1024 * 1024)])
    ctxwatch_pb2_grpc.add_CtxwatchServicer_to_server(
        CtxwatchService(engine, str(socket_path), str(state_dir), stop), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (ctxwatch_pb2.DESCRIPTOR.services_by_name["Ctxwatch"].full_name, health.SERVICE_NAME,
         reflection.SERVICE_NAME), server)
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
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.max_builds < 1:
            log.error("--max-builds must be at least 1")
            return 2
        return serve(paths.resolve_socket_path(args.socket), paths.resolve_state_dir(args.state_dir),
                     args.max_builds, args.tcp_port)
    except AlreadyRunning as e:
        log.error("%s", e)
        return 1
    except OSError as e:
        log.error("cannot start: %s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
