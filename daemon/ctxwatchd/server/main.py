"""ctxwatchd: serve on a Unix socket until SIGTERM/SIGINT or a Shutdown call.

The socket lives in a 0700 folder and is itself 0600. A second daemon on
the same socket refuses to start. This module only starts the daemon (its
command line, socket and state file); serving.py runs it. It imports
neither gRPC nor the engine: they load while the state file is checked.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ctxwatch_api import paths

from .. import __version__
from ..cache.store import DEFAULT_MAX_BUILDS, Store

log = logging.getLogger("ctxwatchd")
STATE_FILE = "state.sqlite3"
TOKEN_FILE = "tcp-token"  # in the state folder: what TCP callers must send
LOOPBACK = "127.0.0.1"  # the only address --tcp-port listens on
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class AlreadyRunning(Exception):
    pass


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ctxwatchd", description="The ctxwatch daemon (runs in the foreground).")
    parser.add_argument(
        "--socket", help=f"Unix socket path (env {paths.SOCKET_ENV}; default under the user runtime dir)"
    )
    parser.add_argument(
        "--state-dir", help=f"state folder (env {paths.STATE_DIR_ENV}; default under the user state dir)"
    )
    parser.add_argument(
        "--max-builds",
        type=int,
        default=DEFAULT_MAX_BUILDS,
        metavar="N",
        help=f"recorded builds kept per context, oldest dropped first (default {DEFAULT_MAX_BUILDS})",
    )
    parser.add_argument(
        "--tcp-port",
        type=int,
        metavar="PORT",
        help=f"also serve on {LOOPBACK}:PORT (loopback only); callers must send the token "
        f"from <state dir>/{TOKEN_FILE} as 'authorization: Bearer <token>'",
    )
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


def start(socket_path: Path, state_dir: Path, max_builds: int, tcp_port: int | None) -> int:
    """Claim the socket, open the state file, and serve until told to stop."""
    # Block the stop signals before any thread exists (threads inherit the
    # mask); serve() takes them with sigwait in this thread: a signal delivered
    # to a worker thread would otherwise never wake a main thread blocked on a lock.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    prepare_socket(socket_path)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with ThreadPoolExecutor(1, thread_name_prefix="open-state") as opening:
        # SQLite checks the state file without holding the GIL, so gRPC and
        # the engine load meanwhile (about 0.07 s of every start, at 100,000 files).
        opened = opening.submit(Store, state_dir / STATE_FILE)
        from .serving import serve

        store = opened.result()
    return serve(store, socket_path, state_dir, max_builds, tcp_port)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.max_builds < 1:
            log.error("--max-builds must be at least 1")
            return 2
        return start(
            paths.resolve_socket_path(args.socket),
            paths.resolve_state_dir(args.state_dir),
            args.max_builds,
            args.tcp_port,
        )
    except AlreadyRunning as e:
        log.error("%s", e)
        return 1
    except OSError as e:
        log.error("cannot start: %s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
