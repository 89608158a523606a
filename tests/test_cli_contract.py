"""The contract scripts rely on: exit codes, one JSON shape per command, quiet closed pipes, colour.

Run through the real CLI (in this process, or as a subprocess where only a process shows it) against a real daemon.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from support.cli import CLI, InProcessCli
from support.contexts import example_context


@pytest.fixture
def run(shared_daemon, monkeypatch, capsys) -> InProcessCli:
    return InProcessCli(shared_daemon, monkeypatch, capsys)


@pytest.fixture
def context(shared_daemon, run, tmp_path) -> tuple[dict[str, str], Path, str]:
    """A registered, built context: (env for a subprocess, folder, name)."""
    folder = example_context(tmp_path / "ctx")
    name = f"contract-{uuid.uuid4().hex[:10]}"
    run("add", str(folder), "--name", name)
    run("built", name)
    return shared_daemon.env(), folder, name


def test_check_exits_0_when_cached_and_1_when_a_step_reruns(context, run):
    _, folder, name = context
    run("check", name, code=0)
    (folder / "app.txt").write_text("changed\n")
    run("check", name, code=1)


def test_a_dockerfile_that_does_not_parse_is_exit_2_for_check_and_status(context, run):
    _, folder, name = context
    (folder / "Dockerfile").write_text("FROM scratch\nCOPY --chmod=\n")
    assert run("check", name, code=2).stdout
    run("status", name, code=2)
    run("check", "-q", name, code=2)


def test_an_unknown_target_is_exit_2(context, run):
    _, _, name = context
    result = run("check", name, "--target", "no-such-stage", code=2)
    assert "no-such-stage" in result.stdout
    run("status", name, "--target", "no-such-stage", code=2)


def test_an_unreadable_source_is_exit_2(context, run):
    _, folder, name = context
    (folder / "Dockerfile").write_text("FROM scratch\nCOPY missing.txt /x\n")
    run("check", name, code=2)
    run("status", name, code=2)


def test_an_unknown_context_is_exit_2_for_every_command(run):
    for command in (["check"], ["status"], ["built"], ["watch"], ["prune"], ["rm", "--forget"]):
        result = run(*command, "no-such-context", code=2)
        assert result.stderr.startswith("ctxwatch: ") and "no-such-context" in result.stderr


@pytest.mark.parametrize(
    ("argv", "keys"),
    [
        (["status", "--json"], {"reports", "changes", "projects"}),
        (["check", "--json"], {"allCached", "exitCode", "reports", "changes", "projects"}),
        (["ls", "--json"], {"contexts"}),
        (["built", "--json"], {"builds", "changes", "projects"}),
        (["affected", "--json"], {"affected", "names", "checked", "changes", "projects"}),
        (["rm", "--json"], {"removed", "historyKept"}),
        (["prune", "--json", "--dry-run"], {"buildsRemoved", "nodesRemoved", "dryRun"}),
        (["daemon", "status", "--json"], {"running", "daemon"}),
        (["daemon", "socket", "--json"], {"socketPath", "logPath"}),
    ],
)
def test_every_json_output_is_one_object_of_a_fixed_shape(context, run, argv, keys):
    _, _, name = context
    named = [*argv[:1], name, *argv[1:]] if argv[0] in {"status", "check", "built", "prune", "affected", "rm"} else argv
    document = json.loads(run(*named, code=0).stdout)
    assert isinstance(document, dict) and set(document) == keys


def test_status_json_is_an_object_with_a_list_for_one_context_or_several(context, run, tmp_path):
    _, folder, name = context
    other = f"contract-other-{uuid.uuid4().hex[:8]}"
    run("add", str(example_context(tmp_path / "other")), "--name", other, code=0)
    one = json.loads(run("status", "--json", name, code=0).stdout)
    two = json.loads(run("status", "--json", name, other, code=0).stdout)
    assert [report["context"]["name"] for report in one["reports"]] == [name]
    assert [report["context"]["name"] for report in two["reports"]] == [name, other]


def test_add_json_names_the_changed_options(context, run):
    _, folder, name = context
    document = json.loads(run("add", str(folder), "--name", name, "--build-arg", "V=2", "--json", code=0).stdout)
    assert set(document) == {"reports", "changes", "projects"}
    [change] = document["changes"]
    assert (change["change"], change["context"]) == ("updated", name)
    assert change["options"] == [{"option": "build arg V", "was": "(unset)", "now": "2"}]
    again = json.loads(run("add", str(folder), "--name", name, "--json", code=0).stdout)
    assert [(c["change"], c["options"]) for c in again["changes"]] == [("unchanged", [])]


def test_a_closed_pipe_ends_quietly_with_the_commands_own_exit_code(context):
    env, folder, name = context
    (folder / "app.txt").write_text("changed\n")
    # `ctxwatch check NAME | head -1`: head exits after one line; check must not complain.
    for _ in range(3):
        check = subprocess.Popen([*CLI, "check", name], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert check.stdout is not None
        check.stdout.readline()
        check.stdout.close()
        _, err = check.communicate(timeout=60)
        assert check.returncode == 1 and err == b"", err


def test_color_follows_the_option_then_no_color(context, run):
    _, folder, name = context
    (folder / "app.txt").write_text("changed\n")
    escape = "\x1b["
    assert escape in run("--color=always", "status", name, code=0).stdout
    assert escape in run("status", name, "--color", "always", code=0, env={"NO_COLOR": "1"}).stdout
    assert escape not in run("status", name, "--color=never", code=0).stdout
    assert escape not in run("status", name, code=0).stdout  # auto: not a terminal
