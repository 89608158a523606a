"""Optional TCP access: loopback only, and every call must carry the token.

The Unix socket is protected by file permissions (0600 in a 0700 folder);
TCP has no such thing, so a TCP caller proves itself with the token stored in
the state folder (mode 0600), sent as `authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc

from ..private import NotPrivate, private_file
from .handlers import around_each_call
from .main import TOKEN_FILE

log = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 32  # a new token has 43 (32 random bytes, base64)
MAX_TOKEN_CHARS = 256


def load_or_create_token(state_dir: Path) -> str:
    """The token TCP callers must send: the one in the state folder, else a new one.

    A token that is too short (an empty file left by a full disk would let
    everyone in), or a file that is not a private regular file of ours, is
    replaced; a new token is written to a fresh file (O_EXCL, 0600) and moved
    into place, so no one ever reads half a token.
    """
    path = state_dir / TOKEN_FILE
    try:
        private_file(path, "token file")
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd) as f:
            token = f.read(MAX_TOKEN_CHARS + 1).strip()
        if MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS:
            return token
        log.warning("the token in %s is %d characters long; replacing it with a new one", path, len(token))
    except FileNotFoundError:
        pass
    except (OSError, NotPrivate, UnicodeDecodeError) as e:
        log.warning("cannot use the token file %s (%s); replacing it with a new one", path, e)
    token = secrets.token_urlsafe(32)
    fresh = path.with_name(f".{TOKEN_FILE}-{secrets.token_hex(8)}")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(fresh, path)
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise
    return token


class TokenCheck(grpc.aio.ServerInterceptor):
    """Lets Unix-socket calls through; TCP calls need the token."""

    def __init__(self, token: str) -> None:
        self.expected = f"Bearer {token}".encode()

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        given = dict(handler_call_details.invocation_metadata or ()).get("authorization", "").encode()
        if hmac.compare_digest(given, self.expected):
            return handler

        @asynccontextmanager
        async def unix_only(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            if not context.peer().startswith("unix:"):
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    f"TCP callers must send 'authorization: Bearer <token>' (the token is in the "
                    f"daemon's state folder, file {TOKEN_FILE})",
                )
            yield

        return around_each_call(handler, unix_only)
