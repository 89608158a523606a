"""`ctxwatch daemon install-unit`: the systemd user unit shipped with the package, for this installation."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from pathlib import Path

UNIT_NAME = "ctxwatchd.service"
PLACEHOLDER = "@CTXWATCHD@"
ENABLE_COMMANDS = ("systemctl --user daemon-reload", "systemctl --user enable --now ctxwatchd")


def template() -> str:
    """The unit as shipped: installed under <prefix>/share/ctxwatch/systemd (a wheel), or in the source tree."""
    for candidate in _candidates():
        if candidate.is_file():
            return candidate.read_text()
    raise ValueError(f"the packaged {UNIT_NAME} is missing from this installation (reinstall ctxwatch)")


def render(daemon: Path) -> str:
    """The unit with ExecStart pointing at `daemon`."""
    return template().replace(PLACEHOLDER, str(daemon))


def destination() -> Path:
    """$XDG_CONFIG_HOME/systemd/user/ctxwatchd.service (default ~/.config)."""
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(config) / "systemd" / "user" / UNIT_NAME


def daemon_executable() -> Path:
    """The ctxwatchd of this installation: next to this Python, else the one on PATH."""
    beside = Path(sys.executable).with_name("ctxwatchd")
    if beside.is_file():
        return beside
    found = shutil.which("ctxwatchd")
    if not found:
        raise ValueError("no ctxwatchd next to this Python or on PATH")
    return Path(found).absolute()


def install(force: bool = False) -> Path:
    """Write the unit; refuse to replace a different one unless `force`. Returns its path."""
    path = destination()
    text = render(daemon_executable())
    if path.exists() and path.read_text() != text and not force:
        raise ValueError(f"{path} exists and differs; give --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _candidates() -> list[Path]:
    found = []
    try:
        files = importlib.metadata.files("ctxwatch") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    found += [Path(str(file.locate())) for file in files if file.name == UNIT_NAME]
    # A source checkout (an editable install records no data files).
    found.append(Path(__file__).resolve().parents[2] / "systemd" / UNIT_NAME)
    return found
