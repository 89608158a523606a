"""The systemd user unit is valid (systemd-analyze verify), hardened (systemd-analyze security),
and really notifies systemd."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.daemon import start_daemon

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "ctxwatchd.service"


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install Debian's systemd package"
    assert Path(sys.executable).with_name("ctxwatchd").exists(), f"no ctxwatchd console script next to {sys.executable}"
    result = subprocess.run(
        [analyze, "verify", str(_installed_unit(tmp_path))], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def _installed_unit(tmp_path: Path) -> Path:
    daemon = Path(sys.executable).with_name("ctxwatchd")
    unit = tmp_path / "ctxwatchd.service"
    unit.write_text(UNIT.read_text().replace("@CTXWATCHD@", str(daemon)))
    return unit


def test_unit_is_hardened_below_exposure_5(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install Debian's systemd package"
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(_installed_unit(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [score] = re.findall(r"Overall exposure level for ctxwatchd.service: ([0-9.]+)", result.stdout)
    assert float(score) < 5.0, result.stdout


def _service_groups() -> list[list[str]]:
    """The [Service] section as groups of lines separated by blank lines."""
    section = UNIT.read_text().split("[Service]\n", 1)[1].split("\n[", 1)[0]
    return [group.splitlines() for group in section.strip().split("\n\n")]


def test_every_service_setting_is_explained_by_a_comment() -> None:
    for group in _service_groups():
        assert group[0].startswith("#"), f"settings without a comment saying why: {group}"


def test_hardening_leaves_contexts_readable_and_cookie_folders_writable() -> None:
    settings = _settings()
    # strict (or ProtectHome) would make the watched folders read-only: the cookies could not be written.
    assert settings.get("ProtectSystem") in {None, "yes", "full"}
    assert settings.get("ProtectHome", "no") == "no"
    assert "ReadOnlyPaths" not in settings and "InaccessiblePaths" not in settings
    assert settings["RestrictAddressFamilies"].split() == ["AF_UNIX"]  # its socket


def _settings() -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in UNIT.read_text().splitlines() if "=" in line and not line.startswith("#")
    )


def test_unit_declares_notify_and_restart() -> None:
    settings = _settings()
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
