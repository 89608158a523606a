"""Safe by default: prune, rm and add never lose or change more than the user asked for."""

from __future__ import annotations

import json
import uuid

import pytest
from test_cli_flow import ctxwatch, make_context

from ctxwatch.cli import parse_duration


@pytest.fixture
def built(shared_daemon, tmp_path):
    """A context built twice: (env, folder, name)."""
    env = shared_daemon.env()
    folder = make_context(tmp_path / "ctx")
    name = f"safety-{uuid.uuid4().hex[:10]}"
    ctxwatch(env, tmp_path, "add", str(folder), "--name", name, "--target", "", code=0)
    ctxwatch(env, tmp_path, "built", name, code=0)
    (folder / "app.txt").write_text("second\n")
    ctxwatch(env, tmp_path, "built", name, code=0)
    return env, folder, name


def _builds(env, tmp_path, name) -> int:
    [report] = json.loads(ctxwatch(env, tmp_path, "status", "--json", name, code=0).stdout)["reports"]
    return report["buildsRecorded"]


def test_prune_without_contexts_or_all_forgets_nothing(built, tmp_path):
    env, _, name = built
    result = ctxwatch(env, tmp_path, "prune", code=2)
    assert "--all" in result.stderr
    assert _builds(env, tmp_path, name) == 2


def test_prune_without_a_terminal_needs_force(built, tmp_path):
    env, _, name = built
    result = ctxwatch(env, tmp_path, "prune", name, code=2)
    assert "forget 2 recorded build(s)" in result.stderr and "-f" in result.stderr
    assert _builds(env, tmp_path, name) == 2
    ctxwatch(env, tmp_path, "prune", name, "--force", "--keep", "1", code=0)
    assert _builds(env, tmp_path, name) == 1


def test_prune_dry_run_counts_and_changes_nothing(built, tmp_path):
    env, _, name = built
    document = json.loads(ctxwatch(env, tmp_path, "prune", name, "--dry-run", "--json", code=0).stdout)
    assert document["buildsRemoved"] == 2 and document["dryRun"] is True
    assert "would forget 2" in ctxwatch(env, tmp_path, "prune", name, "--dry-run", code=0).stdout
    assert _builds(env, tmp_path, name) == 2


def test_prune_until_spares_recent_builds(built, tmp_path):
    env, _, name = built
    result = ctxwatch(env, tmp_path, "prune", name, "-f", "--filter", "until=1h", code=0)
    assert "nothing to forget" in result.stdout
    assert _builds(env, tmp_path, name) == 2
    document = json.loads(
        ctxwatch(env, tmp_path, "prune", name, "--dry-run", "--json", "--filter", "until=0s", code=0).stdout
    )
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


def test_rm_says_the_history_goes_and_needs_forget(built, tmp_path):
    env, _, name = built
    refused = ctxwatch(env, tmp_path, "rm", name, code=2)
    assert "recorded builds" in refused.stderr and "--forget" in refused.stderr
    assert _builds(env, tmp_path, name) == 2
    removed = ctxwatch(env, tmp_path, "rm", name, "--forget", code=0)
    assert "forgot its recorded builds" in removed.stdout


def test_add_again_keeps_the_target_and_says_what_changed(shared_daemon, tmp_path):
    env = shared_daemon.env()
    folder = make_context(tmp_path / "ctx")
    (folder / "Dockerfile").write_text("FROM scratch AS base\nCOPY app.txt /\nFROM base AS app\nCOPY src/ /src/\n")
    name = f"safety-{uuid.uuid4().hex[:10]}"
    ctxwatch(env, tmp_path, "add", str(folder), "--name", name, "--target", "base", "--build-arg", "A=1", code=0)
    again = ctxwatch(env, tmp_path, "add", str(folder), code=0)
    assert f"context {name!r} is already registered; nothing changed" in again.stdout
    [context] = [
        c for c in json.loads(ctxwatch(env, tmp_path, "ls", "--json", code=0).stdout)["contexts"] if c["name"] == name
    ]
    assert context["target"] == "base" and context["buildArgs"] == {"A": "1"}
    changed = ctxwatch(env, tmp_path, "add", str(folder), "--target", "app", "--build-arg", "B=2", code=0)
    assert "target base -> app" in changed.stdout
    assert "build arg A 1 -> (unset)" in changed.stdout and "build arg B (unset) -> 2" in changed.stdout


def test_one_folder_under_a_second_name_needs_the_name(shared_daemon, tmp_path):
    env = shared_daemon.env()
    folder = make_context(tmp_path / "ctx")
    (folder / "Dockerfile.other").write_text("FROM scratch\nCOPY app.txt /\n")
    first = f"safety-{uuid.uuid4().hex[:10]}"
    ctxwatch(env, tmp_path, "add", str(folder), "--name", first, code=0)
    refused = ctxwatch(env, tmp_path, "add", str(folder), "-f", str(folder / "Dockerfile.other"), code=2)
    assert f"already registered as {first!r}" in refused.stderr and "--name" in refused.stderr
    second = f"safety-{uuid.uuid4().hex[:10]}"
    ctxwatch(env, tmp_path, "add", str(folder), "-f", str(folder / "Dockerfile.other"), "--name", second, code=0)
    # In that folder, a command without a name answers for both contexts, not for every one registered.
    names = [
        r["context"]["name"] for r in json.loads(ctxwatch(env, folder, "status", "--json", code=0).stdout)["reports"]
    ]
    assert sorted(names) == sorted([first, second])
