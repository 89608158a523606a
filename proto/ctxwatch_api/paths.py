"""Where the daemon listens and keeps its state; shared by the daemon and its clients.

Both can be overridden: by flag, else by environment variable, else the
platformdirs defaults (`<user_runtime_dir>/ctxwatch/ctxwatchd.sock` and
`<user_state_dir>/ctxwatch/`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import platformdirs

SOCKET_ENV = "CTXWATCH_SOCKET"
STATE_DIR_ENV = "CTXWATCH_STATE_DIR"
APP_NAME = "ctxwatch"
SOCKET_NAME = "ctxwatchd.sock"

# sockaddr_un.sun_path is 108 bytes on Linux and 104 on macOS, NUL included.
MAX_SOCKET_PATH_BYTES = 100


def default_socket_path() -> Path:
    """The platformdirs socket path, or a short hashed one when that is too long."""
    with warnings.catch_warnings():
        # Without $XDG_RUNTIME_DIR platformdirs warns and falls back to a
        # per-user temp folder, which is what we want anyway.
        warnings.simplefilter("ignore")
        runtime_dir = Path(platformdirs.user_runtime_dir(APP_NAME, appauthor=False))
    return shorten_socket_path(runtime_dir / SOCKET_NAME)


def shorten_socket_path(path: Path) -> Path:
    """Return `path`, or, when it is too long for a Unix socket, a short path
    in the temp folder derived from a hash of it (stable for the same input)."""
    if len(os.fsencode(str(path))) <= MAX_SOCKET_PATH_BYTES:
        return path
    digest = hashlib.sha256(os.fsencode(str(path))).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"ctxwatch-{os.getuid()}-{digest}" / SOCKET_NAME


def resolve_socket_path(flag: str | None = None) -> Path:
    """The socket path from the flag, else $CTXWATCH_SOCKET, else the default."""
    chosen = flag or os.environ.get(SOCKET_ENV)
    if chosen:
        return shorten_socket_path(Path(chosen).expanduser().absolute())
    return default_socket_path()


def buildx_dir(setting: str = "") -> Path:
    """buildx's config folder, as buildx finds it: the setting, else $BUILDX_CONFIG,
    else $DOCKER_CONFIG/buildx, else ~/.docker/buildx. Its refs/ records every build."""
    chosen = setting or os.environ.get("BUILDX_CONFIG")
    if chosen:
        return Path(chosen).expanduser()
    return Path(os.environ.get("DOCKER_CONFIG") or "~/.docker").expanduser() / "buildx"


def resolve_state_dir(flag: str | None = None) -> Path:
    """The state folder from the flag, else $CTXWATCH_STATE_DIR, else the default."""
    chosen = flag or os.environ.get(STATE_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser().absolute()
    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))
