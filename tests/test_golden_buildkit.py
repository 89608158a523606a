"""The golden set through the real builder: every case built with `ctxwatch build -- buildctl build ...`.

Each case runs as test_golden.py runs it (first build, then a build after each
phase), but every build is a real BuildKit build made through the wrapper,
which predicts it first and compares. The test fails on any step where the
prediction and BuildKit disagree; steps ctxwatch predicts as unknown are
counted apart, and so are the steps where ctxwatch warned that a builder
keeping its copy of the context may serve the old file and BuildKit did. The
counts are printed at the end of the run (`-s` shows them, `-rA` too).

The builder's cache is pruned before each case, so the cases do not feed one
another's cache. A case's `busybox` placeholder becomes Debian's static
busybox, so its RUN steps run for real.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.buildkit import Builder, write_busybox
from support.daemon import Daemon
from support.golden import GoldenCase, Workspace, load_cases

from ctxwatch.build.command import parse
from ctxwatch.build.run import wrap
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

CASES = load_cases()
KEPT_ITS_COPY = "kept its copy of the context"
COUNTS: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def print_counts() -> Iterator[None]:
    yield
    total = sum(COUNTS.values())
    print(
        f"\ngolden set through BuildKit: {total} step(s) compared: {COUNTS['agreed']} agreed, "
        f"{COUNTS['unknown']} unknown, {COUNTS['warned']} builder kept its copy (warned), "
        f"{COUNTS['disagreed']} disagreed"
    )


def buildctl(builder: Builder, workspace: Workspace, case: GoldenCase, index: int | None, secrets: Path) -> list[str]:
    """The buildctl command of the first build (index None) or of the build after phase `index`."""
    data = case.data
    build = case.builds[index] if index is not None else None
    extra: list[str] = []
    secret_values = data.get("secrets_after" if build is not None else "secrets") or data.get("secrets") or {}
    for name, value in secret_values.items():
        (secrets / name).write_text(value)
        extra += ["--secret", f"id={name},src={secrets / name}"]
    return builder.buildctl_command(
        workspace.context_dir,
        dockerfile_dir=workspace.dockerfile_path.parent,
        filename=workspace.dockerfile_path.name,
        build_args=build.build_args if build is not None else case.first_build_args,
        target=case.first_target,
        no_cache=build.no_cache if build is not None else False,
        no_cache_filter=build.no_cache_filter if build is not None else (),
        extra=extra,
    )


def tally(check: pb.PredictionCheck, prediction: pb.Report) -> list[str]:
    """Count the comparison; return the disagreements that are not explained by a warning."""
    warned_lines = kept_copy_lines(prediction)
    COUNTS["agreed"] += check.agreed
    COUNTS["unknown"] += check.unknown
    failures = []
    for d in check.disagreements:
        if d.line in warned_lines and d.cached and d.predicted == pb.STEP_STATUS_INVALIDATED:
            COUNTS["warned"] += 1
            continue
        COUNTS["disagreed"] += 1
        failures.append(
            f"line {d.line} {d.instruction!r}: predicted {pb.StepStatus.Name(d.predicted)} "
            f"({d.explanation}), BuildKit {'cached' if d.cached else 'ran'} {d.error}"
        )
    return failures


def kept_copy_lines(prediction: pb.Report) -> set[int]:
    """Lines of the steps warned that a builder keeping its copy may serve the old file, and
    of the steps that re-run only because of them (a stale hit there is a hit for those too)."""
    warned: set[int] = set()
    for step in prediction.steps:  # in build order: an upstream step comes first
        upstream = prediction.steps[step.upstream_step] if step.cause == pb.CAUSE_UPSTREAM else None
        if any(KEPT_ITS_COPY in w for w in step.warnings) or (upstream is not None and upstream.index in warned):
            warned.add(step.index)
    return {step.line for step in prediction.steps if step.index in warned}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden_case_through_buildkit(
    case: GoldenCase, buildkit: Builder, shared_daemon: Daemon, tmp_path: Path
) -> None:
    subprocess.run(
        [str(buildkit.buildctl_path), "--addr", buildkit.address, "prune", "--all"], check=True, capture_output=True
    )
    workspace = Workspace(case, tmp_path / "case")
    if (workspace.context_dir / "busybox").is_file():
        write_busybox(workspace.context_dir / "busybox")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    client = shared_daemon.client
    name = f"bk-{case.id}"
    client.register(str(workspace.context_dir), dockerfile=str(workspace.dockerfile_path), name=name)
    failures = []
    try:
        for index in (None, *range(len(case.builds))):
            if index is not None:
                workspace.apply_phase(index)
            command = parse(buildctl(buildkit, workspace, case, index, secrets), cwd=str(tmp_path))
            wrapped = wrap(client, command, name=name)
            assert wrapped.recorded is not None, f"{case.id}: the build was not recorded (exit {wrapped.returncode})"
            label = "first build" if index is None else f"build after {case.builds[index].label or 'the change'}"
            failures += [f"{label}: {failure}" for failure in tally(wrapped.recorded.check, wrapped.prediction)]
    finally:
        client.unregister(name)
    assert not failures, f"{case.id}: prediction and BuildKit disagree:\n" + "\n".join(failures)
