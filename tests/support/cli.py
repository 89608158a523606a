"""Running the `ctxwatch` command line in the test's own process, against a real daemon.

Each subprocess would start an interpreter and import gRPC (seconds on a loaded
machine); `cli.main` in this process does the same work on the same socket.
Tests of what only a process shows (a closed pipe, argcomplete's protocol) run
it as a subprocess instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ctxwatch import cli

from .daemon import Daemon


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


class InProcessCli:
    """`run(*args, code=0, cwd=None, env=None)`: cli.main(args) with the daemon's socket and state folder."""

    def __init__(self, daemon: Daemon, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self._monkeypatch = monkeypatch
        self._capsys = capsys
        monkeypatch.setenv("CTXWATCH_SOCKET", str(daemon.socket))
        monkeypatch.setenv("CTXWATCH_STATE_DIR", str(daemon.state_dir))
        monkeypatch.delenv("NO_COLOR", raising=False)

    def __call__(
        self, *args: str, code: int | None = 0, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> Result:
        with self._monkeypatch.context() as patch:
            for key, value in (env or {}).items():
                patch.setenv(key, value)
            patch.chdir(cwd or os.getcwd())
            self._capsys.readouterr()
            returned = cli.main(list(args))
            out, err = self._capsys.readouterr()
        assert "Traceback" not in err, err
        if code is not None:
            assert returned == code, f"`ctxwatch {' '.join(args)}` exited {returned}, expected {code}\n{out}\n{err}"
        return Result(returned, out, err)


# The CLI run by this interpreter, so the tests do not depend on PATH. (A `python -m
# ctxwatch.cli` that silently exits 0 fails every exit-code assertion below.)
CLI = [sys.executable, "-m", "ctxwatch.cli"]


def ctxwatch(env: dict[str, str], cwd: Path, *args: str, code: int | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*CLI, *args],
        check=False,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if code is not None:
        assert result.returncode == code, (
            f"`ctxwatch {' '.join(args)}` exited {result.returncode}, expected {code}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    assert "Traceback" not in result.stderr, result.stderr
    return result
