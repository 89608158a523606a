"""CLI argument parsing and validation that needs no daemon."""

from __future__ import annotations

import os

import pytest

from ctxwatch import cli
from ctxwatch.client import build_options, context_ref, parse_build_args


@pytest.fixture
def no_daemon(tmp_path, monkeypatch):
    """A socket path in an empty folder, and a state folder of its own, so nothing real is touched."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.setenv("CTXWATCH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("CTXWATCH_SOCKET", raising=False)
    return run_dir / "ctxwatchd.sock"


@pytest.mark.parametrize("command", [["status"], ["check"], ["built", "web"], ["add", "."]])
def test_bad_build_arg_exits_2_naming_it(command, no_daemon, capsys):
    code = cli.main(["--no-spawn", "--socket", str(no_daemon), *command, "--build-arg", "A=1", "--build-arg", "X"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("ctxwatch: ")
    assert "'X'" in err and "KEY=VALUE" in err
    assert "Traceback" not in err


def test_build_args_split_at_the_first_equals_sign():
    assert parse_build_args(["A=b=c", "EMPTY=", "A=d"]) == {"A": "d", "EMPTY": ""}


@pytest.mark.parametrize("bad", ["X", "=1", ""])
def test_build_options_rejects_items_without_a_key_and_value(bad):
    with pytest.raises(ValueError, match=repr(bad)):
        build_options(build_args=["OK=1", bad])


def test_no_cache_filter_is_repeatable_and_comma_separated():
    args = cli.build_parser().parse_args(
        ["status", "--no-cache-filter", "a,b", "--no-cache-filter", "c", "--no-cache-filter", " d , "]
    )
    assert list(cli.options_from_args(args).no_cache_filter) == ["a", "b", "c", "d"]


def test_report_options_become_build_options():
    args = cli.build_parser().parse_args(
        ["check", "web", "api", "--build-arg", "V=2", "--target", "prod", "--no-cache", "--assume-remote-unchanged"]
    )
    options = cli.options_from_args(args)
    assert args.contexts == ["web", "api"]
    assert dict(options.build_args) == {"V": "2"}
    assert options.target == "prod"
    assert options.no_cache is True
    assert options.HasField("strict_remote") and options.strict_remote is False


def test_built_does_not_take_assume_remote_unchanged(capsys):
    assert cli.main(["built", "--assume-remote-unchanged"]) == 2
    assert "--assume-remote-unchanged" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--socket", "/x.sock", "--state-dir", "/st", "--no-spawn", "status"],
        ["status", "--socket", "/x.sock", "--state-dir", "/st", "--no-spawn"],
        ["--socket", "/x.sock", "daemon", "status", "--state-dir", "/st", "--no-spawn"],
    ],
)
def test_global_options_work_before_and_after_the_command(argv):
    args = cli.build_parser().parse_args(argv)
    assert (args.socket, args.state_dir, args.no_spawn) == ("/x.sock", "/st", True)


def test_global_options_default_when_not_given():
    args = cli.build_parser().parse_args(["ls"])
    assert (args.socket, args.state_dir, args.no_spawn) == (None, None, False)


def test_context_ref_of_an_existing_dir_is_its_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "web").mkdir()
    monkeypatch.chdir(tmp_path)
    ref = context_ref("web")
    assert ref.WhichOneof("ref") == "path"
    assert ref.path == os.path.join(str(tmp_path), "web")


def test_context_ref_of_a_non_path_is_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ref = context_ref("web")
    assert ref.WhichOneof("ref") == "name"
    assert ref.name == "web"


@pytest.mark.parametrize("flags", [["--no-spawn"], []])
def test_daemon_status_without_a_daemon_exits_2_and_says_how_to_start_one(flags, no_daemon, capsys):
    code = cli.main(["daemon", "status", "--socket", str(no_daemon), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("ctxwatch: ")
    assert f"no daemon is running on {no_daemon}" in err
    assert "`ctxwatchd --socket" in err and "systemctl --user start ctxwatchd" in err
    # `daemon status` never starts a daemon, with or without --no-spawn.
    assert list(no_daemon.parent.iterdir()) == []
    assert not (no_daemon.parent.parent / "state").exists()


def test_no_spawn_refuses_for_other_commands_too(no_daemon, capsys):
    assert cli.main(["--no-spawn", "--socket", str(no_daemon), "ls"]) == 2
    assert "no daemon is running" in capsys.readouterr().err
    assert list(no_daemon.parent.iterdir()) == []


def test_daemon_stop_without_a_daemon_says_so_and_exits_0(no_daemon, capsys):
    assert cli.main(["daemon", "stop", "--socket", str(no_daemon)]) == 0
    assert capsys.readouterr().out.strip() == f"no daemon is running on {no_daemon}"
    assert list(no_daemon.parent.iterdir()) == []


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "usage: ctxwatch" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error_listing_the_commands(capsys):
    assert cli.main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'; commands: add, ls, rm," in err, err


@pytest.mark.parametrize(
    ("argv", "suggested"),
    [(["statu"], "status"), (["chek"], "check"), (["daemon", "statsu"], "status"), (["daemon", "restrat"], "restart")],
)
def test_a_mistyped_command_gets_a_suggestion(argv, suggested, capsys):
    assert cli.main(argv) == 2
    assert f"unknown command {argv[-1]!r}; did you mean {suggested!r}?" in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("add", "ls", "rm", "status", "check", "built", "daemon"):
        assert f"    {command} " in out
