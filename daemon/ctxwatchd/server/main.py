"""ctxwatchd: serve on a Unix socket until SIGTERM/SIGINT or a Shutdown call.

The socket lives in a 0700 folder of ours and is itself 0600. One daemon
per state folder and per socket: a second one, or one of several started at
once, exits at once saying another is already serving (exit code 3). This module only starts the daemon (its
command line, socket and state file); serving.py runs it. It imports
neither gRPC nor the engine: they load while the state file is checked.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ctxwatch_api import paths
from ctxwatch_api.processes import ALREADY_SERVING_EXIT, socket_lock_path

from .. import __version__
from .. import config as config_file
from ..cache.store import StateUnavailable, Store
from ..private import AlreadyLocked, NotPrivate, hold_lock, private_folder
from . import logfile
from .settings import SETTINGS

log = logging.getLogger("ctxwatchd")
STATE_FILE = "state.sqlite3"
LOCK_FILE = "ctxwatchd.lock"  # in the state folder: held (flock) by the daemon serving that state
TOKEN_FILE = "tcp-token"  # in the state folder: what TCP callers must send
LOOPBACK = "127.0.0.1"  # the only address --tcp-port listens on
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
WAKE_SIGNAL = signal.SIGUSR1  # sent by the daemon to its own main thread: look at the socket again


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
        "--config",
        help=f"config file (env {config_file.CONFIG_ENV}; default {config_file.default_path()}); flags win over it",
    )
    parser.add_argument(
        "--max-builds",
        type=int,
        metavar="N",
        help="recorded builds kept per context, oldest dropped first (config max_builds; default 100)",
    )
    parser.add_argument(
        "--tcp-port",
        type=int,
        metavar="PORT",
        help=f"also serve on {LOOPBACK}:PORT (loopback only); callers must send the token "
        f"from <state dir>/{TOKEN_FILE} as 'authorization: Bearer <token>'",
    )
    parser.add_argument("--log-level", choices=config_file.LOG_LEVELS, help="config log_level; default INFO")
    parser.add_argument(
        "--log-file",
        type=Path,
        metavar="PATH",
        help="log to this file, rotated at 5 MiB (default: stderr, which systemd sends to the journal)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=0,
        metavar="SECONDS",
        help="exit after this long without a call or an open stream (default 0: never)",
    )
    parser.add_argument("--version", action="version", version=f"ctxwatchd {__version__}")
    return parser.parse_args(argv)


def claim_state(state_dir: Path) -> None:
    """Make the state folder ours and private, and take its lock: the only
    daemon of this state from now until the process ends. A second daemon,
    or one of several started at once, stops here, before any socket is bound."""
    private_folder(state_dir, "state folder")
    _lock(state_dir / LOCK_FILE, f"the state in {state_dir}")


def claim_socket(path: Path) -> None:
    """Make the socket's folder ours and private (0700, not a link, not
    shared), take the lock beside the socket, refuse if a live daemon answers
    on it, remove a stale socket file left by a crash. Called again when the
    socket was removed while the daemon runs."""
    private_folder(path.parent, "socket folder")
    # The socket itself can only be locked once bound: a lock file beside it.
    _lock(socket_lock_path(path), path)
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


_held_locks: dict[Path, int] = {}  # lock file -> open descriptor, kept for the process's life


def _lock(path: Path, what: object) -> None:
    held = _held_locks.get(path)
    if held is not None:
        try:
            if os.fstat(held).st_ino == os.stat(path).st_ino:
                return  # still ours
        except FileNotFoundError:
            pass
        os.close(held)  # the file was removed: lock the new one
        del _held_locks[path]
    try:
        _held_locks[path] = hold_lock(path)
    except AlreadyLocked as e:
        raise AlreadyRunning(
            f"another ctxwatchd is already serving {what} ({e}); stop it first (ctxwatch daemon stop)"
        ) from None


def start(socket_path: Path, state_dir: Path, config: config_file.Config, tcp_port: int | None) -> int:
    """Claim the socket and the state, open the state file, and serve until told to stop."""
    # Block the stop signals before any thread exists (threads inherit the
    # mask); serve() takes them with sigwait in this thread: a signal delivered
    # to a worker thread would otherwise never wake a main thread blocked on a lock.
    signal.pthread_sigmask(signal.SIG_BLOCK, {*STOP_SIGNALS, WAKE_SIGNAL})
    # A file-size limit then fails a write, as a full disk does, instead of killing the daemon.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    os.umask(0o077)  # every file the daemon creates (state, log, token) is private
    claim_state(state_dir)
    claim_socket(socket_path)
    with ThreadPoolExecutor(1, thread_name_prefix="open-state") as opening:
        # SQLite checks the state file without holding the GIL, so gRPC and
        # the engine load meanwhile (about 0.07 s of every start, at 100,000 files).
        opened = opening.submit(Store, state_dir / STATE_FILE)
        from .serving import serve

        store = opened.result()
    return serve(store, socket_path, state_dir, config, tcp_port)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = config_file.load(config_file.resolve_path(args.config))
    except config_file.ConfigError as e:
        logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        log.error("bad config: %s", e)
        return 2
    # Flags win over the config file.
    config = dataclasses.replace(
        config, max_builds=args.max_builds or config.max_builds, log_level=args.log_level or config.log_level
    )
    SETTINGS.log_destination = logfile.configure(config.log_level, args.log_file)
    SETTINGS.idle_timeout_s = args.idle_timeout
    try:
        if args.max_builds is not None and args.max_builds < 1:
            log.error("--max-builds must be at least 1")
            return 2
        if config.path is not None:
            log.info("config read from %s", config.path)
        return start(
            paths.resolve_socket_path(args.socket),
            paths.resolve_state_dir(args.state_dir),
            config,
            args.tcp_port,
        )
    except AlreadyRunning as e:
        log.error("%s", e)
        return ALREADY_SERVING_EXIT
    except (NotPrivate, StateUnavailable) as e:
        log.error("cannot start: %s", e)
        return 1
    except OSError as e:
        log.error("cannot start: %s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
