"""The commands scripts and prompts run most (check, status) load only what they need, and read their command
line as the whole parser does.

Their start-up is most of their time (bench/cli.py measures it); these tests check which modules a real run
loads, never how long it takes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import uuid

import pytest
from support.contexts import example_context

from ctxwatch import cli

# What only other commands need: compose and bake files (PyYAML, python-hcl2), discover (pathspec), the
# language server (pygls), shell completion (argcomplete), --json (protobuf's JSON mapping), --no-daemon
# (the daemon's own code), `build`, `daemon install-unit` and --version (importlib.metadata).
ONLY_OTHER_COMMANDS = {
    "yaml",
    "hcl2",
    "pathspec",
    "pygls",
    "lsprotocol",
    "argcomplete",
    "watchdog",
    "re2",
    "ctxwatchd",
    "ctxwatch.compose",
    "ctxwatch.bake",
    "ctxwatch.discover",
    "ctxwatch.lsp",
    "ctxwatch.build",
    "ctxwatch.unit",
    "google.protobuf.json_format",
    "importlib.metadata",
}

# Runs the command line in a fresh interpreter, then writes its exit code and every module it loaded.
RUN_AND_LIST_MODULES = """
import json, sys
from ctxwatch import cli
code = cli.main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def _modules_loaded(shared_daemon, tmp_path, *args: str) -> tuple[int, set[str]]:
    """Exit code and loaded modules of `ctxwatch ARGS` run in a registered folder."""
    folder = example_context(tmp_path / "ctx")
    shared_daemon.client.register(str(folder), name=f"imports-{uuid.uuid4().hex[:10]}")
    listing = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, str(listing), *args],
        env=shared_daemon.env(),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    result = json.loads(listing.read_text())
    return result["code"], set(result["modules"])


def _family(modules: set[str], names: set[str]) -> set[str]:
    """The modules that are one of `names` or inside one of them."""
    return {module for module in modules if any(module == name or module.startswith(name + ".") for name in names)}


@pytest.mark.parametrize(("args", "code"), [(("check", "-q"), 1), (("check",), 1), (("status",), 0)])
def test_check_and_status_load_nothing_only_other_commands_need(shared_daemon, tmp_path, args, code):
    returned, modules = _modules_loaded(shared_daemon, tmp_path, *args)
    assert returned == code  # the command did its work (nothing is built yet: check says 1)
    assert "ctxwatch_api.v1.ctxwatch_pb2" in modules
    assert _family(modules, ONLY_OTHER_COMMANDS) == set()


def test_the_module_listing_sees_what_a_command_loads(shared_daemon, tmp_path):
    """The control for the test above: --json needs protobuf's JSON mapping, and the listing shows it."""
    returned, modules = _modules_loaded(shared_daemon, tmp_path, "check", "--json")
    assert returned == 1
    assert _family(modules, ONLY_OTHER_COMMANDS) == {"google.protobuf.json_format"}


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "-q"],
        ["status"],
        ["--color", "never", "status", "web", "--build-arg", "A=1", "--build-arg", "B=2"],
        ["--socket", "/tmp/s.sock", "check", "--json", "web", "api"],
        ["--socket=/tmp/s.sock", "--no-spawn", "check", "--target", "test", "--no-cache-filter", "a,b"],
        ["affected", "--all", "--state-dir", "/tmp/state"],
        ["check", "--compose", "compose.yaml", "--strict-remote"],
        ["--socket", "check", "status"],  # "check" is the socket's path here: the command is status
        ["--sock", "check", "status"],  # the same, with the option abbreviated
    ],
)
def test_report_commands_are_read_as_the_whole_parser_reads_them(argv):
    parser, args = cli._parse_args(argv)
    assert vars(args) == vars(cli.build_parser().parse_args(argv))
    assert _commands(parser) == set(cli.REPORT_COMMANDS)  # read by the report commands' own parser


@pytest.mark.parametrize(
    "argv",
    [
        ["--sock", "check", "ls"],  # an abbreviated option, then another command
        ["ls"],
        [],
    ],
)
def test_other_command_lines_are_read_by_the_whole_parser(argv):
    parser, args = cli._parse_args(argv)
    assert vars(args) == vars(cli.build_parser().parse_args(argv))
    assert "ls" in _commands(parser)


@pytest.mark.parametrize(
    "argv", [["check", "--help"], ["check", "-qh"], ["check", "--no-such-option"], ["status", "-q"]]
)
def test_help_and_usage_errors_of_report_commands_are_the_whole_parsers(argv, capsys):
    with pytest.raises(SystemExit) as whole_exit:
        cli.build_parser().parse_args(argv)
    whole = capsys.readouterr()
    assert cli.main(argv) == whole_exit.value.code
    assert capsys.readouterr() == whole


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    [commands] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return set(commands.choices)
