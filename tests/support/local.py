"""The engine in the test's own process, as `ctxwatch --no-daemon` runs it."""

from __future__ import annotations

from pathlib import Path

import grpc

from ctxwatch.client import CtxwatchClient, channel_target
from ctxwatchd.local import LocalServer


class LocalClient(CtxwatchClient):
    """The ordinary client of the daemon's service served in this process over
    a state folder (no watching: every query scans)."""

    def __init__(self, state_dir: Path) -> None:
        self._local = LocalServer(state_dir)
        super().__init__(grpc.insecure_channel(channel_target(self._local.socket_path)), self._local.socket_path)

    def close(self) -> None:
        super().close()
        self._local.close()
