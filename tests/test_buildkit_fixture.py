"""The real-builder fixture itself: it builds, reports CACHED per step, and maps steps to lines."""

from __future__ import annotations

from pathlib import Path

from support.buildkit import Builder, DockerfileStep, dockerfile_steps, write_busybox

SHELL_BASE = 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'


def test_dockerfile_steps_follow_buildkit_numbering() -> None:
    dockerfile = (
        "# escape=`\n"
        "FROM busybox AS base\n"
        "ENV A=1\n"
        "RUN echo one `\n"
        "  two\n"
        "COPY <<EOF /x\n"
        "RUN not a step\n"
        "EOF\n"
        "FROM scratch\n"
        "WORKDIR /w\n"
        "COPY --from=base /x /y\n"
        "FROM base AS last\n"
        "# comment\n"
        "ADD a.txt /\n"
    )
    assert dockerfile_steps(dockerfile) == [
        DockerfileStep("base", 2, "FROM"),
        DockerfileStep("base", 4, "RUN"),
        DockerfileStep("base", 6, "COPY"),
        DockerfileStep("stage-1", 10, "WORKDIR"),
        DockerfileStep("stage-1", 11, "COPY"),
        DockerfileStep("last", 14, "ADD"),
    ]
    # A named context replaces the image: its FROM is no step of the stage.
    assert dockerfile_steps("FROM busybox\nRUN true\n", named_contexts=["busybox"]) == [DockerfileStep("", 2, "RUN")]


def test_second_build_is_cached_step_by_step(buildkit: Builder, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    write_busybox(context / "busybox")
    (context / "a.txt").write_text("a\n")
    dockerfile = SHELL_BASE + f"COPY a.txt /a.txt\nRUN cat /a.txt > /b.txt # {tmp_path.name}\n"
    (context / "Dockerfile").write_text(dockerfile)

    first = buildkit.buildctl(context).check().by_line(dockerfile)
    assert sorted(first) == [2, 3, 4, 5]
    assert not first[4].cached and not first[5].cached

    second = buildkit.buildctl(context).check().by_line(dockerfile)
    assert sorted(second) == [2, 3, 4, 5]
    assert all(step.cached for step in second.values())

    (context / "a.txt").write_text("changed\n")
    third = buildkit.buildctl(context).check().by_line(dockerfile)
    assert [third[line].cached for line in (2, 3, 4, 5)] == [True, True, False, False]


def test_busybox_base_image_and_buildx(buildkit: Builder, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    dockerfile = f'FROM busybox\nARG V\nRUN echo "$V" > /v # {tmp_path.name}\n'
    (context / "Dockerfile").write_text(dockerfile)

    built = buildkit.buildctl(context, busybox=True, build_args={"V": "1"}).check()
    steps = built.by_line(dockerfile, named_contexts=["busybox"])
    assert list(steps) == [3] and not steps[3].cached
    assert steps[3].text == f'RUN echo "1" > /v # {tmp_path.name}'  # named after ARG expansion

    env = buildkit.buildx_env(tmp_path / "buildx")
    again = buildkit.buildx(env, context, busybox=True, build_args={"V": "1"}).check()
    assert again.by_line(dockerfile, named_contexts=["busybox"])[3].cached
    refs = list((tmp_path / "buildx" / "refs" / "kit" / "kit0").iterdir())
    assert len(refs) == 1


def test_failed_build_reports_the_failing_step(buildkit: Builder, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "a.txt").write_text("a\n")
    dockerfile = "FROM scratch\nCOPY a.txt /a\nCOPY missing.txt /m\n"
    (context / "Dockerfile").write_text(dockerfile)
    built = buildkit.buildctl(context)
    assert built.returncode != 0
    steps = built.by_line(dockerfile)
    assert '"/missing.txt": not found' in steps[3].error
    # What ran beside the failure is stopped: at most "canceled", never the failure itself.
    assert not steps[2].error or "canceled" in steps[2].error
