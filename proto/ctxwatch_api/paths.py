"""Where the daemon listens and keeps its state, and where the command line's runner listens; shared by the
daemon and its clients.

Both can be overridden: by flag, else by environment variable, else the
defaults (`<user runtime folder>/ctxwatch/ctxwatchd.sock` and
`<user_state_dir>/ctxwatch/`).

Cheap to import (os alone): the command line's front (ctxwatch.front) finds its runner here on every run,
so pathlib, platformdirs, hashlib and tempfile are imported only by the functions that need them.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (about 3 ms)
if TYPE_CHECKING:
    from pathlib import Path

SOCKET_ENV = "CTXWATCH_SOCKET"
STATE_DIR_ENV = "CTXWATCH_STATE_DIR"
APP_NAME = "ctxwatch"
SOCKET_NAME = "ctxwatchd.sock"
RUNNER_SOCKET_NAME = "cli.sock"  # the command line's runner (ctxwatch.runner), beside the daemon's default socket

# sockaddr_un.sun_path is 108 bytes on Linux and 104 on macOS, NUL included.
MAX_SOCKET_PATH_BYTES = 100


def runtime_folder() -> str:
    """`$XDG_RUNTIME_DIR/ctxwatch` when $XDG_RUNTIME_DIR is set to an absolute path (the XDG rule, read
    without platformdirs: importing it costs about 13 ms, most of a warm `ctxwatch check`); else
    platformdirs' fallback for a missing one (`/run/user/UID/ctxwatch` or a private folder in the temp folder).
    Whoever listens there makes the folder private (0700, ours, not a link)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(xdg):
        return os.path.join(xdg, APP_NAME)
    import warnings

    import platformdirs

    with warnings.catch_warnings():
        # Without $XDG_RUNTIME_DIR platformdirs warns and falls back to a
        # per-user temp folder, which is what we want anyway.
        warnings.simplefilter("ignore")
        return platformdirs.user_runtime_dir(APP_NAME, appauthor=False)


def default_socket_path() -> Path:
    """The daemon's default socket, in the runtime folder, or a short hashed one when that is too long."""
    from pathlib import Path

    return Path(short_socket_path(os.path.join(runtime_folder(), SOCKET_NAME)))


def runner_socket_path() -> str:
    """Where the command line's runner listens: beside the daemon's default socket (never beside a
    --socket or $CTXWATCH_SOCKET: one runner serves every daemon of the user)."""
    return short_socket_path(os.path.join(runtime_folder(), RUNNER_SOCKET_NAME))


def short_socket_path(path: str) -> str:
    """Return `path`, or, when it is too long for a Unix socket, a short path
    in the temp folder derived from a hash of it (stable for the same input)."""
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH_BYTES:
        return path
    import hashlib
    import tempfile

    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"ctxwatch-{os.getuid()}-{digest}", os.path.basename(path))


def resolve_socket_path(flag: str | None = None) -> Path:
    """The socket path from the flag, else $CTXWATCH_SOCKET, else the default."""
    from pathlib import Path

    chosen = flag or os.environ.get(SOCKET_ENV)
    if chosen:
        return Path(short_socket_path(str(Path(chosen).expanduser().absolute())))
    return default_socket_path()


def buildx_dir(setting: str = "") -> Path:
    """buildx's config folder, as buildx finds it: the setting, else $BUILDX_CONFIG,
    else $DOCKER_CONFIG/buildx, else ~/.docker/buildx. Its refs/ records every build."""
    from pathlib import Path

    chosen = setting or os.environ.get("BUILDX_CONFIG")
    if chosen:
        return Path(chosen).expanduser()
    return Path(os.environ.get("DOCKER_CONFIG") or "~/.docker").expanduser() / "buildx"


def resolve_state_dir(flag: str | None = None) -> Path:
    """The state folder from the flag, else $CTXWATCH_STATE_DIR, else the default."""
    from pathlib import Path

    import platformdirs

    chosen = flag or os.environ.get(STATE_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser().absolute()
    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))
