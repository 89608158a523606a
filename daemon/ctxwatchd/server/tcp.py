"""Optional TCP access: loopback only, and every call must carry the token.

The Unix socket is protected by file permissions (0600 in a 0700 folder);
TCP has no such thing, so a TCP caller proves itself with the token stored in
the state folder (mode 0600), sent as `authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

import grpc

from .main import TOKEN_FILE


def load_or_create_token(state_dir: Path) -> str:
    path = state_dir / TOKEN_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return token


class TokenCheck(grpc.ServerInterceptor):
    """Lets Unix-socket calls through; TCP calls need the token."""

    def __init__(self, token: str) -> None:
        self.expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        given = dict(handler_call_details.invocation_metadata or ()).get("authorization", "").encode()
        allowed = hmac.compare_digest(given, self.expected)
        return _guarded(handler, allowed)


def _guarded(handler: grpc.RpcMethodHandler, allowed: bool) -> grpc.RpcMethodHandler:
    """The same handler, refusing callers that came over TCP without the token."""

    def guard(behaviour):
        def checked(request, context):
            if not allowed and not context.peer().startswith("unix:"):
                context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    f"TCP callers must send 'authorization: Bearer <token>' (the token is in the "
                    f"daemon's state folder, file {TOKEN_FILE})",
                )
            return behaviour(request, context)

        return checked

    for kind, make in (
        ("unary_unary", grpc.unary_unary_rpc_method_handler),
        ("unary_stream", grpc.unary_stream_rpc_method_handler),
        ("stream_unary", grpc.stream_unary_rpc_method_handler),
        ("stream_stream", grpc.stream_stream_rpc_method_handler),
    ):
        behaviour = getattr(handler, kind)
        if behaviour:
            return make(guard(behaviour), handler.request_deserializer, handler.response_serializer)
    return handler
