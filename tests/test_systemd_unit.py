"""The systemd user unit is valid (systemd-analyze verify) and really notifies systemd."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import start_daemon

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "ctxwatchd.service"


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install Debian's systemd package"
    daemon = Path(sys.executable).with_name("ctxwatchd")
    assert daemon.exists(), f"the ctxwatchd console script is not installed next to {sys.executable}"
    unit = tmp_path / "ctxwatchd.service"
    unit.write_text(UNIT.read_text().replace("@CTXWATCHD@", str(daemon)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_unit_declares_notify_and_restart() -> None:
    settings = dict(
        line.split("=", 1) for line in UNIT.read_text().splitlines() if "=" in line and not line.startswith("#")
    )
    assert settings["Type"] == "notify"
    assert settings["Restart"] == "on-failure"
    assert settings["ExecStart"].startswith("@CTXWATCHD@")


def test_daemon_sends_ready_and_stopping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify.sock"))
    listener.settimeout(20)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    daemon = start_daemon(tmp_path / "d")
    try:
        assert listener.recv(4096) == b"READY=1"
    finally:
        daemon.stop()
    assert listener.recv(4096) == b"STOPPING=1"
    listener.close()
