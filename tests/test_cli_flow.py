"""The acceptance scenario, through the `ctxwatch` command line as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid

from support.cli import ctxwatch
from support.contexts import EXAMPLE_DOCKERFILE, example_context

from ctxwatch import spawn
from ctxwatch.client import connect


def test_acceptance_scenario(shared_daemon, tmp_path):
    env = shared_daemon.env()
    folder = example_context(tmp_path / "ctx")
    name = f"flow-{uuid.uuid4().hex[:10]}"
    app = folder / "app.txt"

    def run(*args: str, code: int | None = 0) -> subprocess.CompletedProcess:
        return ctxwatch(env, tmp_path, *args, code=code)

    added = run("add", str(folder), "--name", name)
    assert f"registered context {name!r}" in added.stdout
    run("built", name)
    run("check", name)

    # A content change invalidates the COPY that reads the file, and what follows.
    app.write_text("hello, world\n")
    run("check", name, code=1)
    status = run("status", name).stdout
    assert re.search(r"^INVALIDATED\s+\S+\s+2\s+COPY app\.txt /app/app\.txt$", status, re.M), status
    assert re.search(r"^\s+content\s+app\.txt\b", status, re.M), status

    # Recording the build makes it cached; a new mtime alone changes nothing.
    run("built", name)
    stat = os.stat(app)
    os.utime(app, ns=(stat.st_atime_ns, stat.st_mtime_ns - 3_600_000_000_000))
    run("check", name)

    # The permission bits are part of the checksum.
    os.chmod(app, 0o755)
    run("check", name, code=1)
    status = run("status", name).stdout
    assert re.search(r"^INVALIDATED\s+\S+\s+2\s+COPY app\.txt", status, re.M), status
    assert "0644 -> 0755" in status, status
    run("built", name)

    # An ignored file is never sent: editing it changes nothing (and the build above made it all cached).
    (folder / "notes.log").write_text("started\nmore lines\n")
    run("check", name)

    # RUN is matched by its text: the check names the old and the new instruction.
    (folder / "Dockerfile").write_text(EXAMPLE_DOCKERFILE.replace('RUN ["/bin/true"]', 'RUN ["/bin/false"]'))
    check = run("check", name, code=1).stdout
    assert 'RUN ["/bin/true"]' in check and 'RUN ["/bin/false"]' in check, check
    assert "COPY app.txt" not in check, f"only the RUN step should be listed:\n{check}"
    run("built", name)

    # notes.log is now sent, but no step reads it (nor the .dockerignore): BuildKit hits the cache.
    (folder / ".dockerignore").write_text("# nothing ignored\n")
    run("check", name)

    [report] = json.loads(run("status", "--json", name).stdout)["reports"]
    assert report["context"]["name"] == name
    assert report["context"]["path"] == str(folder)
    assert report["allCached"] is True
    assert [step["line"] for step in report["steps"]] == [2, 3, 4]
    assert [step["status"] for step in report["steps"]] == ["STEP_STATUS_CACHED"] * 3
    assert report["steps"][2]["instruction"] == 'RUN ["/bin/false"]'
    assert report["buildsRecorded"] == 4
    # Default values are printed too, so scripts can rely on every field being there.
    assert report["error"] == "" and report["steps"][0]["cause"] == "CAUSE_UNSPECIFIED"

    listed = run("ls").stdout
    assert re.search(rf"^{re.escape(name)}\s+{re.escape(str(folder))}\s", listed, re.M), listed

    removed = run("rm", "--forget", name).stdout
    assert f"removed context {name!r}" in removed
    unknown = run("check", name, code=2)
    assert unknown.stderr.startswith("ctxwatch: ") and repr(name) in unknown.stderr, unknown.stderr


def test_no_spawn_without_a_daemon_exits_2(no_daemon_env, tmp_path):
    env, socket = no_daemon_env
    result = ctxwatch(env, tmp_path, "--no-spawn", "ls", code=2)
    assert result.stderr.startswith("ctxwatch: ")
    assert "no daemon is running" in result.stderr and str(socket) in result.stderr
    assert not socket.exists()
    assert spawn.probe(socket) is None


def test_cli_starts_the_daemon_on_demand_and_daemon_stop_stops_it(no_daemon_env, tmp_path):
    env, socket = no_daemon_env
    listed = ctxwatch(env, tmp_path, "ls", code=0)
    assert "no contexts registered" in listed.stdout
    assert spawn.is_serving(socket)
    with connect(socket, spawn=False) as client:
        status = client.daemon_status()
    assert status.socket_path == str(socket)
    assert status.state_dir == str(tmp_path / "state")

    stopped = ctxwatch(env, tmp_path, "daemon", "stop", code=0)
    assert f"stopped ctxwatchd (pid {status.pid})" in stopped.stdout
    assert not socket.exists()
    assert spawn.probe(socket) is None
