"""Reading build command lines as the commands themselves do (no builder needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctxwatch.build.command import CommandError, parse
from ctxwatch_api.progress import DockerfileStep, StepResult, match_lines, read_progress


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "app" / "Dockerfile.dev").write_text("FROM scratch\n")
    (tmp_path / "df").mkdir()
    (tmp_path / "df" / "Other").write_text("FROM scratch\n")
    return tmp_path


@pytest.mark.parametrize(
    "head",
    [
        ["docker", "build"],
        ["docker", "buildx", "build"],
        ["docker", "--context", "x", "image", "build"],
        ["buildx", "build"],
    ],
)
def test_docker_style_options(project: Path, head: list[str]) -> None:
    argv = [
        *head,
        "-f",
        "app/Dockerfile.dev",
        "--build-arg",
        "A=1",
        "--build-arg=B=x=y",
        "--build-arg",
        "FROM_ENV",
        "--build-arg",
        "UNSET",
        "--target",
        "prod",
        "--no-cache-filter",
        "deps,build",
        "--no-cache-filter=test",
        "--build-context",
        "base=docker-image://alpine",
        "--build-context",
        "shared=df",
        "--build-context",
        "tools=git@example.com:org/tools.git",
        "-t",
        "app:dev",
        "--progress",
        "plain",
        "--push",
        "app",
    ]
    command = parse(argv, environ={"FROM_ENV": "env value"}, cwd=str(project))
    assert command.context == project / "app"
    assert command.dockerfile == project / "app" / "Dockerfile.dev"
    assert command.build_args == {"A": "1", "B": "x=y", "FROM_ENV": "env value"}
    assert command.target == "prod"
    assert command.no_cache is False
    assert command.no_cache_filter == ["deps", "build", "test"]
    # A folder is made absolute against the command's folder, as the builder reads it.
    assert command.named_contexts == {
        "base": "docker-image://alpine",
        "shared": str(project / "df"),
        "tools": "git@example.com:org/tools.git",
    }
    progress = command.with_progress()
    assert progress[: len(head) + 1] == [*head, "--progress=rawjson"]
    assert "plain" not in progress and progress.count("--progress=rawjson") == 1
    assert progress[-1] == "app"


def test_docker_defaults_and_no_cache(project: Path) -> None:
    command = parse(["docker", "build", "--no-cache", "."], environ={}, cwd=str(project / "app"))
    assert (command.context, command.dockerfile) == (project / "app", project / "app" / "Dockerfile")
    assert command.no_cache and not command.build_args and not command.target


def test_buildctl_options(project: Path) -> None:
    argv = [
        "buildctl",
        "--addr",
        "unix:///run/bk.sock",
        "build",
        "--frontend",
        "dockerfile.v0",
        "--local",
        "context=app",
        "--local",
        "dockerfile=df",
        "--opt",
        "filename=Other",
        "--opt",
        "build-arg:V=7",
        "--opt",
        "target=final",
        "--opt",
        "no-cache=deps",
        "--opt",
        "context:busybox=oci-layout://bb@sha256:00",
        "--local",
        "shared=df",
        "--opt",
        "context:libs=local:shared",
        "--no-cache",
        "--progress=tty",
    ]
    command = parse(argv, environ={}, cwd=str(project))
    assert command.kind == "buildctl"
    assert command.context == project / "app"
    assert command.dockerfile == project / "df" / "Other"
    assert command.build_args == {"V": "7"}
    assert command.target == "final"
    assert command.no_cache and command.no_cache_filter == ["deps"]
    # `local:NAME` is the folder of `--local NAME=DIR`.
    assert command.named_contexts == {"busybox": "oci-layout://bb@sha256:00", "libs": str(project / "df")}
    assert command.with_progress()[:5] == ["buildctl", "--addr", "unix:///run/bk.sock", "build", "--progress=rawjson"]
    assert "--progress=tty" not in command.with_progress()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no build command given"),
        (["make", "all"], "make: not a build command ctxwatch knows"),
        (["docker", "run", "x"], "expected `build`"),
        (["docker", "buildx", "bake"], "without `build`"),
        (["docker", "build", "https://github.com/x/y.git"], "not a URL or stdin"),
        (["docker", "build", "-"], "not a URL or stdin"),
        (["docker", "build", "app", "other"], "expected one context folder, got 2"),
        (["docker", "build", "-f", "-", "app"], "read from stdin cannot be watched"),
        (["docker", "build", "nowhere"], "nowhere: the build context is not a folder"),
        (["docker", "build", "-f", "app/missing", "app"], "no such Dockerfile"),
        (["buildctl", "build", "--frontend", "gateway.v0", "--local", "context=app"], "only the Dockerfile frontend"),
        (["buildctl", "build", "--frontend", "dockerfile.v0"], "no --local context=DIR"),
        (
            [
                "buildctl",
                "build",
                "--frontend",
                "dockerfile.v0",
                "--local",
                "context=app",
                "--opt",
                "context:x=local:y",
            ],
            "--opt context:x=local:y names no folder: add --local y=DIR",
        ),
        (["docker", "build", "app", "--target"], "--target needs a value"),
    ],
)
def test_commands_the_wrapper_cannot_follow(project: Path, argv: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("`", ".").replace("(", ".").replace(")", ".")):
        parse(argv, environ={}, cwd=str(project))


def test_rawjson_progress_is_read_per_vertex() -> None:
    lines = [
        '{"vertexes":[{"digest":"sha256:a","name":"[internal] load build context","started":"2026-12-03T18:28:23Z"}]}',
        "WARNING: No output specified with remote driver.",
        '{"vertexes":[{"digest":"sha256:b","name":"[base  2/10] COPY a.txt /","started":"x"}]}',
        '{"vertexes":[{"digest":"sha256:b","name":"[base  2/10] COPY a.txt /","completed":"y","cached":true}]}',
        '{"vertexes":[{"digest":"sha256:c","name":"[ 1/10] RUN false","error":"exit code: 1"}]}',
        '{"logs":[{"vertex":"sha256:c","stream":2,"data":"b29wcwo="}]}',
        "{not json",
    ]
    reader = read_progress(lines)
    assert [v.digest for v in reader.vertices()] == ["sha256:a", "sha256:b", "sha256:c"]
    assert reader.other_lines == ["WARNING: No output specified with remote driver.", "{not json"]
    assert reader.steps() == [
        StepResult("base", 2, 10, "COPY a.txt /", cached=True, completed=True, error=""),
        StepResult("", 1, 10, "RUN false", cached=False, completed=False, error="exit code: 1"),
    ]
    assert reader.log_tail("sha256:c") == ["oops"]


# BuildKit's progress for the last stage of a build whose base image comes
# from a named context, in the order it sent the steps: the last ones first,
# and no number for the FROM (its total still counts it).
RUNTIME_RESULTS = [
    StepResult("runtime", 4, 5, "COPY package.json ./", False, True, ""),
    StepResult("runtime", 3, 5, "COPY --from=build /app/dist ./dist", False, True, ""),
    StepResult("runtime", 2, 5, "COPY --from=deps /app/node_modules ./node_modules", True, True, ""),
    StepResult("runtime", 1, 5, "WORKDIR /srv", True, True, ""),
]


RUNTIME_STEPS = [(12, "FROM"), (13, "WORKDIR"), (15, "COPY"), (16, "COPY"), (17, "COPY")]


@pytest.mark.parametrize(
    "numbers",
    [
        [0, 1, 2, 3, 4],  # as BuildKit numbers them: a named context serves the FROM
        [1, 2, 3, 4, 5],  # a report made without the named context: the FROM numbered, the rest one more
        [0, 0, 0, 0, 0],  # none (the test suite's own reading of a Dockerfile)
    ],
)
def test_steps_match_their_lines_whatever_order_buildkit_sends_them_in(numbers: list[int]) -> None:
    steps = [
        DockerfileStep("runtime", line, keyword, number)
        for (line, keyword), number in zip(RUNTIME_STEPS, numbers, strict=True)
    ]
    matched = match_lines(RUNTIME_RESULTS, steps)
    assert {line: r.index for line, r in matched.items()} == {13: 1, 15: 2, 16: 3, 17: 4}


def test_steps_match_lines_by_position_then_keyword() -> None:
    steps = [DockerfileStep("a", 2, "FROM"), DockerfileStep("a", 3, "WORKDIR"), DockerfileStep("a", 4, "COPY")]
    # The WORKDIR made no folder: BuildKit numbered the COPY 2 of 2.
    results = [
        StepResult("a", 1, 2, "FROM docker.io/library/alpine", True, True, ""),
        StepResult("a", 2, 2, "COPY x /", False, True, ""),
    ]
    assert {line: r.text for line, r in match_lines(results, steps).items()} == {
        2: "FROM docker.io/library/alpine",
        4: "COPY x /",
    }
