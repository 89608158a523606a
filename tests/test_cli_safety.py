"""Safe by default: prune, rm and add never lose or change more than the user asked for."""

from __future__ import annotations

import json
import uuid

import pytest
from support.cli import InProcessCli
from support.contexts import example_context

from ctxwatch.cli import parse_duration


@pytest.fixture
def run(shared_daemon, monkeypatch, capsys) -> InProcessCli:
    return InProcessCli(shared_daemon, monkeypatch, capsys)


@pytest.fixture
def built(run, tmp_path):
    """A context built twice: (folder, name)."""
    folder = example_context(tmp_path / "ctx")
    name = f"safety-{uuid.uuid4().hex[:10]}"
    run("add", str(folder), "--name", name, "--target", "", code=0)
    run("built", name, code=0)
    (folder / "app.txt").write_text("second\n")
    run("built", name, code=0)
    return folder, name


def _builds(run, name) -> int:
    [report] = json.loads(run("status", "--json", name, code=0).stdout)["reports"]
    return report["buildsRecorded"]


def test_prune_without_contexts_or_all_forgets_nothing(built, run):
    _, name = built
    result = run("prune", code=2)
    assert "--all" in result.stderr
    assert _builds(run, name) == 2


def test_prune_without_a_terminal_needs_force(built, run):
    _, name = built
    result = run("prune", name, code=2)
    assert "forget 2 recorded build(s)" in result.stderr and "-f" in result.stderr
    assert _builds(run, name) == 2
    run("prune", name, "--force", "--keep", "1", code=0)
    assert _builds(run, name) == 1


def test_prune_dry_run_counts_and_changes_nothing(built, run):
    _, name = built
    document = json.loads(run("prune", name, "--dry-run", "--json", code=0).stdout)
    assert document["buildsRemoved"] == 2 and document["dryRun"] is True
    assert "would forget 2" in run("prune", name, "--dry-run", code=0).stdout
    assert _builds(run, name) == 2


def test_prune_until_spares_recent_builds(built, run):
    _, name = built
    result = run("prune", name, "-f", "--filter", "until=1h", code=0)
    assert "nothing to forget" in result.stdout
    assert _builds(run, name) == 2
    document = json.loads(run("prune", name, "--dry-run", "--json", "--filter", "until=0s", code=0).stdout)
    assert document["buildsRemoved"] == 2


@pytest.mark.parametrize(
    ("text", "seconds"), [("45s", 45), ("90m", 5400), ("24h", 86400), ("7d", 604800), ("1h30m", 5400)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "h", "5w", "1h 30m", "-1h"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_rm_keeps_the_history_unless_forget(built, run):
    folder, name = built
    removed = run("rm", name, code=0)
    assert "its 2 recorded build(s) are kept" in removed.stdout and "--forget" in removed.stdout
    assert name not in run("ls", code=0).stdout
    run("add", str(folder), "--name", name, code=0)
    assert _builds(run, name) == 2
    run("check", name, code=0)  # the kept builds still make its steps cached
    forgot = json.loads(run("rm", "--forget", "--json", name, code=0).stdout)
    assert forgot["historyKept"] is False
    assert [(r["context"]["name"], r["buildsKept"]) for r in forgot["removed"]] == [(name, 0)]
    run("add", str(folder), "--name", name, code=0)
    assert _builds(run, name) == 0


def test_add_again_keeps_the_target_and_says_what_changed(run, tmp_path):
    folder = example_context(tmp_path / "ctx")
    (folder / "Dockerfile").write_text("FROM scratch AS base\nCOPY app.txt /\nFROM base AS app\nCOPY src/ /src/\n")
    name = f"safety-{uuid.uuid4().hex[:10]}"
    run("add", str(folder), "--name", name, "--target", "base", "--build-arg", "A=1", code=0)
    again = run("add", str(folder), code=0)
    assert f"context {name!r} is already registered; nothing changed" in again.stdout
    [context] = [c for c in json.loads(run("ls", "--json", code=0).stdout)["contexts"] if c["name"] == name]
    assert context["target"] == "base" and context["buildArgs"] == {"A": "1"}
    changed = run("add", str(folder), "--target", "app", "--build-arg", "B=2", code=0)
    assert "target base -> app" in changed.stdout
    assert "build arg A 1 -> (unset)" in changed.stdout and "build arg B (unset) -> 2" in changed.stdout


def test_one_folder_under_a_second_name_needs_the_name(run, tmp_path):
    folder = example_context(tmp_path / "ctx")
    (folder / "Dockerfile.other").write_text("FROM scratch\nCOPY app.txt /\n")
    first = f"safety-{uuid.uuid4().hex[:10]}"
    run("add", str(folder), "--name", first, code=0)
    refused = run("add", str(folder), "-f", str(folder / "Dockerfile.other"), code=2)
    assert f"already registered as {first!r}" in refused.stderr and "--name" in refused.stderr
    second = f"safety-{uuid.uuid4().hex[:10]}"
    run("add", str(folder), "-f", str(folder / "Dockerfile.other"), "--name", second, code=0)
    # In that folder, a command without a name answers for both contexts, not for every one registered.
    names = [r["context"]["name"] for r in json.loads(run("status", "--json", code=0, cwd=folder).stdout)["reports"]]
    assert sorted(names) == sorted([first, second])
