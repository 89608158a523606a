"""How this daemon process was started, as `ctxwatch daemon status` shows it.

Set once by main.py from the command line, before anything serves; read by
serving.py and the status RPC.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Settings:
    log_destination: str = "stderr"  # a log file's path, "journal" or "stderr"
    idle_timeout_s: float = 0.0  # 0: never exit for being idle


SETTINGS = Settings()
