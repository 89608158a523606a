"""Command-line conventions: --version, shell completion, help COMMAND, the man page."""

from __future__ import annotations

import importlib.metadata
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ctxwatch import cli

REPO = Path(__file__).resolve().parent.parent


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ctxwatch {importlib.metadata.version('ctxwatch')}"


def test_help_command_shows_the_commands_own_help(capsys):
    assert cli.main(["help", "prune"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ctxwatch prune") and "--dry-run" in out and "--filter" in out


def test_help_reaches_nested_commands(capsys):
    assert cli.main(["help", "daemon", "logs"]) == 0
    assert capsys.readouterr().out.startswith("usage: ctxwatch daemon logs")


def test_help_of_an_unknown_command_suggests_one(capsys):
    assert cli.main(["help", "prnue"]) == 2
    assert "did you mean 'prune'?" in capsys.readouterr().err


def _complete(line: str, tmp_path: Path) -> list[str]:
    """What argcomplete answers the shell for `line` (its protocol, as its zsh and fish scripts use it)."""
    out = tmp_path / "completions"
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_IFS": "\n",
        "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "CTXWATCH_SOCKET": str(tmp_path / "nobody.sock"),
    }
    subprocess.run([sys.executable, "-m", "ctxwatch.cli"], env=env, check=False, timeout=30, capture_output=True)
    return [word.strip() for word in out.read_text().split("\n")]


def test_completion_of_commands_and_options(tmp_path):
    assert {"status", "stop"} & set(_complete("ctxwatch st", tmp_path)) == {"status"}
    assert "--dry-run" in _complete("ctxwatch prune --d", tmp_path)
    assert set(_complete("ctxwatch daemon st", tmp_path)) >= {"start", "stop", "status"}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_for_each_shell(shell, capsys):
    assert cli.main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert "ctxwatch" in script and "_ARGCOMPLETE" in script
    program = shutil.which(shell)
    if program and shell == "bash":
        result = subprocess.run([program, "-n"], input=script, text=True, capture_output=True, check=False)
        assert result.returncode == 0, result.stderr


def test_the_man_page_is_the_parser_s(tmp_path):
    make = runpy.run_path(str(REPO / "docs" / "make_manpage.py"))
    committed = (REPO / "docs" / "ctxwatch.1").read_text()
    assert make["manpage"]() == committed, "docs/ctxwatch.1 is stale: run `python docs/make_manpage.py`"
    for command in ("add", "status", "check", "prune", "daemon logs", "completion"):
        assert f"ctxwatch {command}" in committed
