"""Message size limits both ends of the socket agree on."""

from __future__ import annotations

MAX_REQUEST_BYTES = 4 * 1024 * 1024  # what the daemon accepts in one request (gRPC's default)
# What the daemon sends at most in one reply and the client accepts: larger
# answers are cut (a report says how many steps were left out), never failed.
MAX_REPLY_BYTES = 64 * 1024 * 1024


def channel_options() -> list[tuple[str, int]]:
    """Options for a client channel: receive what the daemon may send."""
    return [("grpc.max_receive_message_length", MAX_REPLY_BYTES)]
