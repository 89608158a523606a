"""Managing the daemon from the CLI: start, stop, restart, status, logs, socket, install-unit;
its rotated log, its idle timeout, and `watch` across a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from support.cli import CLI, ctxwatch
from support.contexts import example_context
from support.daemon import start_daemon

from ctxwatch import launch, spawn, unit
from ctxwatch.client import connect


def test_start_status_logs_restart_stop(no_daemon_env, tmp_path):
    env, socket = no_daemon_env
    log = tmp_path / "state" / "ctxwatchd.log"
    started = ctxwatch(env, tmp_path, "daemon", "start", code=0)
    assert "started ctxwatchd (pid" in started.stdout and f"log: {log}" in started.stdout
    assert "already running" in ctxwatch(env, tmp_path, "daemon", "start", code=0).stdout

    status = json.loads(ctxwatch(env, tmp_path, "daemon", "status", "--json", code=0).stdout)["daemon"]
    assert status["logFile"] == str(log)
    assert status["idleTimeoutSeconds"] == launch.IDLE_TIMEOUT_S  # a daemon the CLI started
    text = ctxwatch(env, tmp_path, "daemon", "status", code=0).stdout
    assert str(log) in text and "idle exit" in text

    assert "serving on" in ctxwatch(env, tmp_path, "daemon", "logs", "-n", "5", code=0).stdout
    assert ctxwatch(env, tmp_path, "daemon", "socket", code=0).stdout.strip() == str(socket)

    restarted = ctxwatch(env, tmp_path, "daemon", "restart", code=0)
    assert f"stopped ctxwatchd (pid {status['pid']})" in restarted.stdout and "started ctxwatchd" in restarted.stdout
    with connect(socket, spawn=False) as client:
        assert client.daemon_status().pid != status["pid"]
    ctxwatch(env, tmp_path, "daemon", "stop", code=0)
    assert spawn.probe(socket) is None


def test_logs_without_a_log_says_where_it_looked(no_daemon_env, tmp_path):
    env, _ = no_daemon_env
    result = ctxwatch(env, tmp_path, "daemon", "logs", code=2)
    assert str(tmp_path / "state" / "ctxwatchd.log") in result.stderr


def test_the_log_file_rotates_and_stderr_follows_it(tmp_path):
    log = tmp_path / "d.log"
    script = textwrap.dedent(
        f"""
        import logging, os, sys
        from ctxwatchd.server import logfile
        logfile.LOG_MAX_BYTES = 2000
        from pathlib import Path
        assert logfile.configure("INFO", Path({str(log)!r})) == {str(log)!r}
        for i in range(100):
            logging.getLogger("ctxwatchd").info("line %d %s", i, "x" * 40)
        print("a traceback would land here", file=sys.stderr, flush=True)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    files = sorted(path.name for path in tmp_path.iterdir())
    assert files == ["d.log", "d.log.1", "d.log.2", "d.log.3"]  # at most LOG_BACKUPS old files
    assert all(path.stat().st_size <= 2000 for path in tmp_path.iterdir())
    current = log.read_text()
    assert "line 99" in current and "a traceback would land here" in current


def test_an_idle_daemon_exits_and_an_open_stream_keeps_it(tmp_path):
    folder = example_context(tmp_path / "ctx")
    daemon = start_daemon(tmp_path / "d", "--idle-timeout", "0.5")
    try:
        name = daemon.client.register(str(folder)).context.name
        stream = daemon.client.watch(name)
        next(stream)
        # Held open for many times the timeout: the daemon stays.
        for _ in range(4):
            assert daemon.process.poll() is None
            spawn.wait_until_stopped(daemon.socket, daemon.process.pid, timeout=1.0)
        assert daemon.process.poll() is None
        stream.close()
        daemon.client.close()
        assert daemon.process.wait(timeout=30) == 0  # then idle: it exits, cleanly
        assert "no client for 0.5 s: exiting" in daemon.log.read_text()
        assert not daemon.socket.exists()
    finally:
        daemon.stop()


def test_watch_reconnects_after_a_restart_and_gives_up_with_a_message(tmp_path):
    folder = example_context(tmp_path / "ctx")
    daemon = start_daemon(tmp_path / "d")
    name = daemon.client.register(str(folder), name=f"w-{uuid.uuid4().hex[:8]}").context.name
    watch = subprocess.Popen(
        [*CLI, "watch", name, "--json", "--reconnect-timeout", "20"],
        env=daemon.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert json.loads(watch.stdout.readline())["report"]["context"]["name"] == name
        daemon.stop()
        daemon = start_daemon(tmp_path / "d")  # same socket and state: a restart
        assert json.loads(watch.stdout.readline())["report"]["context"]["name"] == name
        daemon.stop()
        watch.wait(timeout=60)
    finally:
        watch.kill()
        daemon.stop()
    err = watch.stderr.read()
    assert watch.returncode == 2
    assert "reconnecting" in err and "reconnected (ctxwatchd pid" in err
    assert "did not come back within 20 s" in err


def test_install_unit_writes_the_unit_for_this_installation(tmp_path, monkeypatch, capsys):
    from ctxwatch import cli

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert cli.main(["daemon", "install-unit"]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "config" / "systemd" / "user" / "ctxwatchd.service"
    assert f"wrote {path}" in out
    assert "systemctl --user daemon-reload" in out and "systemctl --user enable --now ctxwatchd" in out
    text = path.read_text()
    assert f"ExecStart={Path(sys.executable).with_name('ctxwatchd')} " in text and "@CTXWATCHD@" not in text
    # Again: same text, nothing to refuse; a unit the user edited is kept unless --force.
    assert cli.main(["daemon", "install-unit"]) == 0
    path.write_text(text + "# edited\n")
    assert cli.main(["daemon", "install-unit"]) == 2
    assert "--force" in capsys.readouterr().err
    assert cli.main(["daemon", "install-unit", "--force"]) == 0
    assert path.read_text() == unit.render(unit.daemon_executable())


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="Linux only")
def test_daemon_status_json_without_a_daemon_exits_2(no_daemon_env, tmp_path):
    env, _ = no_daemon_env
    result = ctxwatch(env, tmp_path, "daemon", "status", "--json", code=2)
    assert result.stdout == "" and "no daemon is running" in result.stderr


# The `ctxwatch` program as installed: its front, which hands a command to the runner or runs it here.
FRONT = [sys.executable, "-m", "ctxwatch.front"]


def test_a_command_that_finds_no_daemon_starts_one_before_importing_grpc(no_daemon_env, tmp_path):
    env, socket = no_daemon_env
    context = example_context(tmp_path / "ctx")
    # What the front does first for `add`: start the daemon, gRPC not imported yet.
    script = textwrap.dedent(
        """
        import sys
        from ctxwatch import front, launch
        assert front.daemon_started_early(sys.argv[1:])
        launch.start_early()
        assert "grpc" not in sys.modules, "gRPC imported before the daemon was started"
        print(launch.take_started_early(launch.paths.resolve_socket_path()).pid)
        """
    )
    command = [sys.executable, "-c", script, "add", str(context)]
    early = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert early.returncode == 0, early.stderr
    assert spawn.wait_until_serving_again(socket, timeout=30)
    with connect(socket, spawn=False) as client:
        assert client.daemon_status().pid == int(early.stdout)
        client.shutdown()
    spawn.wait_until_stopped(socket, int(early.stdout))

    # The whole command through the front: one daemon started, which the command waits for and uses.
    command = [*FRONT, "add", str(context)]
    added = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    assert "Traceback" not in added.stderr and "ctx: " in added.stdout
    log = (tmp_path / "state" / "ctxwatchd.log").read_text()
    assert log.count("serving on") == 2 and "already" not in log, log  # the script's daemon, then this one
    with connect(socket, spawn=False) as client:
        assert [context.path for context in client.list()] == [str(context)]


@pytest.mark.parametrize(
    ("argv", "early"),
    [
        (["add", "."], True),
        (["--color", "never", "check"], True),
        (["status", "--json", "web"], True),
        (["--socket", "/tmp/other.sock", "add", "."], False),  # not the default daemon: left to the parser
        (["add", "--state-dir=/tmp/state", "."], False),
        (["check", "--no-spawn"], False),
        (["--no-daemon", "status"], False),
        (["add", "-h"], False),
        (["daemon", "start"], False),  # says whether it started one
        (["lsp"], False),
        (["addd", "."], False),  # a mistyped command starts nothing
        ([], False),
    ],
)
def test_which_command_lines_start_the_daemon_early(argv, early):
    from ctxwatch import front

    assert front.daemon_started_early(argv) is early
