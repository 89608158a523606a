"""The config file: defaults for the daemon and queries; per-context options given on `add`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.contexts import make_context
from support.daemon import start_daemon

from ctxwatch import cli
from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatchd import config
from ctxwatchd.config import BuilderSettings, Config, ConfigError

# An unpinned image: assumed as last built unless strict_remote.
NODE_DOCKERFILE = "FROM node:20-alpine\nCOPY a.txt /a.txt\n"

FULL = """\
strict_remote = true
max_builds = 7
log_level = "DEBUG"

[builder]
watch_buildx = false
buildx_config = "~/bx"
buildx = "/opt/buildx"
history_timeout = 3
"""


def test_missing_file_means_the_defaults(tmp_path: Path) -> None:
    assert config.load(tmp_path / "none.toml") == Config()


def test_every_setting_is_read(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(FULL)
    assert config.load(path) == Config(
        path=path,
        strict_remote=True,
        max_builds=7,
        log_level="DEBUG",
        builder=BuilderSettings(watch_buildx=False, buildx_config="~/bx", buildx="/opt/buildx", history_timeout=3.0),
    )
    assert config.load(path).builder.buildx_dir() == Path("~/bx").expanduser()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("strict_remote = \n", "not valid TOML: Invalid value (at line 1, column 17)"),
        ("max_builds = 5\nstrict_remote = yes\n", "(at line 2, column 17)"),
        (
            "strict = true\n",
            "strict: unknown key (known: answer_time_limit, log_level, max_builds, max_tree_entries, strict_remote)",
        ),
        ("[builder]\nwatch = true\n", "builder.watch: unknown key"),
        ("strict_remote = 1\n", "strict_remote: expected bool, got an integer 1"),
        ("max_builds = true\n", "max_builds: expected int, got a boolean True"),
        ("max_builds = 0\n", "max_builds: must be at least 1, got 0"),
        ('log_level = "LOUD"\n', "log_level: expected one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"),
        ("builder = 3\n", "builder: expected a table ([builder]), got an integer"),
        ("[builder]\nhistory_timeout = 0\n", "builder.history_timeout: must be more than 0"),
        ("answer_time_limit = -1\n", "answer_time_limit: must be 0 (no limit) or more, got -1"),
        ("max_tree_entries = 0\n", "max_tree_entries: must be at least 1, got 0"),
    ],
)
def test_mistakes_name_the_file_and_the_key_or_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        config.load(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_path_from_flag_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.CONFIG_ENV, str(tmp_path / "env.toml"))
    assert config.resolve_path() == tmp_path / "env.toml"
    assert config.resolve_path(str(tmp_path / "flag.toml")) == tmp_path / "flag.toml"
    monkeypatch.delenv(config.CONFIG_ENV)
    assert config.resolve_path().parts[-2:] == ("ctxwatch", "config.toml")


def test_daemon_refuses_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("max_builds = 'many'\n")
    done = subprocess.run(
        [sys.executable, "-m", "ctxwatchd", "--socket", str(tmp_path / "d.sock"), "--state-dir", str(tmp_path / "s")],
        check=False,
        env={**os.environ, config.CONFIG_ENV: str(path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"bad config: {path}: max_builds: expected int, got a string 'many'" in done.stderr


def test_strict_remote_from_config_context_and_query(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "daemon"
    folder.mkdir()
    (folder / "config.toml").write_text("strict_remote = true\n")
    daemon = start_daemon(folder)
    try:
        context = make_context(tmp_path / "ctx", NODE_DOCKERFILE, {"a.txt": "a\n"})
        client = daemon.client
        client.register(str(context), name="strict-by-config")
        client.mark_built("strict-by-config")
        [report] = client.reports(["strict-by-config"])
        assert [s.status for s in report.steps] == [pb.STEP_STATUS_UNKNOWN] * 2
        [report] = client.reports(["strict-by-config"], pb.BuildOptions(strict_remote=False))
        assert report.all_cached and list(report.assumed_remote) == ["node:20-alpine"]

        # A context registered as not strict overrides the config; `ls` and `status` show it.
        base = ["--socket", str(daemon.socket), "--no-spawn"]
        assert cli.main([*base, "add", str(context), "--name", "relaxed", "--no-strict-remote"]) == 0
        assert cli.main([*base, "built", "relaxed"]) == 0
        capsys.readouterr()
        assert cli.main([*base, "check", "relaxed"]) == 0
        assert cli.main([*base, "check", "relaxed", "--strict-remote"]) == 1
        capsys.readouterr()
        assert cli.main([*base, "status", "relaxed"]) == 0
        status = capsys.readouterr().out
        assert "options: no-strict-remote" in status
        assert status.count("node:20-alpine") == 2  # the FROM line and the one note
        assert cli.main([*base, "ls"]) == 0
        rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
        assert rows["relaxed"][-1] == "no-strict-remote" and rows["strict-by-config"][-1] == "-"
    finally:
        daemon.stop()


def test_max_builds_from_config(tmp_path: Path) -> None:
    folder = tmp_path / "daemon"
    folder.mkdir()
    (folder / "config.toml").write_text("max_builds = 2\n")
    daemon = start_daemon(folder)
    try:
        daemon.client.register(str(make_context(tmp_path / "ctx", NODE_DOCKERFILE, {"a.txt": "a\n"})), name="c")
        for _ in range(4):
            daemon.client.mark_built("c")
        [report] = daemon.client.reports(["c"])
        assert report.builds_recorded == 2
    finally:
        daemon.stop()


def test_unpinned_images_by_default_built_then_check_is_clean(
    shared_daemon, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    context = tmp_path / "node-app"
    context.mkdir()
    (context / "package.json").write_text("{}\n")
    (context / "Dockerfile").write_text(
        "FROM node:20-alpine AS deps\nWORKDIR /app\nCOPY package.json ./\nRUN npm ci\n"
        "FROM node:20-alpine\nCOPY --from=deps /app /app\nADD https://example.com/x.tgz /x.tgz\n"
    )
    base = ["--socket", str(shared_daemon.socket), "--no-spawn"]
    assert cli.main([*base, "add", str(context)]) == 0
    assert cli.main([*base, "built", str(context)]) == 0
    capsys.readouterr()
    assert cli.main([*base, "check", str(context)]) == 0
    assert cli.main([*base, "status", str(context)]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("note:")]
    assert len(notes) == 1 and notes[0].endswith(": https://example.com/x.tgz, node:20-alpine")
    assert cli.main([*base, "check", str(context), "--strict-remote"]) == 1
