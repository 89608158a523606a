"""`ctxwatch build -- ...` and builds learned from buildx, against a real BuildKit daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.buildkit import Builder, write_busybox
from support.contexts import make_context
from support.daemon import Daemon, start_daemon
from support.waiting import wait_until

from ctxwatch.client import build_options
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

DOCKERFILE = """\
FROM busybox AS base
ARG V=1
COPY a.txt /a.txt
RUN echo "V=$V" > /v.txt && cat /a.txt >> /v.txt
FROM base AS final
COPY b.txt /b.txt
RUN cat /v.txt /b.txt > /all.txt
"""


def own_files(root: Path) -> dict[str, str]:
    """Files whose digests are the context's own (the builder's cache is shared by the tests)."""
    return {"a.txt": f"a {root}\n", "b.txt": "b\n"}


def ctxwatch(daemon: Daemon, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, against the test's daemon."""
    return subprocess.run(
        [sys.executable, "-m", "ctxwatch.cli", "--socket", str(daemon.socket), "--no-spawn", *args],
        capture_output=True,
        text=True,
        env={**daemon.env(), **(env or {})},
        timeout=600,
        check=False,
    )


def test_wrapped_buildctl_builds_are_recorded_and_checked(buildkit: Builder, daemon: Daemon, tmp_path: Path) -> None:
    context = make_context(tmp_path / "app", DOCKERFILE, own_files(tmp_path / "app"))
    build = buildkit.buildctl_command(context, build_args={"V": "2"}, busybox=True)

    first = ctxwatch(daemon, "build", "--", *build)
    assert first.returncode == 0, first.stderr
    assert "registered context 'app'" in first.stderr
    assert "COPY a.txt /a.txt  DONE" in first.stderr  # the compact progress
    # The build is recorded with its options: asked with them, every step is cached.
    [report] = daemon.client.reports(["app"], build_options(["V=2"]))
    assert report.all_cached and report.builds_recorded == 1
    assert dict(report.context.build_args) == {"V": "2"}  # registered as it was built
    # Nothing was recorded to predict from: BuildKit may hold the steps from builds ctxwatch never saw.
    assert "prediction: nothing to compare" in first.stderr

    second = ctxwatch(daemon, "build", "--", *build)
    assert second.returncode == 0, second.stderr
    steps = [line for line in second.stderr.splitlines() if line.startswith("[")]
    assert len(steps) == 4 and all(line.endswith("CACHED") for line in steps), second.stderr
    assert "prediction: 4/4 steps right" in second.stderr

    # A changed build arg: predicted to re-run from the RUN that sees it; recorded with the new value.
    third = ctxwatch(daemon, "build", "--", *buildkit.buildctl_command(context, build_args={"V": "3"}, busybox=True))
    assert third.returncode == 0, third.stderr
    assert "prediction: 4/4 steps right" in third.stderr
    assert "this build's options differ from context 'app'" in third.stderr
    [report] = daemon.client.reports(["app"], build_options(["V=3"]))
    assert report.all_cached and report.builds_recorded == 3

    stats = daemon.client.daemon_status().predictions
    assert (stats.checked, stats.steps, stats.agreed, stats.unknown) == (2, 8, 8, 0)
    shown = ctxwatch(daemon, "stats")
    assert "predictions checked: 2 build(s), 8 step(s)" in shown.stdout and "disagreed: 0" in shown.stdout


def test_failed_build_records_only_completed_steps(buildkit: Builder, daemon: Daemon, tmp_path: Path) -> None:
    dockerfile = "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt && exit 3\nCOPY b.txt /b.txt\n"
    context = make_context(tmp_path / "broken", dockerfile, own_files(tmp_path / "broken"))
    done = ctxwatch(daemon, "build", "--", *buildkit.buildctl_command(context, busybox=True))
    assert done.returncode != 0  # the build command's own exit code
    assert "RUN cat /a.txt && exit 3  ERROR" in done.stderr
    assert f"  | a {context}" in done.stderr  # the failing step's output
    [report] = daemon.client.reports(["broken"])
    statuses = {s.line: s.status for s in report.steps}
    assert statuses[2] == pb.STEP_STATUS_CACHED  # BuildKit completed (and caches) the COPY
    assert statuses[3] == pb.STEP_STATUS_INVALIDATED and statuses[4] == pb.STEP_STATUS_INVALIDATED


def test_wrapped_buildx_build(buildkit: Builder, daemon: Daemon, tmp_path: Path) -> None:
    context = make_context(tmp_path / "web", DOCKERFILE, own_files(tmp_path / "web"))
    env = buildkit.buildx_env(tmp_path / "buildx")
    build = buildkit.buildx_command(context, build_args={"V": "5"}, target="base", busybox=True)
    first = ctxwatch(daemon, "build", "--", *build, env=env)
    assert first.returncode == 0, first.stderr
    second = ctxwatch(daemon, "build", "--", *build, env=env)
    assert "prediction: 2/2 steps right" in second.stderr, second.stderr
    [report] = daemon.client.reports(["web"], build_options(["V=5"], "base"))
    assert report.all_cached


# The common shape: the last stage copies from two others, three COPYs in a
# row, on a base image that a named context (--build-context) provides.
RUNTIME_DOCKERFILE = """\
FROM busybox AS deps
WORKDIR /app
COPY a.txt ./
RUN cat a.txt > /deps.txt
FROM deps AS build
COPY b.txt ./
RUN cat a.txt b.txt > /app/out.txt
FROM busybox AS runtime
WORKDIR /srv
COPY --from=deps /deps.txt ./
COPY --from=build /app/out.txt ./
COPY b.txt ./
"""


def test_a_build_with_named_contexts_is_predicted_and_checked_with_them(
    buildkit: Builder, daemon: Daemon, tmp_path: Path
) -> None:
    context = make_context(tmp_path / "shop", RUNTIME_DOCKERFILE, own_files(tmp_path / "shop"))
    env = buildkit.buildx_env(tmp_path / "buildx")
    build = buildkit.buildx_command(context, busybox=True)
    first = ctxwatch(daemon, "build", "--", *build, env=env)
    assert first.returncode == 0, first.stderr
    [context_row] = daemon.client.list()
    assert dict(context_row.build_contexts) == {"busybox": f"oci-layout://{buildkit.busybox().layout}"}
    # BuildKit numbers no FROM that a named context provides: neither does the report.
    [report] = daemon.client.reports(["shop"])
    labels = {s.line: s.progress for s in report.steps}
    shown = (labels[1], labels[2], labels[8], labels[9], labels[12])
    assert shown == ("", "[deps 1/4]", "", "[runtime 1/5]", "[runtime 4/5]")

    (context / "b.txt").write_text("b, changed\n")
    before = daemon.client.daemon_status().predictions
    second = ctxwatch(daemon, "build", "--", *build, env=env)
    assert second.returncode == 0, second.stderr
    # BuildKit's progress names the last steps first: each is still matched to its own line.
    assert "prediction: 8/8 steps right (1 more predicted unknown)" in second.stderr, second.stderr
    after = daemon.client.daemon_status().predictions
    assert (after.steps - before.steps, after.agreed - before.agreed, after.unknown - before.unknown) == (9, 8, 1)


def test_the_first_wrapped_build_of_a_built_project_counts_no_miss(
    buildkit: Builder, daemon: Daemon, tmp_path: Path
) -> None:
    context = make_context(tmp_path / "habit", DOCKERFILE, own_files(tmp_path / "habit"))
    env = buildkit.buildx_env(tmp_path / "buildx")
    buildkit.buildx(env, context, busybox=True).check()  # built before ctxwatch watched
    done = ctxwatch(daemon, "build", "--", *buildkit.buildx_command(context, busybox=True), env=env)
    assert done.returncode == 0, done.stderr
    assert sum(line.endswith("CACHED") for line in done.stderr.splitlines()) == 4, done.stderr
    assert "prediction: nothing to compare" in done.stderr, done.stderr
    stats = daemon.client.daemon_status().predictions
    assert (stats.checked, len(stats.recent_disagreements)) == (0, 0)


def test_a_build_buildkit_never_started_is_not_recorded(buildkit: Builder, daemon: Daemon, tmp_path: Path) -> None:
    context = make_context(tmp_path / "nowhere", DOCKERFILE, own_files(tmp_path / "nowhere"))
    env = buildkit.buildx_env(tmp_path / "buildx")
    build = [str(buildkit.buildx_path), "build", "--builder", "nosuch", str(context)]
    done = ctxwatch(daemon, "build", "--", *build, env=env)
    assert done.returncode == 1, done.stderr  # buildx's own exit code
    assert 'ERROR: no builder "nosuch" found' in done.stderr
    assert done.stderr.endswith("ctxwatch: not recorded: the build command reported no BuildKit step\n")
    [report] = daemon.client.reports(["nowhere"])
    assert report.builds_recorded == 0
    assert daemon.client.daemon_status().predictions.checked == 0


def test_a_build_failing_before_any_step_records_and_checks_nothing(
    buildkit: Builder, daemon: Daemon, tmp_path: Path
) -> None:
    context = make_context(tmp_path / "refused", "FROM busybox\nCOPY a.txt /a.txt\n", {"a.txt": "a\n"})
    env = buildkit.buildx_env(tmp_path / "buildx")
    # The base image's registry refuses the connection: BuildKit fails loading it, before the Dockerfile's steps.
    build = buildkit.buildx_command(context, extra=["--build-context", "busybox=docker-image://localhost:1/none"])
    done = ctxwatch(daemon, "build", "--", *build, env=env)
    assert done.returncode == 1
    assert "connection refused" in done.stderr
    assert (
        "ctxwatch: nothing recorded for refused: no step completed before the build failed: outside the "
        "Dockerfile's steps, in loading an image or the context or in the export (see its output)\n"
        "prediction: nothing to compare (no step BuildKit reported had a recorded build to predict from)\n"
    ) in done.stderr, done.stderr
    [report] = daemon.client.reports(["refused"])
    assert report.builds_recorded == 0
    assert daemon.client.daemon_status().predictions.checked == 0


def _legacy_docker() -> str | None:
    """A docker program without buildx: `docker build` runs docker's legacy builder."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    buildx = subprocess.run([docker, "buildx", "version"], capture_output=True, timeout=60, check=False)
    return None if buildx.returncode == 0 else docker


@pytest.mark.skipif(_legacy_docker() is None, reason="needs a docker program without buildx (the legacy builder)")
def test_a_legacy_docker_build_runs_as_typed(daemon: Daemon, tmp_path: Path) -> None:
    context = make_context(tmp_path / "old", DOCKERFILE, own_files(tmp_path / "old"))
    done = ctxwatch(daemon, "build", "--", str(_legacy_docker()), "build", str(context))
    assert "unknown flag: --progress" in done.stderr
    assert "refused --progress=rawjson: this build does not run on BuildKit" in done.stderr
    # Run again as typed: the legacy builder's own warning shows a second time.
    assert done.stderr.count("The legacy builder is deprecated") == 2, done.stderr
    [report] = daemon.client.reports(["old"])
    assert report.builds_recorded == 0


def test_a_build_with_no_daemon_still_runs(buildkit: Builder, tmp_path: Path) -> None:
    context = make_context(tmp_path / "alone", DOCKERFILE, own_files(tmp_path / "alone"))
    cli = [sys.executable, "-m", "ctxwatch.cli", "--socket", str(tmp_path / "none.sock"), "--no-spawn", "build"]
    done = subprocess.run(
        [*cli, "--", *buildkit.buildctl_command(context, busybox=True)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "running the build unwatched" in done.stderr


def learning_daemon(folder: Path, buildx_dir: Path, buildx: str) -> Daemon:
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(f'[builder]\nbuildx_config = "{buildx_dir}"\nbuildx = "{buildx}"\n')
    return start_daemon(folder)


def test_buildx_build_without_the_wrapper_is_learned(buildkit: Builder, tmp_path: Path) -> None:
    env = buildkit.buildx_env(tmp_path / "buildx")
    daemon = learning_daemon(tmp_path / "daemon", tmp_path / "buildx", str(buildkit.buildx_path))
    try:
        context = make_context(tmp_path / "svc", DOCKERFILE, own_files(tmp_path / "svc"))
        daemon.client.register(str(context), name="svc")
        built = buildkit.buildx(env, context, build_args={"V": "9"}, busybox=True).check()
        assert not any(step.cached for step in built.steps)

        def learned() -> pb.Report | None:
            [report] = daemon.client.reports(["svc"], build_options(["V=9"]))
            return report if report.builds_recorded else None

        report = wait_until(learned, 60, "the daemon learning the build", interval=0.2)
        assert report.all_cached  # recorded with V=9, the value the build had
        assert daemon.client.daemon_status().predictions.builds_learned == 1

        # A failed build is learned with only the steps BuildKit completed.
        (context / "Dockerfile").write_text(DOCKERFILE.replace("cat /v.txt /b.txt", "cat /missing"))
        assert buildkit.buildx(env, context, build_args={"V": "9"}, busybox=True).returncode != 0
        wait_until(
            lambda: daemon.client.reports(["svc"], build_options(["V=9"]))[0].builds_recorded == 2, 60, "2nd", 0.2
        )
        [report] = daemon.client.reports(["svc"], build_options(["V=9"]))
        assert [s.status for s in report.steps][-1] == pb.STEP_STATUS_INVALIDATED
    finally:
        daemon.stop()


def test_a_build_the_builder_history_cannot_tell_is_reported(buildkit: Builder, tmp_path: Path) -> None:
    env = buildkit.buildx_env(tmp_path / "buildx")
    daemon = learning_daemon(tmp_path / "daemon", tmp_path / "buildx", str(tmp_path / "no-such-buildx"))
    try:
        context = make_context(tmp_path / "svc", DOCKERFILE, own_files(tmp_path / "svc"))
        daemon.client.register(str(context), name="svc")
        buildkit.buildx(env, context, busybox=True).check()

        def unread() -> pb.Report | None:
            [report] = daemon.client.reports(["svc"])
            return report if report.unread_build_unix_ms else None

        report = wait_until(unread, 60, "the unread build being reported", interval=0.2)
        assert report.builds_recorded == 0
        notes = [n for n in report.notes if "could not read" in n]
        assert len(notes) == 1 and "ctxwatch build -- " in notes[0]
        # Recording a build answers it.
        daemon.client.mark_built("svc")
        [report] = daemon.client.reports(["svc"])
        assert not report.unread_build_unix_ms and not any("could not read" in n for n in report.notes)
    finally:
        daemon.stop()


def test_a_wrapped_buildx_build_is_not_learned_twice(buildkit: Builder, tmp_path: Path) -> None:
    env = buildkit.buildx_env(tmp_path / "buildx")
    daemon = learning_daemon(tmp_path / "daemon", tmp_path / "buildx", str(buildkit.buildx_path))
    try:
        context = make_context(tmp_path / "once", DOCKERFILE, own_files(tmp_path / "once"))
        done = ctxwatch(daemon, "build", "--", *buildkit.buildx_command(context, busybox=True), env=env)
        assert done.returncode == 0, done.stderr
        time.sleep(6)  # longer than the watcher waits before learning an ended build
        [report] = daemon.client.reports(["once"])
        assert report.builds_recorded == 1
        assert daemon.client.daemon_status().predictions.builds_learned == 0
    finally:
        daemon.stop()


def test_busybox_layout_is_offline_and_reproducible(buildkit: Builder) -> None:
    image = buildkit.busybox()
    assert (image.layout / "index.json").is_file() and image.digest.startswith("sha256:")
    assert os.path.getsize(image.layout / "oci-layout") > 0


def test_write_busybox_copies_a_static_binary(tmp_path: Path) -> None:
    write_busybox(tmp_path / "busybox")
    assert os.access(tmp_path / "busybox", os.X_OK)
