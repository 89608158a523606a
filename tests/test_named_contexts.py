"""Named contexts (`--build-context NAME=VALUE`): FROM NAME and COPY --from=NAME
read that folder's files by content; a change there invalidates exactly the
steps that read it. docker-image:// and oci-layout:// values are remote inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ctxwatch_api.v1 import ctxwatch_pb2 as pb

CACHED, INVALIDATED, UNKNOWN, ERROR = (
    pb.STEP_STATUS_CACHED,
    pb.STEP_STATUS_INVALIDATED,
    pb.STEP_STATUS_UNKNOWN,
    pb.STEP_STATUS_ERROR,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def statuses(client, name: str, **options) -> list[tuple[int, int]]:
    [report] = client.reports([name], pb.BuildOptions(**options))
    assert not report.error, report.error
    return [(s.status, s.cause) for s in report.steps]


def make_shared(tmp_path: Path) -> Path:
    shared = tmp_path / "shared"
    write(shared / "lib" / "a.txt", "a\n")
    write(shared / "other.txt", "other\n")
    write(shared / "unread.txt", "unread\n")
    write(shared / "ignored.log", "log\n")
    write(shared / ".dockerignore", "*.log\n")
    return shared


def test_copy_from_a_named_folder_invalidates_exactly_the_steps_that_read_it(shared_daemon, tmp_path: Path) -> None:
    client = shared_daemon.client
    shared = make_shared(tmp_path)
    app = tmp_path / "app"
    write(app / "app.txt", "app\n")
    write(
        app / "Dockerfile",
        "FROM scratch\nCOPY app.txt /app.txt\nCOPY --link --from=shared lib/a.txt /a.txt\n"
        "COPY --link --from=shared other.txt /o.txt\n",
    )
    other = tmp_path / "other"
    write(other / "Dockerfile", "FROM scratch\nCOPY --from=shared other.txt /o.txt\n")
    client.register(str(app), name="named-app", build_contexts={"shared": str(shared)})
    client.register(str(other), name="named-other", build_contexts={"shared": str(shared)})
    [ctx] = [c for c in client.list() if c.name == "named-app"]
    assert dict(ctx.build_contexts) == {"shared": str(shared.resolve())}
    for name in ("named-app", "named-other"):
        client.mark_built(name)
        assert {s for s, _ in statuses(client, name)} == {CACHED}

    # Files nobody reads, and files the folder's .dockerignore leaves out, change nothing.
    write(shared / "unread.txt", "changed\n")
    write(shared / "ignored.log", "changed\n")
    assert {s for s, _ in statuses(client, "named-app")} == {CACHED}

    # Only the COPY of lib/a.txt reads it (the --link copies do not depend on each other).
    write(shared / "lib" / "a.txt", "changed\n")
    assert statuses(client, "named-app") == [
        (CACHED, pb.CAUSE_UNSPECIFIED),
        (INVALIDATED, pb.CAUSE_INPUTS_CHANGED),
        (CACHED, pb.CAUSE_UNSPECIFIED),
    ]
    assert {s for s, _ in statuses(client, "named-other")} == {CACHED}
    write(shared / "lib" / "a.txt", "a\n")  # back as built: cached again
    assert {s for s, _ in statuses(client, "named-app")} == {CACHED}

    write(shared / "other.txt", "changed\n")
    assert [s for s, _ in statuses(client, "named-app")] == [CACHED, CACHED, INVALIDATED]
    assert [s for s, _ in statuses(client, "named-other")] == [INVALIDATED]


def test_from_a_named_folder_depends_on_all_its_sent_files(shared_daemon, tmp_path: Path) -> None:
    client = shared_daemon.client
    shared = make_shared(tmp_path)
    app = tmp_path / "app"
    write(app / "Dockerfile", "FROM base\nRUN make\nCOPY x /x\n")
    write(app / "x", "x\n")
    client.register(str(app), name="from-named", build_contexts={"base": str(shared)}, target="")
    client.mark_built("from-named")
    write(shared / "ignored.log", "changed\n")
    assert {s for s, _ in statuses(client, "from-named")} == {CACHED}
    write(shared / "unread.txt", "changed\n")
    assert statuses(client, "from-named") == [
        (INVALIDATED, pb.CAUSE_INPUTS_CHANGED),
        (INVALIDATED, pb.CAUSE_UPSTREAM),
        (INVALIDATED, pb.CAUSE_UPSTREAM),
    ]


def test_a_named_context_replaces_the_stage_of_its_name(shared_daemon, tmp_path: Path) -> None:
    client = shared_daemon.client
    shared = make_shared(tmp_path)
    app = tmp_path / "app"
    write(app / "Dockerfile", "FROM alpine AS deps\nRUN build-deps\nFROM scratch\nCOPY --from=deps /lib/a.txt /a\n")
    client.register(str(app), name="replaced", build_contexts={"deps": str(shared)})
    [report] = client.reports(["replaced"])
    # The stage's own FROM and RUN are not built: the folder is the stage.
    assert [s.instruction for s in report.steps] == ["COPY --from=deps /lib/a.txt /a"]
    client.mark_built("replaced")
    write(shared / "other.txt", "changed\n")
    assert statuses(client, "replaced") == [(CACHED, pb.CAUSE_UNSPECIFIED)]
    write(shared / "lib" / "a.txt", "changed\n")
    assert [s for s, _ in statuses(client, "replaced")] == [INVALIDATED]


def test_image_and_oci_layout_values_are_remote_inputs(shared_daemon, tmp_path: Path) -> None:
    client = shared_daemon.client
    app = tmp_path / "app"
    write(app / "Dockerfile", "FROM base\nRUN x\nCOPY --from=tools /bin/t /t\n")
    client.register(
        str(app),
        name="remote-named",
        build_contexts={"base": "docker-image://alpine:3.20", "tools": "oci-layout:///srv/layout:tag"},
    )
    client.mark_built("remote-named")
    [report] = client.reports(["remote-named"], pb.BuildOptions(strict_remote=True))
    assert [s.status for s in report.steps] == [UNKNOWN, UNKNOWN, UNKNOWN]
    # By default they are taken as the last build used them, and the report names them once.
    [assumed] = client.reports(["remote-named"])
    assert [s.status for s in assumed.steps] == [CACHED, CACHED, CACHED]
    assert assumed.assumed_remote
    pinned = "docker-image://alpine@sha256:" + "a" * 64
    first_status, _ = statuses(client, "remote-named", build_contexts={"base": pinned}, strict_remote=True)[0]
    assert first_status != UNKNOWN


def test_what_if_with_another_folder_and_errors(shared_daemon, tmp_path: Path) -> None:
    client = shared_daemon.client
    shared = make_shared(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "lib" / "a.txt", "a\n")
    write(elsewhere / "other.txt", "different\n")
    app = tmp_path / "app"
    write(
        app / "Dockerfile", "FROM scratch\nCOPY --link --from=shared lib /lib\nCOPY --link --from=shared other.txt /o\n"
    )
    client.register(str(app), name="what-if", build_contexts={"shared": str(shared)})
    client.mark_built("what-if")
    # The same bytes from another folder are the same key; different bytes are not.
    assert [s for s, _ in statuses(client, "what-if", build_contexts={"shared": str(elsewhere)})] == [
        CACHED,
        INVALIDATED,
    ]
    [report] = client.reports(["what-if"])  # the registration is unchanged
    assert report.all_cached
    (shared / "other.txt").unlink()
    [report] = client.reports(["what-if"])
    assert report.steps[1].status == ERROR and "shared" in report.steps[1].error


def test_cli_build_context_is_relative_to_the_current_folder(shared_daemon, tmp_path: Path) -> None:
    shared = make_shared(tmp_path)
    app = tmp_path / "app"
    write(app / "Dockerfile", "FROM scratch\nCOPY --from=shared other.txt /o\n")
    run = [sys.executable, "-m", "ctxwatch.cli", "--no-spawn"]
    added = subprocess.run(
        [*run, "add", "app", "--name", "cli-named", "--build-context", "shared=shared"],
        cwd=tmp_path,
        env=shared_daemon.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    [ctx] = [c for c in shared_daemon.client.list() if c.name == "cli-named"]
    assert dict(ctx.build_contexts) == {"shared": str(shared.resolve())}
    bad = subprocess.run(
        [*run, "add", "app", "--name", "cli-bad", "--build-context", "shared=missing"],
        cwd=tmp_path,
        env=shared_daemon.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "missing" in bad.stderr and "build_contexts[shared]" in bad.stderr
