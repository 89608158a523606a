"""What the language server shows for each kind of answer (labels and hover),
from the daemon's messages."""

from __future__ import annotations

from ctxwatch.lsp.contexts import build_command, is_dockerfile
from ctxwatch.lsp.present import hover, label, reader_title
from ctxwatch_api.v1 import ctxwatch_pb2 as pb


def test_labels_say_the_fate_and_the_first_reason():
    copy = pb.Step(
        line=2,
        instruction="COPY src/ /app/src/",
        status=pb.STEP_STATUS_INVALIDATED,
        cause=pb.CAUSE_INPUTS_CHANGED,
        changed_paths=[
            pb.PathChange(path="src/app.py", kind=pb.CHANGE_KIND_CONTENT),
            pb.PathChange(path="src/run.sh", kind=pb.CHANGE_KIND_MODE, detail="mode 0644 -> 0755"),
        ],
        changed_paths_total=2,
    )
    run = pb.Step(
        line=4,
        instruction="RUN npm ci",
        status=pb.STEP_STATUS_INVALIDATED,
        cause=pb.CAUSE_BUILD_ARG_CHANGED,
        changed_values=[
            pb.ValueChange(name="NODE_ENV", old_value="production", new_value="development", old_set=True, new_set=True)
        ],
    )
    after = pb.Step(line=5, status=pb.STEP_STATUS_INVALIDATED, cause=pb.CAUSE_UPSTREAM, upstream_step=1)
    base = pb.Step(line=1, instruction="FROM node:22", status=pb.STEP_STATUS_UNKNOWN, cause=pb.CAUSE_REMOTE)
    cached = pb.Step(status=pb.STEP_STATUS_CACHED)
    failing = pb.Step(status=pb.STEP_STATUS_ERROR, cause=pb.CAUSE_ERROR, error='"/x": not found')
    steps = [copy, run, after, base]
    assert label(copy, steps) == "re-runs: src/app.py changed (content) and 1 more"
    assert label(run, steps) == "re-runs: NODE_ENV production -> development"
    assert label(after, steps) == "re-runs: line 4 re-runs"
    assert label(base, steps) == "unknown: base image"
    assert label(cached, steps) == "cached"
    assert label(failing, steps) == 'error: "/x": not found'
    unset = pb.Step(
        status=pb.STEP_STATUS_INVALIDATED,
        cause=pb.CAUSE_BUILD_ARG_CHANGED,
        changed_values=[pb.ValueChange(name="TOKEN", new_value="a", new_set=True)],
    )
    assert label(unset, steps) == "re-runs: TOKEN (unset) -> a"


def test_hover_has_every_changed_path_the_old_instruction_and_the_step_it_depends_on():
    copy = pb.Step(
        line=2,
        instruction="COPY src/ /app/",
        old_instruction="COPY src/ /srv/",
        status=pb.STEP_STATUS_INVALIDATED,
        cause=pb.CAUSE_INSTRUCTION_CHANGED,
        explanation="its instruction changed",
        changed_paths=[pb.PathChange(path="src/run.sh", kind=pb.CHANGE_KIND_MODE, detail="mode 0644 -> 0755")],
        changed_paths_total=3,
        key="ab" * 32,
        stage="build",
    )
    run = pb.Step(
        line=3, instruction="RUN make", status=pb.STEP_STATUS_INVALIDATED, cause=pb.CAUSE_UPSTREAM, upstream_step=0
    )
    report = pb.Report(steps=[copy, run], notes=["assumed unchanged since the last build: node:22"])
    text = hover(copy, list(report.steps), report)
    assert text.splitlines()[:2] == ["**re-runs: instruction changed**", ""]
    assert "- `src/run.sh`: mode (mode 0644 -> 0755)" in text
    assert "- ... and 2 more" in text
    assert "- was: `COPY src/ /srv/`" in text and "- now: `COPY src/ /app/`" in text
    assert "Note: assumed unchanged since the last build: node:22" in text
    assert "Depends on line 2 (COPY src/ /app/) (re-runs: instruction changed)" in hover(
        run, list(report.steps), report
    )


def test_steps_are_referred_to_as_buildkit_numbers_them():
    copy = pb.Step(
        line=3,
        stage="build",
        progress="[build 2/4]",
        instruction="COPY $SRC /app/",
        expanded_instruction="COPY src/ /app/",
        old_expanded_instruction="COPY lib/ /app/",
        status=pb.STEP_STATUS_INVALIDATED,
        cause=pb.CAUSE_BUILD_ARG_CHANGED,
        explanation="a build arg or ENV value it sees changed: SRC",
    )
    run = pb.Step(
        line=4,
        stage="build",
        progress="[build 3/4]",
        status=pb.STEP_STATUS_INVALIDATED,
        cause=pb.CAUSE_UPSTREAM,
        upstream_step=0,
    )
    report = pb.Report(steps=[copy, run])
    steps = list(report.steps)
    assert label(run, steps) == "re-runs: [build 2/4] on line 3 re-runs"
    text = hover(run, steps, report)
    assert (
        "Depends on [build 2/4] COPY src/ /app/ (line 3) (re-runs: a build arg or ENV value it sees changed: SRC)"
        in text
    )
    assert text.splitlines()[-1] == "`[build 3/4]` (stage `build`)"
    changed = hover(copy, steps, report)
    assert "- was: `COPY lib/ /app/`" in changed and "- now: `COPY src/ /app/`" in changed
    assert "- as written: `COPY $SRC /app/`" in changed


def test_reader_titles_and_dockerfile_names():
    reader = pb.Reader(
        context=pb.Context(name="web"), step=pb.Step(line=12, instruction="COPY src/ /app/src/"), steps_after=3
    )
    assert reader_title(reader) == "editing re-runs web: COPY src/ /app/src/ (line 12) and 3 steps after it"
    assert [is_dockerfile(p) for p in ("Dockerfile", "Containerfile", "api.Dockerfile", "Dockerfile.prod")] == [
        True
    ] * 4
    assert [is_dockerfile(p) for p in ("app.py", "Dockerfile-notes.md", "dockerfile.txt")] == [False] * 3
    assert is_dockerfile("build/spec", language_id="dockerfile")


def test_the_build_command_goes_through_the_wrapper_when_this_cli_has_one(monkeypatch, capsys):
    from ctxwatch import cli
    from ctxwatch.lsp import contexts

    # The check agrees with the real CLI: `ctxwatch build --help` works exactly when the wrapper exists.
    assert contexts._has_build_wrapper() == (cli.main(["build", "--help"]) == 0)
    context = pb.Context(
        name="web", path="/src/app", dockerfile="/src/app/web.Dockerfile", build_args={"B": "2", "A": "1"}, target="t"
    )
    docker = ["docker", "build", "-f", "/src/app/web.Dockerfile", "--build-arg", "A=1", "--build-arg", "B=2"]
    docker += ["--target", "t", "/src/app"]
    monkeypatch.setattr(contexts, "_has_build_wrapper", lambda: False)
    assert build_command(context) == docker
    monkeypatch.setattr(contexts, "_has_build_wrapper", lambda: True)
    assert build_command(context)[1:] == ["build", "--name", "web", "--", *docker]
