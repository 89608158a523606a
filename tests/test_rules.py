"""BuildKit's cache rules, one at a time (../shared/DESIGN.md, "BuildKit's rules").

Each test builds a tiny context, records a build (`mark_built`), changes one
thing (a file, the Dockerfile, the build args) and checks the exact status
and cause of every step, and where it matters the explanation. They run the
real engine in-process (`LocalClient`: no daemon, every query re-scans), so
the whole file takes a few seconds. docs/rules.md maps each rule to its tests.

Where BuildKit's behaviour is quoted, the golden case that observed it
(../shared/golden/<id>.json) is named, or the BuildKit source or issue that
says so.
"""

from __future__ import annotations

import io
import os
import signal
import tarfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from support.local import LocalClient

from ctxwatch.client import build_options
from ctxwatch_api.v1 import ctxwatch_pb2 as pb


def outcome(status: int, cause: int) -> tuple[str, str]:
    """(status, cause) by name, so a failing comparison reads well."""
    return pb.StepStatus.Name(status).removeprefix("STEP_STATUS_"), pb.Cause.Name(cause).removeprefix("CAUSE_")


CACHED = outcome(pb.STEP_STATUS_CACHED, pb.CAUSE_UNSPECIFIED)
INPUTS = outcome(pb.STEP_STATUS_INVALIDATED, pb.CAUSE_INPUTS_CHANGED)
INSTRUCTION = outcome(pb.STEP_STATUS_INVALIDATED, pb.CAUSE_INSTRUCTION_CHANGED)
ARG_CHANGED = outcome(pb.STEP_STATUS_INVALIDATED, pb.CAUSE_BUILD_ARG_CHANGED)
UPSTREAM = outcome(pb.STEP_STATUS_INVALIDATED, pb.CAUSE_UPSTREAM)
NO_CACHE = outcome(pb.STEP_STATUS_INVALIDATED, pb.CAUSE_NO_CACHE)
NEVER_BUILT = outcome(pb.STEP_STATUS_INVALIDATED, pb.CAUSE_NEVER_BUILT)
REMOTE = outcome(pb.STEP_STATUS_UNKNOWN, pb.CAUSE_REMOTE)
OUTPUT = outcome(pb.STEP_STATUS_UNKNOWN, pb.CAUSE_UPSTREAM_OUTPUT)
ERROR = outcome(pb.STEP_STATUS_ERROR, pb.CAUSE_ERROR)

REUSED_COPY_WARNING = "kept its copy of the context"
DIGEST = "sha256:" + "ab" * 32
PAST = time.time() - 3600  # an mtime well before any build of the test


class Ctx:
    """A build context in tmp_path/ctx, registered as "ctx" with the real
    engine over a state folder of its own (tmp_path/state, outside the context)."""

    def __init__(
        self,
        tmp_path: Path,
        dockerfile: str,
        files: Mapping[str, str | bytes] = (),
        *,
        build_args: Mapping[str, str] | None = None,
        target: str | None = None,
        dockerfile_path: Path | None = None,
    ) -> None:
        self.root = tmp_path / "ctx"
        self.root.mkdir()
        for rel, content in dict(files).items():
            self.write(rel, content)
        self.dockerfile_path = dockerfile_path or self.root / "Dockerfile"
        self.set_dockerfile(dockerfile)
        self.client = LocalClient(tmp_path / "state")
        self.ref = pb.ContextRef(name="ctx")
        self.client.register(
            str(self.root), dockerfile=str(self.dockerfile_path), build_args=build_args, target=target, name="ctx"
        )

    def close(self) -> None:
        self.client.close()

    # -- changes --------------------------------------------------------------------
    def write(self, rel: str, content: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def set_dockerfile(self, text: str) -> None:
        self.dockerfile_path.parent.mkdir(parents=True, exist_ok=True)
        self.dockerfile_path.write_text(text)

    # -- the engine ------------------------------------------------------------------
    def built(self, **options) -> pb.MarkBuiltResponse:
        return self.client.mark_built(self.ref, _options(**options))

    def report(self, **options) -> pb.Report:
        (report,) = self.client.reports([self.ref], _options(**options))
        assert not report.error, report.error
        return report

    def outcomes(self, **options) -> list[tuple[str, tuple[str, str]]]:
        """[(instruction, (status, cause))] of every step, in build order."""
        return [(s.instruction, outcome(s.status, s.cause)) for s in self.report(**options).steps]

    def step(self, instruction: str, **options) -> pb.Step:
        found = [s for s in self.report(**options).steps if s.instruction == instruction]
        assert len(found) == 1, f"{instruction!r} in {[s.instruction for s in self.report(**options).steps]}"
        return found[0]


def _options(build_args: Mapping[str, str] | None = None, **rest) -> pb.BuildOptions:
    return build_options([f"{k}={v}" for k, v in (build_args or {}).items()], **rest)


def changes(step: pb.Step) -> list[tuple[str, str, str]]:
    """The step's changed paths as (path, kind, detail), sorted."""
    return sorted(
        (c.path, pb.ChangeKind.Name(c.kind).removeprefix("CHANGE_KIND_"), c.detail) for c in step.changed_paths
    )


def values(step: pb.Step) -> list[tuple[str, str, str, bool, bool]]:
    return [(v.name, v.old_value, v.new_value, v.old_set, v.new_set) for v in step.changed_values]


@pytest.fixture
def make(tmp_path: Path) -> Iterator:
    made: list[Ctx] = []

    def factory(dockerfile: str, files: Mapping[str, str | bytes] = (), **kwargs) -> Ctx:
        ctx = Ctx(tmp_path, dockerfile, files, **kwargs)
        made.append(ctx)
        return ctx

    yield factory
    for ctx in made:
        ctx.close()


# =====================================================================================
# 1. Expansion: ARG / ENV scoping and BuildKit's shell-word rules
# =====================================================================================


def test_expansion_global_arg_in_from_selects_the_stage(make) -> None:
    """A global ARG (before the first FROM) is expanded in FROM; switching it
    switches the base stage (golden b2_global_arg_from_switches_stage)."""
    ctx = make(
        "ARG BASE=one\n"
        "FROM scratch AS one\nCOPY a.txt /a\n"
        "FROM scratch AS two\nCOPY b.txt /b\n"
        "FROM ${BASE} AS final\nRUN echo final\n",
        {"a.txt": "a\n", "b.txt": "b\n"},
    )
    ctx.built()
    assert ctx.outcomes() == [("COPY a.txt /a", CACHED), ("RUN echo final", CACHED)]
    # BASE=two: stage one is not needed any more, stage two was never built.
    two = ctx.report(build_args={"BASE": "two"})
    assert [(s.stage, s.instruction) for s in two.steps] == [("two", "COPY b.txt /b"), ("final", "RUN echo final")]
    assert two.steps[0].status == pb.STEP_STATUS_INVALIDATED
    assert outcome(two.steps[1].status, two.steps[1].cause) == UPSTREAM
    assert two.steps[1].upstream_step == 0
    ctx.built(build_args={"BASE": "two"})
    # Switching back: BuildKit still has the results of the first build.
    assert ctx.outcomes(build_args={"BASE": "one"}) == [("COPY a.txt /a", CACHED), ("RUN echo final", CACHED)]
    # b.txt only matters while BASE=two.
    ctx.write("b.txt", "b changed\n")
    assert ctx.outcomes(build_args={"BASE": "one"}) == [("COPY a.txt /a", CACHED), ("RUN echo final", CACHED)]


def test_expansion_global_arg_redeclared_in_stage(make) -> None:
    """A global ARG is in a stage's scope only once the stage re-declares it
    (`ARG V` without a value takes the global default)."""
    ctx = make("ARG V=1\nFROM scratch\nRUN echo before $V\nARG V\nRUN echo after $V\n")
    ctx.built()
    assert ctx.outcomes(build_args={"V": "1"}) == [("RUN echo before $V", CACHED), ("RUN echo after $V", CACHED)]
    assert ctx.outcomes(build_args={"V": "2"}) == [("RUN echo before $V", CACHED), ("RUN echo after $V", ARG_CHANGED)]
    after = ctx.step("RUN echo after $V", build_args={"V": "2"})
    assert values(after) == [("V", "1", "2", True, True)]


def test_expansion_stage_arg_default_and_build_arg(make) -> None:
    """A stage ARG with a default: a build arg equal to the default changes
    nothing, another value re-runs the RUN that sees it."""
    ctx = make("FROM scratch\nARG V=1\nRUN echo $V\n")
    ctx.built()
    assert ctx.outcomes() == [("RUN echo $V", CACHED)]
    assert ctx.outcomes(build_args={"V": "1"}) == [("RUN echo $V", CACHED)]
    assert ctx.outcomes(build_args={"V": "2"}) == [("RUN echo $V", ARG_CHANGED)]
    assert values(ctx.step("RUN echo $V", build_args={"V": "2"})) == [("V", "1", "2", True, True)]


def test_expansion_a_stage_built_on_another_sees_its_args(make) -> None:
    """An ARG with a value is in the stage's environment, which a stage built
    on it (FROM <stage>) starts from: its RUN sees the value and its words
    expand with it (dockerfile2llb's dispatchArg adds it to the state's env;
    observed on v0.32.2: the RUN runs again when only the value changes)."""
    ctx = make(
        "FROM scratch AS base\nARG V=1\nARG DIR=a\nFROM base AS derived\nRUN echo hi\nCOPY ${DIR}/x.txt /x.txt\n",
        {"a/x.txt": "a\n", "b/x.txt": "b\n"},
    )
    ctx.built()
    assert ctx.outcomes(build_args={"V": "1"}) == [("RUN echo hi", CACHED), ("COPY ${DIR}/x.txt /x.txt", CACHED)]
    assert ctx.outcomes(build_args={"V": "2"}) == [
        ("RUN echo hi", ARG_CHANGED),
        ("COPY ${DIR}/x.txt /x.txt", UPSTREAM),
    ]
    assert values(ctx.step("RUN echo hi", build_args={"V": "2"})) == [("V", "1", "2", True, True)]
    assert ctx.outcomes(build_args={"DIR": "b"}) == [
        ("RUN echo hi", ARG_CHANGED),
        ("COPY ${DIR}/x.txt /x.txt", UPSTREAM),
    ]
    assert ctx.step("COPY ${DIR}/x.txt /x.txt", build_args={"DIR": "b"}).expanded_instruction == "COPY b/x.txt /x.txt"


def test_expansion_env_overrides_arg(make) -> None:
    """ENV wins over an ARG of the same name, in expansion and in RUN's
    environment: the build arg then changes nothing."""
    ctx = make(
        "FROM scratch\nARG V=a\nENV V=b\nCOPY ${V}.txt /f.txt\nRUN echo $V\n",
        {"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n"},
    )
    ctx.built()
    assert ctx.outcomes(build_args={"V": "c"}) == [("COPY ${V}.txt /f.txt", CACHED), ("RUN echo $V", CACHED)]
    ctx.write("a.txt", "a changed\n")  # what the ARG alone would name
    assert ctx.outcomes() == [("COPY ${V}.txt /f.txt", CACHED), ("RUN echo $V", CACHED)]
    ctx.write("b.txt", "b changed\n")  # what ENV names
    assert ctx.outcomes() == [("COPY ${V}.txt /f.txt", INPUTS), ("RUN echo $V", UPSTREAM)]
    assert changes(ctx.step("COPY ${V}.txt /f.txt")) == [("b.txt", "CONTENT", "size 2 -> 10")]


def test_expansion_an_arg_after_an_env_of_its_name_wins(make) -> None:
    """ARG and ENV both set the stage's environment, the later one winning:
    an ARG declared after an ENV of its name gives the RUN its value
    (observed on v0.32.2: `ENV V=b`, `ARG V=c`, `--build-arg V=x` runs `echo x`)."""
    ctx = make("FROM scratch\nENV V=b\nARG V=c\nRUN echo $V\n")
    ctx.built(build_args={"V": "x"})
    assert ctx.outcomes(build_args={"V": "x"}) == [("RUN echo $V", CACHED)]
    assert ctx.step("RUN echo $V", build_args={"V": "y"}).expanded_instruction == "RUN echo y"
    assert ctx.outcomes(build_args={"V": "y"}) == [("RUN echo $V", ARG_CHANGED)]


def test_expansion_default_and_alternative_forms_in_copy_sources(make) -> None:
    """`${V:-x}` (x when V is unset or empty) and `${W:+x}` (x when W is set)
    choose which context file a COPY reads."""
    ctx = make(
        "FROM scratch\nARG V\nARG W\nCOPY ${V:-a}.txt /f.txt\nCOPY c${W:+-w}.txt /g.txt\n",
        {"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n", "c-w.txt": "cw\n"},
    )
    ctx.built()
    ctx.write("b.txt", "b changed\n")
    ctx.write("c-w.txt", "cw changed\n")
    assert ctx.outcomes() == [("COPY ${V:-a}.txt /f.txt", CACHED), ("COPY c${W:+-w}.txt /g.txt", CACHED)]
    assert ctx.outcomes(build_args={"V": ""}) == [
        ("COPY ${V:-a}.txt /f.txt", CACHED),
        ("COPY c${W:+-w}.txt /g.txt", CACHED),
    ]
    switched = ctx.outcomes(build_args={"V": "b"})
    assert [status for _, (status, _) in switched] == ["INVALIDATED", "INVALIDATED"]
    assert switched[1] == ("COPY c${W:+-w}.txt /g.txt", UPSTREAM)
    ctx.built(build_args={"V": "b", "W": "1"})
    ctx.write("a.txt", "a changed\n")
    ctx.write("c.txt", "c changed\n")
    assert ctx.outcomes(build_args={"V": "b", "W": "1"}) == [
        ("COPY ${V:-a}.txt /f.txt", CACHED),
        ("COPY c${W:+-w}.txt /g.txt", CACHED),
    ]
    ctx.write("c-w.txt", "cw changed again\n")
    assert ctx.outcomes(build_args={"V": "b", "W": "1"}) == [
        ("COPY ${V:-a}.txt /f.txt", CACHED),
        ("COPY c${W:+-w}.txt /g.txt", INPUTS),
    ]


def test_expansion_undeclared_build_arg_changes_nothing(make) -> None:
    """golden build_arg_not_declared: a build arg no ARG declares is not seen."""
    ctx = make("FROM scratch\nCOPY a.txt /a\nRUN echo $X\n", {"a.txt": "a\n"})
    ctx.built()
    report = ctx.report(build_args={"X": "1"})
    assert [(s.instruction, outcome(s.status, s.cause)) for s in report.steps] == [
        ("COPY a.txt /a", CACHED),
        ("RUN echo $X", CACHED),
    ]
    assert report.all_cached
    assert "build args not declared with ARG (they change nothing): X" in report.notes
    assert not any("not declared" in n for n in ctx.report().notes)


def test_expansion_declared_arg_used_by_no_instruction_reruns_next_run(make) -> None:
    """golden build_arg_declared_unused: a declared ARG is in RUN's
    environment even when no instruction mentions it; COPY does not see it."""
    ctx = make(
        "FROM scratch\nCOPY a.txt /a.txt\nARG V\nCOPY b.txt /b.txt\nRUN echo constant\n",
        {"a.txt": "a\n", "b.txt": "b\n"},
        build_args={"V": "1"},
    )
    ctx.built()
    assert ctx.outcomes(build_args={"V": "2"}) == [
        ("COPY a.txt /a.txt", CACHED),
        ("COPY b.txt /b.txt", CACHED),
        ("RUN echo constant", ARG_CHANGED),
    ]
    assert values(ctx.step("RUN echo constant", build_args={"V": "2"})) == [("V", "1", "2", True, True)]
    assert not ctx.report(build_args={"V": "2"}).notes  # declared: not reported as unused


def test_expansion_arg_declared_after_run_does_not_affect_it(make) -> None:
    ctx = make("FROM scratch\nRUN echo one\nARG V=1\nRUN echo two\n")
    ctx.built()
    assert ctx.outcomes(build_args={"V": "2"}) == [("RUN echo one", CACHED), ("RUN echo two", ARG_CHANGED)]


# =====================================================================================
# 2. Stages and the build graph
# =====================================================================================

STAGES = (
    "FROM scratch AS base\nCOPY base.txt /base.txt\n"
    "FROM base AS app\nCOPY app.txt /app.txt\n"
    "FROM scratch AS other\nCOPY other.txt /other.txt\n"
    "FROM app AS final\nCOPY --from=other /other.txt /o.txt\n"
)
STAGE_FILES = {"base.txt": "base\n", "app.txt": "app\n", "other.txt": "other\n"}


def test_stages_target_reports_only_needed_stages(make) -> None:
    """golden b2_target_independent_stage_changes: with --target, only the
    target and the stages it needs are built; others cannot matter."""
    ctx = make(STAGES, STAGE_FILES)
    ctx.built(target="app")
    report = ctx.report(target="app")
    assert [(s.stage, s.instruction, outcome(s.status, s.cause)) for s in report.steps] == [
        ("base", "COPY base.txt /base.txt", CACHED),
        ("app", "COPY app.txt /app.txt", CACHED),
    ]
    ctx.write("other.txt", "other changed\n")
    assert ctx.report(target="app").all_cached
    # Without the target the whole graph counts (and was never built that way).
    assert [s.stage for s in ctx.report().steps] == ["base", "app", "other", "final"]
    ctx.write("app.txt", "app changed\n")
    assert ctx.outcomes(target="app") == [("COPY base.txt /base.txt", CACHED), ("COPY app.txt /app.txt", INPUTS)]


def test_stages_registered_target(make) -> None:
    """The target given at registration is used by every report."""
    ctx = make(STAGES, STAGE_FILES, target="base")
    ctx.built()
    assert ctx.outcomes() == [("COPY base.txt /base.txt", CACHED)]
    ctx.write("base.txt", "base changed\n")
    assert ctx.outcomes() == [("COPY base.txt /base.txt", INPUTS)]


def test_stages_from_stage_chain(make) -> None:
    """golden b2_stage_chain_three_deep: FROM <stage> runs on the whole stage
    it names; a change at the bottom re-runs everything above it."""
    ctx = make(
        "FROM scratch AS base\nCOPY a.txt /a.txt\nFROM base AS mid\nRUN echo mid\nFROM mid AS top\nRUN echo top\n",
        {"a.txt": "a\n"},
    )
    ctx.built()
    assert ctx.report().all_cached
    ctx.write("a.txt", "a changed\n")
    report = ctx.report()
    assert [(s.stage, s.instruction, outcome(s.status, s.cause), s.upstream_step) for s in report.steps] == [
        ("base", "COPY a.txt /a.txt", INPUTS, 0),
        ("mid", "RUN echo mid", UPSTREAM, 0),
        ("top", "RUN echo top", UPSTREAM, 0),
    ]


def test_stages_copy_from_stage_name_and_index(make) -> None:
    """COPY --from=<name> and --from=<index> read files of that stage by
    content: each re-runs only when what it copies changes."""
    ctx = make(
        "FROM scratch AS build\nCOPY a.txt /out/a.txt\nCOPY b.txt /other/b.txt\n"
        "FROM scratch\nCOPY --from=0 /other /o\nCOPY --from=build /out/a.txt /a.txt\n",
        {"a.txt": "a\n", "b.txt": "b\n"},
    )
    ctx.built()
    ctx.write("a.txt", "a changed\n")
    report = ctx.report()
    assert [(s.stage, s.instruction, outcome(s.status, s.cause)) for s in report.steps] == [
        ("build", "COPY a.txt /out/a.txt", INPUTS),
        ("build", "COPY b.txt /other/b.txt", UPSTREAM),  # runs on the changed step, same output
        ("stage-1", "COPY --from=0 /other /o", CACHED),
        ("stage-1", "COPY --from=build /out/a.txt /a.txt", INPUTS),
    ]
    ctx.write("a.txt", "a\n")
    ctx.write("b.txt", "b changed\n")
    assert ctx.outcomes() == [
        ("COPY a.txt /out/a.txt", CACHED),
        ("COPY b.txt /other/b.txt", INPUTS),
        ("COPY --from=0 /other /o", INPUTS),
        ("COPY --from=build /out/a.txt /a.txt", UPSTREAM),
    ]


def test_stages_copy_from_reads_only_selected_paths(make) -> None:
    """BuildKit checksums only the selected paths of the source stage: a step
    of that stage writing elsewhere does not matter
    (golden copy_from_stage_input_changes_output_same)."""
    ctx = make(
        "FROM scratch AS build\nCOPY a.txt /out/a.txt\nCOPY b.txt /other/b.txt\n"
        "FROM scratch\nCOPY --from=build /out/a.txt /a.txt\nRUN cat /a.txt\n",
        {"a.txt": "a\n", "b.txt": "b\n"},
    )
    ctx.built()
    ctx.write("b.txt", "b changed\n")
    assert ctx.outcomes() == [
        ("COPY a.txt /out/a.txt", CACHED),
        ("COPY b.txt /other/b.txt", INPUTS),
        ("COPY --from=build /out/a.txt /a.txt", CACHED),
        ("RUN cat /a.txt", CACHED),
    ]


def test_stages_copy_from_after_rerun_run_is_unknown(make) -> None:
    """golden copy_from_stage_output_changes: what a re-run RUN produces cannot
    be known, so a COPY --from of its files is unknown, and so is what runs on it."""
    ctx = make(
        "FROM scratch AS build\nCOPY a.txt /a.txt\nRUN cp /a.txt /out.txt\n"
        "FROM scratch\nCOPY --from=build /out.txt /res.txt\nRUN cat /res.txt\n",
        {"a.txt": "a\n"},
    )
    ctx.built()
    ctx.write("a.txt", "a changed\n")
    report = ctx.report()
    assert [(s.instruction, outcome(s.status, s.cause), s.upstream_step) for s in report.steps] == [
        ("COPY a.txt /a.txt", INPUTS, 0),
        ("RUN cp /a.txt /out.txt", UPSTREAM, 0),
        ("COPY --from=build /out.txt /res.txt", OUTPUT, 1),
        ("RUN cat /res.txt", OUTPUT, 2),
    ]
    assert not report.all_cached


def test_a_context_never_built_says_how_to_record_a_build(make) -> None:
    ctx = make("FROM scratch\nCOPY a.txt /a.txt\n", {"a.txt": "a\n"})
    assert [o for _, o in ctx.outcomes()] == [NEVER_BUILT]
    [note] = ctx.report().notes
    assert note == (
        "no build of ctx is recorded yet: build it with `ctxwatch build -- <your build command>` (builds run with "
        "buildx are learned too), or record the one you just ran: `ctxwatch built ctx`"
    )
    ctx.built()
    assert not ctx.report().notes


def test_a_copy_of_cached_run_output_after_an_unknown_copy_names_that_copy(make) -> None:
    """The usual last stage: COPY --from the build stage (its RUN runs again),
    then COPY --from the deps stage (its RUN cached). The second is unknown
    because it runs on the first, not because of its own source."""
    ctx = make(
        "FROM scratch AS deps\nCOPY package.json /p.json\nRUN cp /p.json /modules\n"
        "FROM scratch AS build\nCOPY src.txt /src.txt\nRUN cp /src.txt /dist\n"
        "FROM scratch\nCOPY --from=build /dist /dist\nCOPY --from=deps /modules /modules\n",
        {"package.json": "{}\n", "src.txt": "a\n"},
    )
    ctx.built()
    ctx.write("src.txt", "a changed\n")
    report = ctx.report()
    assert [(outcome(s.status, s.cause), s.upstream_step) for s in report.steps] == [
        (CACHED, 0),
        (CACHED, 0),
        (INPUTS, 0),
        (UPSTREAM, 2),
        (OUTPUT, 3),
        (OUTPUT, 4),
    ]
    assert report.steps[5].explanation == (
        "runs on [stage-2 1/2] COPY --from=build /dist /dist (line 8), whose result depends on files a re-run step "
        "produces"
    )


def test_stages_bind_mount_from_context(make) -> None:
    """golden run_mount_bind_source_changes / run_mount_bind_other_file_changes."""
    ctx = make("FROM scratch\nRUN --mount=type=bind,source=x,target=/x cat /x\n", {"x": "x\n", "y": "y\n"})
    ctx.built()
    ctx.write("y", "y changed\n")
    assert ctx.outcomes() == [("RUN --mount=type=bind,source=x,target=/x cat /x", CACHED)]
    ctx.write("x", "x changed\n")
    step = ctx.step("RUN --mount=type=bind,source=x,target=/x cat /x")
    assert outcome(step.status, step.cause) == INPUTS
    assert changes(step) == [("x", "CONTENT", "size 2 -> 10")]


def test_stages_bind_mount_from_stage(make) -> None:
    """--mount=type=bind,from=<stage>: the mounted path of that stage, by content."""
    ctx = make(
        "FROM scratch AS tools\nCOPY tool.sh /tool.sh\nCOPY other.txt /other.txt\n"
        "FROM scratch\nRUN --mount=type=bind,from=tools,source=/tool.sh,target=/t sh /t\n",
        {"tool.sh": "echo 1\n", "other.txt": "o\n"},
    )
    run = "RUN --mount=type=bind,from=tools,source=/tool.sh,target=/t sh /t"
    ctx.built()
    ctx.write("other.txt", "o changed\n")
    assert ctx.outcomes() == [("COPY tool.sh /tool.sh", CACHED), ("COPY other.txt /other.txt", INPUTS), (run, CACHED)]
    ctx.write("other.txt", "o\n")
    ctx.write("tool.sh", "echo 2\n")
    assert ctx.outcomes() == [("COPY tool.sh /tool.sh", INPUTS), ("COPY other.txt /other.txt", UPSTREAM), (run, INPUTS)]


CACHE_RUN = "RUN --mount=type=cache,{} pip install x"


def test_stages_cache_mount_target(make) -> None:
    """The target of a cache mount is part of the step (moby/buildkit#7061:
    "changing `target` ... does trigger layer invalidation"); its content is not."""
    ctx = make(f"FROM scratch\n{CACHE_RUN.format('id=pip,target=/var/cache/pip')}\nRUN echo next\n")
    ctx.built()
    assert ctx.report().all_cached
    ctx.set_dockerfile(f"FROM scratch\n{CACHE_RUN.format('id=pip,target=/cache')}\nRUN echo next\n")
    report = ctx.report()
    assert [(s.instruction, outcome(s.status, s.cause)) for s in report.steps] == [
        (CACHE_RUN.format("id=pip,target=/cache"), INSTRUCTION),
        ("RUN echo next", UPSTREAM),
    ]
    assert report.steps[0].old_instruction == CACHE_RUN.format("id=pip,target=/var/cache/pip")
    ctx.set_dockerfile(f"FROM scratch\n{CACHE_RUN.format('id=pip,target=/var/cache/pip')}\nRUN echo next\n")
    assert ctx.report().all_cached


def test_stages_cache_mount_id(make) -> None:
    ctx = make(f"FROM scratch\n{CACHE_RUN.format('id=pip,target=/var/cache/pip')}\nRUN echo next\n")
    ctx.built()
    ctx.set_dockerfile(f"FROM scratch\n{CACHE_RUN.format('id=pip2,target=/var/cache/pip')}\nRUN echo next\n")
    assert ctx.outcomes() == [(CACHE_RUN.format("id=pip2,target=/var/cache/pip"), CACHED), ("RUN echo next", CACHED)]


def test_stages_secret_mount_value_never_matters_id_and_target_do(make) -> None:
    """golden b2_run_mount_secret_value_changes: the secret's value is not part
    of the key (here its source file sits in the context and changes);
    its id and target are."""
    ctx = make(
        "FROM scratch\nCOPY a.txt /a.txt\nRUN --mount=type=secret,id=tok cat /run/secrets/tok\nRUN echo after\n",
        {"a.txt": "a\n", "tok": "value-one\n"},
    )
    ctx.built()
    ctx.write("tok", "value-two-longer\n")
    assert ctx.report().all_cached
    ctx.set_dockerfile(
        "FROM scratch\nCOPY a.txt /a.txt\nRUN --mount=type=secret,id=tok2 cat /run/secrets/tok\nRUN echo after\n"
    )
    assert [o for _, o in ctx.outcomes()] == [CACHED, INSTRUCTION, UPSTREAM]
    ctx.set_dockerfile(
        "FROM scratch\nCOPY a.txt /a.txt\n"
        "RUN --mount=type=secret,id=tok,target=/s cat /run/secrets/tok\nRUN echo after\n"
    )
    assert [o for _, o in ctx.outcomes()] == [CACHED, INSTRUCTION, UPSTREAM]


def test_stages_copy_link_survives_earlier_change(make) -> None:
    """golden b2_copy_link_earlier_copy_changes: COPY --link copies onto an
    empty layer, so it stays cached; the RUN after it runs on a new parent."""
    ctx = make(
        "FROM scratch\nCOPY a.txt /a.txt\nCOPY --link b.txt /b.txt\nRUN cat /a.txt /b.txt\n",
        {"a.txt": "a\n", "b.txt": "b\n"},
    )
    ctx.built()
    ctx.write("a.txt", "a changed\n")
    report = ctx.report()
    assert [(s.instruction, outcome(s.status, s.cause)) for s in report.steps] == [
        ("COPY a.txt /a.txt", INPUTS),
        ("COPY --link b.txt /b.txt", CACHED),
        ("RUN cat /a.txt /b.txt", UPSTREAM),
    ]
    assert report.steps[2].upstream_step == 0
    # Without --link the same change re-runs the second COPY.
    ctx.set_dockerfile("FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\nRUN cat /a.txt /b.txt\n")
    ctx.write("a.txt", "a\n")
    ctx.built()
    ctx.write("a.txt", "a changed\n")
    assert [o for _, o in ctx.outcomes()] == [INPUTS, UPSTREAM, UPSTREAM]


METADATA = "FROM scratch\nCOPY a.txt /a.txt\n{}\nCOPY b.txt /b.txt\nRUN cat /b.txt\n"


@pytest.mark.parametrize(
    ("before", "after", "run"),
    [
        ("ENV A=1", "ENV A=2", ARG_CHANGED),  # golden b2_env_change_before_copy
        ("USER 1000", "USER 1001", INSTRUCTION),  # golden b2_user_change_before_copy
        ("LABEL l=1", "LABEL l=2", CACHED),  # golden b2_label_change_before_copy
        ("EXPOSE 80", "EXPOSE 8080", CACHED),
    ],
    ids=["env", "user", "label", "expose"],
)
def test_stages_metadata_change(make, before: str, after: str, run: tuple[str, str]) -> None:
    """Metadata instructions are not steps: ENV and USER reach the next RUN,
    not the COPY in between; LABEL and EXPOSE reach no step."""
    ctx = make(METADATA.format(before), {"a.txt": "a\n", "b.txt": "b\n"})
    ctx.built()
    ctx.set_dockerfile(METADATA.format(after))
    assert ctx.outcomes() == [("COPY a.txt /a.txt", CACHED), ("COPY b.txt /b.txt", CACHED), ("RUN cat /b.txt", run)]


def test_stages_env_change_explains_the_value(make) -> None:
    ctx = make(METADATA.format("ENV A=1"), {"a.txt": "a\n", "b.txt": "b\n"})
    ctx.built()
    ctx.set_dockerfile(METADATA.format("ENV A=2"))
    assert values(ctx.step("RUN cat /b.txt")) == [("A", "1", "2", True, True)]


def test_stages_workdir_change(make) -> None:
    """golden b2_workdir_change_copy_relative_dest: WORKDIR is a step (it
    creates the folder); what follows runs on it."""
    ctx = make(
        "FROM scratch\nCOPY a.txt /a.txt\nWORKDIR /app\nCOPY b.txt .\nRUN pwd\n", {"a.txt": "a\n", "b.txt": "b\n"}
    )
    ctx.built()
    ctx.set_dockerfile("FROM scratch\nCOPY a.txt /a.txt\nWORKDIR /srv\nCOPY b.txt .\nRUN pwd\n")
    report = ctx.report()
    assert [(s.instruction, outcome(s.status, s.cause), s.upstream_step) for s in report.steps] == [
        ("COPY a.txt /a.txt", CACHED, 0),
        ("WORKDIR /srv", INSTRUCTION, 0),
        ("COPY b.txt .", UPSTREAM, 1),
        ("RUN pwd", UPSTREAM, 1),
    ]
    assert report.steps[1].old_instruction == "WORKDIR /app"


# =====================================================================================
# 3. Sources: what a COPY / ADD reads
# =====================================================================================


@pytest.mark.parametrize(
    ("pattern", "matching", "other"),
    [
        ("*.txt", "new.txt", "new.md"),
        ("file?.cfg", "file2.cfg", "file10.cfg"),
        ("[ab].md", "b.md", "c.md"),
    ],
    ids=["star", "question-mark", "class"],
)
def test_sources_wildcards(make, pattern: str, matching: str, other: str) -> None:
    """golden wildcard_new_matching_file / wildcard_new_nonmatching_file."""
    ctx = make(
        f"FROM scratch\nCOPY {pattern} /dst/\nRUN ls /dst\n",
        {"a.txt": "a\n", "file1.cfg": "1\n", "a.md": "a\n", "keep/x": "x\n"},
    )
    ctx.built()
    ctx.write(other, "not matching\n")
    assert ctx.report().all_cached
    ctx.write(matching, "matching\n")
    step = ctx.step(f"COPY {pattern} /dst/")
    assert outcome(step.status, step.cause) == INPUTS
    assert changes(step) == [(matching, "ADDED", "")]


def test_sources_directory(make) -> None:
    ctx = make("FROM scratch\nCOPY src /src\n", {"src/a.txt": "a\n", "src/sub/b.txt": "b\n", "other": "o\n"})
    ctx.built()
    ctx.write("other", "o changed\n")
    assert ctx.report().all_cached
    ctx.write("src/sub/b.txt", "b changed\n")
    assert ctx.outcomes() == [("COPY src /src", INPUTS)]
    ctx.write("src/sub/b.txt", "b\n")
    assert ctx.report().all_cached
    (ctx.root / "src" / "sub" / "b.txt").rename(ctx.root / "src" / "sub" / "c.txt")  # same content, new name
    assert ctx.outcomes() == [("COPY src /src", INPUTS)]


def test_sources_several(make) -> None:
    """golden b2_copy_multi_src_second_changes."""
    ctx = make("FROM scratch\nCOPY a.txt b.txt /d/\n", {"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n"})
    ctx.built()
    ctx.write("c.txt", "c changed\n")
    assert ctx.report().all_cached
    ctx.write("b.txt", "b changed\n")
    step = ctx.step("COPY a.txt b.txt /d/")
    assert outcome(step.status, step.cause) == INPUTS
    assert changes(step) == [("b.txt", "CONTENT", "size 2 -> 10")]


def test_sources_trailing_slash_on_destination(make) -> None:
    """golden b2_copy_dest_trailing_slash_new_path: `/x` and `/x/` differ."""
    ctx = make("FROM scratch\nCOPY a.txt /x\nRUN ls /x\n", {"a.txt": "a\n"})
    ctx.built()
    ctx.set_dockerfile("FROM scratch\nCOPY a.txt /x/\nRUN ls /x\n")
    report = ctx.report()
    assert [(s.instruction, outcome(s.status, s.cause)) for s in report.steps] == [
        ("COPY a.txt /x/", INSTRUCTION),
        ("RUN ls /x", UPSTREAM),
    ]
    assert report.steps[0].old_instruction == "COPY a.txt /x"


def test_sources_whole_context(make) -> None:
    ctx = make("FROM scratch\nCOPY . /app\n", {"a.txt": "a\n", "deep/er/b.txt": "b\n"})
    ctx.built()
    assert ctx.report().all_cached
    ctx.write("deep/er/b.txt", "b changed\n")
    assert ctx.outcomes() == [("COPY . /app", INPUTS)]
    ctx.write("deep/er/b.txt", "b\n")
    assert ctx.report().all_cached
    ctx.write("new.txt", "n\n")
    step = ctx.step("COPY . /app")
    assert (outcome(step.status, step.cause), changes(step)) == (INPUTS, [("new.txt", "ADDED", "")])


@pytest.mark.parametrize("written", ["./a.txt", "sub/../a.txt", "./sub/../a.txt"])
def test_sources_equivalent_spellings(make, written: str) -> None:
    """golden b2_copy_dotdot_inside_path: BuildKit cleans the source path, so
    rewriting `a.txt` as `./a.txt` or `sub/../a.txt` keeps the cache."""
    ctx = make("FROM scratch\nCOPY a.txt /a.txt\nRUN cat /a.txt\n", {"a.txt": "a\n", "sub/keep": "k\n"})
    ctx.built()
    ctx.set_dockerfile(f"FROM scratch\nCOPY {written} /a.txt\nRUN cat /a.txt\n")
    assert ctx.outcomes() == [(f"COPY {written} /a.txt", CACHED), ("RUN cat /a.txt", CACHED)]
    ctx.built()  # the build that took both from the cache
    ctx.write("a.txt", "a changed\n")
    assert ctx.outcomes() == [(f"COPY {written} /a.txt", INPUTS), ("RUN cat /a.txt", UPSTREAM)]
    assert changes(ctx.step(f"COPY {written} /a.txt")) == [("a.txt", "CONTENT", "size 2 -> 10")]


def test_sources_dotdot_clamped_to_context_root(make, tmp_path: Path) -> None:
    """golden b2_copy_dotdot_outside_context: `../x` is the context's own x."""
    (tmp_path / "x").write_text("outside x\n")
    ctx = make("FROM scratch\nCOPY ../x /x\n", {"x": "ctx x\n"})
    ctx.built()
    (tmp_path / "x").write_text("outside x changed\n")
    assert ctx.outcomes() == [("COPY ../x /x", CACHED)]
    ctx.write("x", "ctx x changed\n")
    step = ctx.step("COPY ../x /x")
    assert outcome(step.status, step.cause) == INPUTS
    assert changes(step) == [("x", "CONTENT", "size 6 -> 14")]


def test_sources_exclude(make) -> None:
    """golden copy_exclude_excluded_file_changes / copy_exclude_included_file_changes
    / copy_exclude_new_excluded_file."""
    ctx = make("FROM scratch\nCOPY --exclude=*.log src /src\n", {"src/a.txt": "a\n", "src/debug.log": "log\n"})
    ctx.built()
    ctx.write("src/debug.log", "more log\n")
    ctx.write("src/new.log", "new log\n")
    assert ctx.report().all_cached
    ctx.write("src/a.txt", "a changed\n")
    step = ctx.step("COPY --exclude=*.log src /src")
    assert (outcome(step.status, step.cause), [c.path for c in step.changed_paths]) == (INPUTS, ["src/a.txt"])
    # The same folder without --exclude is another step.
    ctx.write("src/a.txt", "a\n")
    ctx.set_dockerfile("FROM scratch\nCOPY src /src\n")
    assert ctx.outcomes() == [("COPY src /src", INSTRUCTION)]


def test_sources_parents(make) -> None:
    """golden copy_parents_matched_file_changes / copy_parents_unmatched_sibling_changes."""
    files = {
        "pkgs/x/package.json": '{"n":"x"}\n',
        "pkgs/x/index.js": "x\n",
        "pkgs/y/package.json": '{"n":"y"}\n',
        "pkgs/y/index.js": "y\n",
    }
    ctx = make("FROM scratch\nCOPY --parents pkgs/*/package.json /out/\nRUN find /out\n", files)
    ctx.built()
    ctx.write("pkgs/y/index.js", "y changed\n")
    assert ctx.report().all_cached
    ctx.write("pkgs/y/package.json", '{"n":"y2"}\n')
    assert ctx.outcomes() == [("COPY --parents pkgs/*/package.json /out/", INPUTS), ("RUN find /out", UPSTREAM)]
    ctx.write("pkgs/y/package.json", '{"n":"y"}\n')
    # Without --parents the same files land elsewhere: another step.
    ctx.set_dockerfile("FROM scratch\nCOPY pkgs/*/package.json /out/\nRUN find /out\n")
    assert ctx.outcomes() == [("COPY pkgs/*/package.json /out/", INSTRUCTION), ("RUN find /out", UPSTREAM)]


def test_sources_heredoc(make) -> None:
    """golden b2_heredoc_copy_content_edited: the file's content is in the Dockerfile."""
    ctx = make("FROM scratch\nCOPY <<EOF /greeting\nhello\nEOF\nRUN cat /greeting\n")
    ctx.built()
    ctx.set_dockerfile("FROM scratch\n\nCOPY <<EOF /greeting\nhello\nEOF\nRUN cat /greeting\n")  # moved a line
    assert ctx.report().all_cached
    ctx.set_dockerfile("FROM scratch\nCOPY <<EOF /greeting\nhello, world\nEOF\nRUN cat /greeting\n")
    assert ctx.outcomes() == [("COPY <<EOF /greeting", INSTRUCTION), ("RUN cat /greeting", UPSTREAM)]


def _tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_000_000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_sources_add_local_tar(make) -> None:
    """golden add_local_tar_touch / add_local_tar_content_changes: the archive's
    bytes count, its mtime does not."""
    ctx = make("FROM scratch\nADD files.tar /x/\n", {"files.tar": _tar({"a": b"a\n"})})
    ctx.built()
    os.utime(ctx.root / "files.tar", None)  # touch
    assert ctx.outcomes() == [("ADD files.tar /x/", CACHED)]
    ctx.write("files.tar", _tar({"a": b"b\n"}))  # same size, other bytes
    step = ctx.step("ADD files.tar /x/")
    assert outcome(step.status, step.cause) == INPUTS
    assert changes(step) == [("files.tar", "CONTENT", "")]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("--chown=1000:1000", "--chown=1001:1000"),
        ("--chmod=0644", "--chmod=0755"),
    ],
    ids=["chown", "chmod"],
)
def test_sources_chown_chmod_flags(make, before: str, after: str) -> None:
    ctx = make(f"FROM scratch\nCOPY {before} a.txt /a.txt\n", {"a.txt": "a\n"})
    ctx.built()
    ctx.set_dockerfile(f"FROM scratch\nCOPY {after} a.txt /a.txt\n")
    step = ctx.step(f"COPY {after} a.txt /a.txt")
    assert (outcome(step.status, step.cause), step.old_instruction) == (INSTRUCTION, f"COPY {before} a.txt /a.txt")


def test_sources_chmod_of_source_counts_despite_chmod_flag(make) -> None:
    """golden copy_chmod_flag_source_chmod: the image's mode is the same, but
    BuildKit's checksum covers the source's mode."""
    ctx = make("FROM scratch\nCOPY --chmod=0755 a.txt /a.txt\nRUN ls -l /a.txt\n", {"a.txt": "a\n"})
    os.chmod(ctx.root / "a.txt", 0o644)
    ctx.built()
    os.chmod(ctx.root / "a.txt", 0o600)
    step = ctx.step("COPY --chmod=0755 a.txt /a.txt")
    assert outcome(step.status, step.cause) == INPUTS
    assert changes(step) == [("a.txt", "MODE", "mode 0644 -> 0600")]


def test_sources_add_url_checksum_makes_it_known(make) -> None:
    ctx = make(f"FROM scratch\nADD --checksum={DIGEST} https://example.com/x /x\nRUN cat /x\n")
    ctx.built()
    assert ctx.outcomes() == [(f"ADD --checksum={DIGEST} https://example.com/x /x", CACHED), ("RUN cat /x", CACHED)]
    other = "sha256:" + "cd" * 32
    ctx.set_dockerfile(f"FROM scratch\nADD --checksum={other} https://example.com/x /x\nRUN cat /x\n")
    assert [o for _, o in ctx.outcomes()] == [INSTRUCTION, UPSTREAM]


def test_sources_missing_source_is_an_error(make) -> None:
    """golden b2_empty_file_removed_copy_single_expect_fail: a source that
    matches nothing fails the build at that step."""
    ctx = make("FROM scratch\nCOPY a.txt /a.txt\nCOPY missing.txt /m\nRUN echo after\n", {"a.txt": "a\n"})
    response = ctx.built()
    assert response.steps_recorded == 1  # BuildKit caches what completed before the failure
    assert response.failed.startswith("line 3 (COPY missing.txt /m): ")
    report = ctx.report()
    assert [(s.instruction, outcome(s.status, s.cause)) for s in report.steps] == [
        ("COPY a.txt /a.txt", CACHED),
        ("COPY missing.txt /m", ERROR),
        ("RUN echo after", UPSTREAM),
    ]
    failing = report.steps[1]
    assert (failing.line, failing.error) == (3, '"/missing.txt": not found')
    assert report.steps[2].upstream_step == 1
    ctx.write("missing.txt", "here\n")
    report = ctx.report()
    assert [(s.status, s.error) for s in report.steps] == [
        (pb.STEP_STATUS_CACHED, ""),
        (pb.STEP_STATUS_INVALIDATED, ""),
        (pb.STEP_STATUS_INVALIDATED, ""),
    ]
    assert outcome(report.steps[2].status, report.steps[2].cause) == UPSTREAM
    # (the cause of the step that failed last time: test_explain_step_missing_from_last_build)


def test_sources_wildcard_matching_nothing_is_not_an_error(make) -> None:
    ctx = make("FROM scratch\nCOPY *.go /src/\nRUN ls /src\n", {"a.txt": "a\n"})
    assert [outcome(s.status, s.cause) for s in ctx.report().steps] == [NEVER_BUILT, NEVER_BUILT]
    assert ctx.built().steps_recorded == 2
    assert ctx.outcomes() == [("COPY *.go /src/", CACHED), ("RUN ls /src", CACHED)]
    ctx.write("main.go", "package main\n")
    step = ctx.step("COPY *.go /src/")
    assert (outcome(step.status, step.cause), changes(step)) == (INPUTS, [("main.go", "ADDED", "")])


# =====================================================================================
# 4. What is sent to the builder
# =====================================================================================


def test_sent_dockerignore_patterns(make) -> None:
    """golden b2_dockerignore_doublestar_node_modules, b2_dockerignore_negation_readme,
    b2_dockerignore_leading_slash, b2_dockerignore_dir_excluded_file_reincluded."""
    ignore = (
        "**/*.log\n"  # ** matches any depth, the root too
        "!**/keep.log\n"  # exception
        "/build\n"  # leading slash: the root's build only
        "*.md\n"
        "!README*.md\n"
        "README-secret.md\n"
    )  # last match wins
    files = {
        ".dockerignore": ignore,
        "a.log": "l\n",
        "sub/deep/b.log": "l\n",
        "sub/keep.log": "k\n",
        "build/out": "o\n",
        "sub/build/out": "o\n",
        "notes.md": "n\n",
        "README.md": "r\n",
        "README-secret.md": "s\n",
        "main.c": "c\n",
    }
    ctx = make("FROM scratch\nCOPY . /app\n", files)
    ctx.built()
    for excluded in ("a.log", "sub/deep/b.log", "build/out", "notes.md", "README-secret.md"):
        ctx.write(excluded, "changed but not sent\n")
    assert ctx.report().all_cached
    for sent in ("sub/keep.log", "sub/build/out", "README.md", "main.c"):
        old = (ctx.root / sent).read_text()
        ctx.write(sent, "changed and sent\n")
        assert (sent, ctx.outcomes()) == (sent, [("COPY . /app", INPUTS)])
        ctx.write(sent, old)
        assert ctx.report().all_cached, sent
    # Root-level files are named in the explanation.
    ctx.write("main.c", "changed\n")
    assert [c.path for c in ctx.step("COPY . /app").changed_paths] == ["main.c"]


def test_sent_dockerfile_specific_dockerignore_wins(make, tmp_path: Path) -> None:
    """golden b2_dockerfile_specific_dockerignore: <Dockerfile>.dockerignore next
    to the Dockerfile (here outside the context) replaces the root .dockerignore."""
    outside = tmp_path / "df" / "app.Dockerfile"
    outside.parent.mkdir()
    (tmp_path / "df" / "app.Dockerfile.dockerignore").write_text("a.txt\n")
    ctx = make(
        "FROM scratch\nCOPY . /ctx/\n",
        {".dockerignore": "b.txt\n", "a.txt": "a\n", "b.txt": "b\n"},
        dockerfile_path=outside,
    )
    ctx.built()
    ctx.write("a.txt", "a changed\n")
    assert ctx.outcomes() == [("COPY . /ctx/", CACHED)]
    ctx.write("b.txt", "b changed\n")
    step = ctx.step("COPY . /ctx/")
    assert (outcome(step.status, step.cause), [c.path for c in step.changed_paths]) == (INPUTS, ["b.txt"])


def test_sent_dockerfile_inside_context_is_copied(make) -> None:
    """golden dockerfile_in_context_edit_copy_all: a comment added to the
    Dockerfile changes what `COPY .` copies."""
    ctx = make("FROM scratch\nCOPY src /src\nCOPY . /app\n", {"src/a.txt": "a\n"})
    ctx.built()
    ctx.set_dockerfile("FROM scratch\nCOPY src /src\nCOPY . /app\n# a comment\n")
    report = ctx.report()
    assert [(s.instruction, outcome(s.status, s.cause)) for s in report.steps] == [
        ("COPY src /src", CACHED),
        ("COPY . /app", INPUTS),
    ]
    assert [(c.path, c.kind) for c in report.steps[1].changed_paths] == [("Dockerfile", pb.CHANGE_KIND_CONTENT)]


def test_sent_dockerfile_outside_context_is_not_copied(make, tmp_path: Path) -> None:
    """golden dockerfile_comment_only_outside_context."""
    ctx = make("FROM scratch\nCOPY . /app\n", {"a.txt": "a\n"}, dockerfile_path=tmp_path / "df" / "Dockerfile")
    ctx.built()
    ctx.set_dockerfile("FROM scratch\nCOPY . /app\n# a comment\n")
    assert ctx.outcomes() == [("COPY . /app", CACHED)]


def test_sent_dockerignore_edit(make) -> None:
    """golden dockerignore_edit_copy_all / dockerignore_edit_copy_subdir: the
    .dockerignore file is sent too."""
    ctx = make("FROM scratch\nCOPY src/ /src/\nCOPY . /app\n", {".dockerignore": "*.tmp\n", "src/a.txt": "a\n"})
    ctx.built()
    ctx.write(".dockerignore", "*.tmp\nnothing-matches\n")
    report = ctx.report()
    assert [(s.instruction, outcome(s.status, s.cause)) for s in report.steps] == [
        ("COPY src/ /src/", CACHED),
        ("COPY . /app", INPUTS),
    ]
    assert [c.path for c in report.steps[1].changed_paths] == [".dockerignore"]


def test_sent_symlinks_in_folder_are_links(make) -> None:
    """golden symlink_target_change_in_dir: a link inside a copied folder is
    copied as a link; its target string counts, the target's content does not."""
    ctx = make("FROM scratch\nCOPY src/ /src\n", {"src/a.txt": "a\n", "src/b.txt": "b\n", "outside.txt": "o\n"})
    os.symlink("a.txt", ctx.root / "src" / "link")
    os.symlink("../outside.txt", ctx.root / "src" / "out")
    ctx.built()
    ctx.write("outside.txt", "o changed\n")  # what src/out points at, not copied
    assert ctx.outcomes() == [("COPY src/ /src", CACHED)]
    os.remove(ctx.root / "src" / "link")
    os.symlink("b.txt", ctx.root / "src" / "link")
    step = ctx.step("COPY src/ /src")
    assert (outcome(step.status, step.cause), [c.path for c in step.changed_paths]) == (INPUTS, ["src/link"])
    # (its kind and detail, "a.txt -> b.txt": test_explain_change_inside_directory_source)


def test_sent_symlink_source_is_followed(make) -> None:
    """golden symlink_as_copy_source_followed: a source that is itself a link
    is followed (inside the context)."""
    ctx = make("FROM scratch\nCOPY link.txt /x\nCOPY abs.txt /y\n", {"real.txt": "r\n", "data/real.txt": "d\n"})
    os.symlink("real.txt", ctx.root / "link.txt")
    os.symlink("/data/real.txt", ctx.root / "abs.txt")  # absolute: taken from the context root
    ctx.built()
    assert ctx.report().all_cached
    ctx.write("real.txt", "r changed\n")
    ctx.write("data/real.txt", "d changed\n")
    report = ctx.report()
    assert [(s.instruction, outcome(s.status, s.cause)) for s in report.steps] == [
        ("COPY link.txt /x", INPUTS),
        ("COPY abs.txt /y", UPSTREAM),
    ]
    assert changes(report.steps[0]) == [("real.txt", "CONTENT", "size 2 -> 10")]
    ctx.write("real.txt", "r\n")
    step = ctx.step("COPY abs.txt /y")
    assert (outcome(step.status, step.cause), changes(step)) == (INPUTS, [("data/real.txt", "CONTENT", "size 2 -> 10")])


def test_sent_symlink_outside_context_fails_like_buildkit(make, tmp_path: Path) -> None:
    """golden symlink_outside_context_copy_link_itself: an absolute link to a
    file outside the context resolves inside it, where it is missing."""
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("secret\n")
    ctx = make("FROM scratch\nCOPY a.txt /a.txt\nCOPY ext /ext\nRUN cat /ext\n", {"a.txt": "a\n"})
    os.symlink(str(secret), ctx.root / "ext")
    expected = [("COPY a.txt /a.txt", CACHED), ("COPY ext /ext", ERROR), ("RUN cat /ext", UPSTREAM)]
    assert ctx.built().failed == 'line 3 (COPY ext /ext): "/ext": not found'
    assert ctx.outcomes() == expected
    secret.write_text("changed secret\n")
    assert ctx.outcomes() == expected
    assert ctx.step("COPY ext /ext").error == '"/ext": not found'


def test_sent_empty_directories_count(make) -> None:
    """golden empty_dir_added."""
    ctx = make("FROM scratch\nCOPY src/ /src\n", {"src/a.txt": "a\n"})
    ctx.built()
    (ctx.root / "src" / "emptydir").mkdir()
    step = ctx.step("COPY src/ /src")
    assert (outcome(step.status, step.cause), changes(step)) == (INPUTS, [("src/emptydir", "ADDED", "")])
    (ctx.root / "src" / "emptydir").rmdir()
    assert ctx.report().all_cached


class _Hang(Exception):
    pass


def test_sent_fifo_is_a_special_file_never_opened(make) -> None:
    """Opening a FIFO for reading blocks until a writer comes: the engine must
    only stat it. Replacing a file by a FIFO is a type change."""

    def on_alarm(signum, frame):
        raise _Hang("the report blocked (a FIFO was opened?)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(5)
    try:
        ctx = make("FROM scratch\nCOPY src /src\n", {"src/a.txt": "a\n", "src/empty": ""})
        os.mkfifo(ctx.root / "src" / "pipe")
        ctx.built()
        assert ctx.report().all_cached
        os.remove(ctx.root / "src" / "pipe")
        ctx.write("src/pipe", "")  # an empty regular file in the FIFO's place
        assert ctx.outcomes() == [("COPY src /src", INPUTS)]
        os.remove(ctx.root / "src" / "pipe")
        os.mkfifo(ctx.root / "src" / "pipe")
        assert ctx.report().all_cached
        # An empty file becoming a FIFO (same permission bits): only the file type differs.
        mode = os.stat(ctx.root / "src" / "empty").st_mode & 0o7777
        os.remove(ctx.root / "src" / "empty")
        os.mkfifo(ctx.root / "src" / "empty", mode)
        os.chmod(ctx.root / "src" / "empty", mode)
        step = ctx.step("COPY src /src")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert (outcome(step.status, step.cause), [c.path for c in step.changed_paths]) == (INPUTS, ["src/empty"])


# =====================================================================================
# 5. What the daemon cannot know
# =====================================================================================


def test_remote_unpinned_base_image(make) -> None:
    ctx = make("FROM alpine:3\nCOPY a.txt /a.txt\nRUN cat /a.txt\n", {"a.txt": "a\n"})
    before = ctx.report()
    assert [outcome(s.status, s.cause) for s in before.steps] == [NEVER_BUILT] * 3
    ctx.built()
    report = ctx.report(strict_remote=True)
    assert [(s.instruction, outcome(s.status, s.cause)) for s in report.steps] == [
        ("FROM alpine:3", REMOTE),
        ("COPY a.txt /a.txt", REMOTE),
        ("RUN cat /a.txt", REMOTE),
    ]
    assert not report.all_cached
    assert all("alpine:3" in s.explanation for s in report.steps)
    # A step whose own input changed runs again whatever the image is.
    ctx.write("a.txt", "a changed\n")
    assert ctx.outcomes(strict_remote=True) == [
        ("FROM alpine:3", REMOTE),
        ("COPY a.txt /a.txt", INPUTS),
        ("RUN cat /a.txt", UPSTREAM),
    ]


def test_remote_pinned_base_image_is_known(make) -> None:
    ctx = make(f"FROM alpine@{DIGEST}\nCOPY a.txt /a.txt\nRUN cat /a.txt\n", {"a.txt": "a\n"})
    ctx.built()
    report = ctx.report()
    assert [(s.instruction, outcome(s.status, s.cause)) for s in report.steps] == [
        (f"FROM alpine@{DIGEST}", CACHED),
        ("COPY a.txt /a.txt", CACHED),
        ("RUN cat /a.txt", CACHED),
    ]
    other = "sha256:" + "cd" * 32
    ctx.set_dockerfile(f"FROM alpine@{other}\nCOPY a.txt /a.txt\nRUN cat /a.txt\n")
    assert [o for _, o in ctx.outcomes()] == [INSTRUCTION, UPSTREAM, UPSTREAM]


def test_remote_assumed_as_last_built_by_default(make) -> None:
    ctx = make("FROM alpine:3\nCOPY a.txt /a.txt\nADD https://example.com/x /x\n", {"a.txt": "a\n"})
    ctx.built()
    report = ctx.report()
    assert [outcome(s.status, s.cause) for s in report.steps] == [CACHED] * 3
    assert report.all_cached
    assert list(report.assumed_remote) == ["alpine:3", "https://example.com/x"]
    [note] = [n for n in report.notes if "assumed" in n]
    assert note.endswith(": alpine:3, https://example.com/x")
    assert not any(s.explanation for s in report.steps)  # one note, not a line under each step
    # The step's status follows the rest of its key.
    ctx.write("a.txt", "changed\n")
    assert [o for _, o in ctx.outcomes()] == [CACHED, INPUTS, UPSTREAM]
    # Strict: unknown, and nothing assumed.
    strict = ctx.report(strict_remote=True)
    assert strict.steps[0].status == pb.STEP_STATUS_UNKNOWN and not strict.assumed_remote
    assert not any("assumed" in n for n in strict.notes)
    # --assume-remote-unchanged still means the default.
    (assumed,) = ctx.client.reports([ctx.ref], pb.BuildOptions(assume_remote_unchanged=True))
    assert assumed.assumed_remote == report.assumed_remote


def test_remote_add_url(make) -> None:
    ctx = make("FROM scratch\nCOPY a.txt /a.txt\nADD https://example.com/x /x\nRUN cat /x\n", {"a.txt": "a\n"})
    ctx.built()
    report = ctx.report(strict_remote=True)
    assert [(s.instruction, outcome(s.status, s.cause)) for s in report.steps] == [
        ("COPY a.txt /a.txt", CACHED),
        ("ADD https://example.com/x /x", REMOTE),
        ("RUN cat /x", REMOTE),
    ]
    ctx.set_dockerfile(
        f"FROM scratch\nCOPY a.txt /a.txt\nADD --checksum={DIGEST} https://example.com/x /x\nRUN cat /x\n"
    )
    ctx.built()
    assert ctx.report().all_cached


def test_remote_copy_from_image(make) -> None:
    ctx = make(
        "FROM scratch\nCOPY a.txt /a.txt\nCOPY --from=nginx:latest /etc/nginx/nginx.conf /n.conf\n"
        f"COPY --from=busybox@{DIGEST} /bin/busybox /bin/busybox\n",
        {"a.txt": "a\n"},
    )
    ctx.built()
    assert ctx.outcomes(strict_remote=True) == [
        ("COPY a.txt /a.txt", CACHED),
        ("COPY --from=nginx:latest /etc/nginx/nginx.conf /n.conf", REMOTE),
        (f"COPY --from=busybox@{DIGEST} /bin/busybox /bin/busybox", REMOTE),
    ]


def test_remote_copy_from_pinned_image_is_known(make) -> None:
    ctx = make(f"FROM scratch\nCOPY --from=busybox@{DIGEST} /bin/busybox /bin/busybox\nRUN echo\n")
    ctx.built()
    assert ctx.outcomes() == [(f"COPY --from=busybox@{DIGEST} /bin/busybox /bin/busybox", CACHED), ("RUN echo", CACHED)]


# =====================================================================================
# 6. Build-time options
# =====================================================================================


def test_options_what_if_leaves_the_context_alone(make) -> None:
    ctx = make(
        "FROM scratch AS a\nARG V=1\nRUN echo $V\nFROM a AS b\nCOPY b.txt /b\n", {"b.txt": "b\n"}, build_args={"V": "1"}
    )
    ctx.built()

    def plain() -> list[tuple]:
        return [(s.stage, s.instruction, s.status, s.cause, s.key) for s in ctx.report().steps]

    before = plain()
    assert [s[2] for s in before] == [pb.STEP_STATUS_CACHED] * 2
    # Each what-if really answers differently...
    assert ctx.outcomes(build_args={"V": "2"}) == [("RUN echo $V", ARG_CHANGED), ("COPY b.txt /b", UPSTREAM)]
    assert [s.stage for s in ctx.report(target="a").steps] == ["a"]
    assert {o for _, o in ctx.outcomes(no_cache=True)} == {NO_CACHE}
    assert ctx.outcomes(no_cache_filter=["b"]) == [("RUN echo $V", CACHED), ("COPY b.txt /b", NO_CACHE)]
    # ...and leaves the registered context as it was.
    assert plain() == before
    (registered,) = ctx.client.list()
    assert (dict(registered.build_args), registered.target) == ({"V": "1"}, "")


def test_options_no_cache(make) -> None:
    ctx = make("FROM scratch AS a\nCOPY a.txt /a\nFROM scratch\nCOPY --from=a /a /a\nRUN echo\n", {"a.txt": "a\n"})
    ctx.built()
    report = ctx.report(no_cache=True)
    assert [outcome(s.status, s.cause) for s in report.steps] == [NO_CACHE] * 3
    assert not report.all_cached


def test_options_no_cache_filter_one_stage(make) -> None:
    """golden b2_no_cache_stage_list: only the named stage re-runs; a stage
    copying its (identical) files stays cached."""
    ctx = make(
        "FROM scratch AS a\nCOPY a.txt /a.txt\nFROM scratch AS b\nCOPY b.txt /b.txt\n"
        "FROM scratch\nCOPY --from=a /a.txt /a.txt\nCOPY --from=b /b.txt /b.txt\n",
        {"a.txt": "a\n", "b.txt": "b\n"},
    )
    ctx.built()
    report = ctx.report(no_cache_filter=["b"])
    assert [(s.stage, outcome(s.status, s.cause)) for s in report.steps] == [
        ("a", CACHED),
        ("b", NO_CACHE),
        ("stage-2", CACHED),
        ("stage-2", CACHED),
    ]
    assert [outcome(s.status, s.cause) for s in ctx.report(no_cache_filter=["a,1"]).steps] == [
        NO_CACHE,
        NO_CACHE,
        CACHED,
        CACHED,
    ]


# =====================================================================================
# 7. What a builder that kept its copy of the context may miss
# =====================================================================================


def test_blind_spot_xattr_only(make) -> None:
    """golden setxattr_user_foo: a fresh copy sees the xattr; a reused copy does not."""
    ctx = make("FROM scratch\nCOPY a.txt /a.txt\nRUN cat /a.txt\n", {"a.txt": "hello\n"})
    ctx.built()
    os.setxattr(ctx.root / "a.txt", "user.x", b"1")
    step = ctx.step("COPY a.txt /a.txt")
    assert (outcome(step.status, step.cause), changes(step)) == (
        INPUTS,
        [("a.txt", "XATTR", "extended attributes user.x")],
    )
    assert len(step.warnings) == 1 and REUSED_COPY_WARNING in step.warnings[0]
    assert "a.txt" in step.warnings[0] and "--no-cache-filter 0" in step.warnings[0]


def test_blind_spot_directory_chmod(make) -> None:
    """golden chmod_copied_root_dir."""
    ctx = make("FROM scratch\nCOPY src /src\n", {"src/a.txt": "a\n"})
    os.chmod(ctx.root / "src", 0o755)
    ctx.built()
    os.chmod(ctx.root / "src", 0o700)
    step = ctx.step("COPY src /src")
    assert (outcome(step.status, step.cause), changes(step)) == (INPUTS, [("src", "MODE", "mode 0755 -> 0700")])
    assert len(step.warnings) == 1 and REUSED_COPY_WARNING in step.warnings[0]


def test_blind_spot_same_size_edit_with_mtime_restored(make) -> None:
    """golden content_same_size: same size, mtime put back to before the build."""
    ctx = make("FROM scratch\nCOPY a.txt /a.txt\n", {"a.txt": "hello\n"})
    os.utime(ctx.root / "a.txt", (PAST, PAST))
    ctx.built()
    (ctx.root / "a.txt").write_text("HELLO\n")
    os.utime(ctx.root / "a.txt", (PAST, PAST))  # put back: size and mtime as at the build
    step = ctx.step("COPY a.txt /a.txt")
    assert (outcome(step.status, step.cause), changes(step)) == (INPUTS, [("a.txt", "CONTENT", "")])
    assert len(step.warnings) == 1 and REUSED_COPY_WARNING in step.warnings[0]


def _xattr(root: Path) -> None:
    os.setxattr(root / "src" / "sub" / "a.txt", "user.x", b"1")


def _subdir_chmod(root: Path) -> None:
    os.chmod(root / "src" / "sub", 0o700)


def _same_size_mtime_restored(root: Path) -> None:
    (root / "src" / "sub" / "a.txt").write_text("HELLO\n")
    os.utime(root / "src" / "sub" / "a.txt", (PAST, PAST))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_xattr, ("src/sub/a.txt", "XATTR", "extended attributes user.x")),
        (_subdir_chmod, ("src/sub", "MODE", "mode 0755 -> 0700")),
        (_same_size_mtime_restored, ("src/sub/a.txt", "CONTENT", "")),
    ],
    ids=["xattr", "subfolder-chmod", "same-size-mtime-restored"],
)
def test_blind_spot_inside_copied_folder(make, change, expected: tuple[str, str, str]) -> None:
    ctx = make("FROM scratch\nCOPY src /src\n", {"src/sub/a.txt": "hello\n"})
    os.chmod(ctx.root / "src" / "sub", 0o755)
    os.utime(ctx.root / "src" / "sub" / "a.txt", (PAST, PAST))
    ctx.built()
    change(ctx.root)
    step = ctx.step("COPY src /src")
    assert outcome(step.status, step.cause) == INPUTS
    assert changes(step) == [expected]
    assert len(step.warnings) == 1 and REUSED_COPY_WARNING in step.warnings[0]


def test_blind_spot_normal_edit_has_no_warning(make) -> None:
    ctx = make("FROM scratch\nCOPY a.txt /a.txt\n", {"a.txt": "hello\n"})
    ctx.built()
    (ctx.root / "a.txt").write_text("HELLO\n")  # same size, but a new mtime: any builder sees it
    step = ctx.step("COPY a.txt /a.txt")
    assert (outcome(step.status, step.cause), changes(step), list(step.warnings)) == (
        INPUTS,
        [("a.txt", "CONTENT", "")],
        [],
    )


# =====================================================================================
# 8. Explanations
# =====================================================================================


def test_explain_build_arg_change(make) -> None:
    ctx = make("FROM scratch\nARG V\nARG W=w\nRUN echo $V $W\n", build_args={"V": "1"})
    ctx.built()
    step = ctx.step("RUN echo $V $W", build_args={"V": "2"})
    assert (outcome(step.status, step.cause), values(step)) == (ARG_CHANGED, [("V", "1", "2", True, True)])
    assert "V" in step.explanation
    # Unset in the last build, set now.
    ctx.client.register(str(ctx.root), dockerfile=str(ctx.dockerfile_path), build_args={}, name="ctx")
    ctx.built()
    step = ctx.step("RUN echo $V $W", build_args={"V": "3"})
    assert values(step) == [("V", "", "3", False, True)]


def test_explain_build_arg_in_copy_source(make) -> None:
    """A COPY whose source is chosen by a build arg sees that arg."""
    ctx = make("FROM scratch\nARG V=a\nCOPY ${V}.txt /f.txt\n", {"a.txt": "a\n", "b.txt": "b\n"})
    ctx.built()
    step = ctx.step("COPY ${V}.txt /f.txt", build_args={"V": "b"})
    assert (outcome(step.status, step.cause), values(step)) == (ARG_CHANGED, [("V", "a", "b", True, True)])


def test_explain_instruction_change(make) -> None:
    ctx = make("FROM scratch\nRUN echo one\nRUN echo next\n")
    ctx.built()
    ctx.set_dockerfile("FROM scratch\nRUN echo two\nRUN echo next\n")
    report = ctx.report()
    first = report.steps[0]
    assert (outcome(first.status, first.cause), first.instruction, first.old_instruction) == (
        INSTRUCTION,
        "RUN echo two",
        "RUN echo one",
    )
    assert (outcome(report.steps[1].status, report.steps[1].cause), report.steps[1].old_instruction) == (UPSTREAM, "")


def test_explain_mode_change(make) -> None:
    """golden chmod_plus_x."""
    ctx = make("FROM scratch\nCOPY a.sh /a.sh\n", {"a.sh": "echo\n"})
    os.chmod(ctx.root / "a.sh", 0o644)
    ctx.built()
    os.chmod(ctx.root / "a.sh", 0o755)
    step = ctx.step("COPY a.sh /a.sh")
    assert (outcome(step.status, step.cause), changes(step), step.changed_paths_total) == (
        INPUTS,
        [("a.sh", "MODE", "mode 0644 -> 0755")],
        1,
    )
    assert not step.warnings  # a mode change is re-sent by any builder


def test_explain_added_and_removed(make) -> None:
    ctx = make("FROM scratch\nCOPY src /src\n", {"src/old.txt": "o\n", "src/same.txt": "s\n"})
    ctx.built()
    os.remove(ctx.root / "src" / "old.txt")
    ctx.write("src/new.txt", "n\n")
    step = ctx.step("COPY src /src")
    assert (outcome(step.status, step.cause), changes(step), step.changed_paths_total) == (
        INPUTS,
        [("src/new.txt", "ADDED", ""), ("src/old.txt", "REMOVED", "")],
        2,
    )


def test_explain_downstream_points_at_first_changed_step(make) -> None:
    ctx = make(
        "FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\nRUN echo one\nRUN echo two\n",
        {"a.txt": "a\n", "b.txt": "b\n"},
    )
    ctx.built()
    ctx.write("b.txt", "b changed\n")
    ctx.write("a.txt", "a changed\n")
    report = ctx.report()
    assert [(outcome(s.status, s.cause), s.upstream_step) for s in report.steps] == [
        (INPUTS, 0),
        (UPSTREAM, 0),
        (UPSTREAM, 0),
        (UPSTREAM, 0),
    ]
    assert "COPY a.txt /a.txt" in report.steps[3].explanation


def test_explain_change_inside_directory_source(make) -> None:
    """Inside a copied folder each change is named with its kind and detail,
    at any depth, as it is for a single-file source."""
    ctx = make(
        "FROM scratch\nCOPY src /src\n",
        {"src/a.txt": "a\n", "src/b.txt": "b\n", "src/empty": "", "src/sub/c.txt": "c\n", "src/deep/old.txt": "o\n"},
    )
    os.symlink("a.txt", ctx.root / "src" / "link")
    ctx.built()
    ctx.write("src/a.txt", "a changed\n")
    ctx.write("src/sub/c.txt", "c changed\n")
    os.remove(ctx.root / "src" / "deep" / "old.txt")
    ctx.write("src/deep/new.txt", "n\n")
    os.remove(ctx.root / "src" / "link")
    os.symlink("b.txt", ctx.root / "src" / "link")
    mode = os.stat(ctx.root / "src" / "empty").st_mode & 0o7777
    os.remove(ctx.root / "src" / "empty")
    os.mkfifo(ctx.root / "src" / "empty", mode)
    os.chmod(ctx.root / "src" / "empty", mode)
    step = ctx.step("COPY src /src")
    assert outcome(step.status, step.cause) == INPUTS
    assert changes(step) == [
        ("src/a.txt", "CONTENT", "size 2 -> 10"),
        ("src/deep/new.txt", "ADDED", ""),
        ("src/deep/old.txt", "REMOVED", ""),
        ("src/empty", "TYPE", "file -> special file"),
        ("src/link", "SYMLINK_TARGET", "a.txt -> b.txt"),
        ("src/sub/c.txt", "CONTENT", "size 2 -> 10"),
    ]


def test_explain_equivalent_rewrite_then_file_change(make) -> None:
    ctx = make("FROM scratch\nCOPY a.txt /a.txt\n", {"a.txt": "a\n"})
    ctx.built()
    ctx.set_dockerfile("FROM scratch\nCOPY ./a.txt /a.txt\n")
    assert ctx.report().all_cached
    ctx.write("a.txt", "a changed\n")
    step = ctx.step("COPY ./a.txt /a.txt")
    assert (outcome(step.status, step.cause), changes(step)) == (INPUTS, [("a.txt", "CONTENT", "size 2 -> 10")])


@pytest.mark.parametrize("case", ["stage-not-built", "failed-before"])
def test_explain_step_missing_from_last_build(make, case: str) -> None:
    if case == "stage-not-built":
        ctx = make(
            "ARG BASE=one\nFROM scratch AS one\nCOPY a.txt /a\nFROM scratch AS two\nCOPY b.txt /b\n"
            "FROM ${BASE}\nRUN echo final\n",
            {"a.txt": "a\n", "b.txt": "b\n"},
        )
        ctx.built()
        step = ctx.step("COPY b.txt /b", build_args={"BASE": "two"})
    else:
        ctx = make("FROM scratch\nCOPY a.txt /a.txt\nCOPY missing.txt /m\n", {"a.txt": "a\n"})
        ctx.built()
        ctx.write("missing.txt", "here\n")
        step = ctx.step("COPY missing.txt /m")
    assert outcome(step.status, step.cause) == NEVER_BUILT


# -- multi-stage fidelity: what a COPY --from really reads (docs/rules.md section 9) ---------


def test_copy_from_known_down_to_the_file(make) -> None:
    """A COPY of a folder is known file by file: a change to build/d.log re-runs
    that COPY, not a COPY --from that selects /app/a.txt."""
    ctx = make(
        "FROM scratch AS build\nCOPY build /app/\n"
        "FROM scratch\nCOPY --from=build /app/a.txt /a.txt\nCOPY --from=build /app /all\n",
        {"build/a.txt": "a\n", "build/d.log": "log 1\n"},
    )
    ctx.built()
    ctx.write("build/d.log", "log 2\n")
    assert ctx.outcomes() == [
        ("COPY build /app/", INPUTS),
        ("COPY --from=build /app/a.txt /a.txt", CACHED),
        ("COPY --from=build /app /all", INPUTS),
    ]
    ctx.write("build/a.txt", "a changed\n")
    assert [o for _, o in ctx.outcomes()] == [INPUTS, INPUTS, UPSTREAM]


def test_copy_from_after_rerun_run_names_the_run(make) -> None:
    """The usual shape: COPY . then a RUN that builds, COPY --from of its
    output. Editing the README re-runs the RUN: the COPY --from is unknown,
    blamed on that RUN, never a confident "invalidated"."""
    ctx = make(
        "FROM scratch AS build\nCOPY . /src\nRUN mkdir -p /src/dist && cp /src/main.txt /src/dist/app\n"
        "FROM scratch\nCOPY --from=build /src/dist/app /bin/\nRUN cat /bin/app\n",
        {"main.txt": "main\n", "README.md": "read me\n"},
    )
    ctx.built()
    ctx.write("README.md", "read me again\n")
    report = ctx.report()
    assert [(s.instruction, outcome(s.status, s.cause), s.upstream_step) for s in report.steps] == [
        ("COPY . /src", INPUTS, 0),
        ("RUN mkdir -p /src/dist && cp /src/main.txt /src/dist/app", UPSTREAM, 0),
        ("COPY --from=build /src/dist/app /bin/", OUTPUT, 1),
        ("RUN cat /bin/app", OUTPUT, 2),
    ]
    assert "RUN mkdir -p /src/dist" in report.steps[2].explanation


def test_copy_from_known_change_after_the_last_run_is_sure(make) -> None:
    """A file written by a COPY after the last RUN is known: its change is a
    sure miss even when the RUN before it re-runs too."""
    ctx = make(
        "FROM scratch AS build\nCOPY b.txt /b.txt\nRUN cp /b.txt /c.txt\nCOPY a.txt /out/\n"
        "FROM scratch\nCOPY --from=build /out/a.txt /a.txt\n",
        {"a.txt": "a\n", "b.txt": "b\n"},
    )
    ctx.built()
    ctx.write("a.txt", "a changed\n")
    assert ctx.outcomes()[2:] == [("COPY a.txt /out/", INPUTS), ("COPY --from=build /out/a.txt /a.txt", INPUTS)]
    ctx.write("b.txt", "b changed\n")
    assert [o for _, o in ctx.outcomes()] == [INPUTS, UPSTREAM, UPSTREAM, INPUTS]
    # Only the RUN re-runs and the COPY after it writes the same file: a hit.
    ctx.write("a.txt", "a\n")
    assert [o for _, o in ctx.outcomes()] == [INPUTS, UPSTREAM, UPSTREAM, CACHED]


def test_copy_from_a_copy_of_run_output_is_unknown(make) -> None:
    """Output of a RUN copied on through a second stage stays unknown in the third."""
    ctx = make(
        "FROM scratch AS one\nCOPY a.txt /a.txt\nRUN cp /a.txt /o.txt\n"
        "FROM scratch AS two\nCOPY --from=one /o.txt /p/o.txt\nCOPY b.txt /p/b.txt\n"
        "FROM scratch\nCOPY --from=two /p/b.txt /b.txt\nCOPY --from=two /p /q\n",
        {"a.txt": "a\n", "b.txt": "b\n"},
    )
    ctx.built()
    ctx.write("a.txt", "a changed\n")
    # COPY b.txt runs on the unknown COPY --from; the final stage's first copy reads only b.txt.
    assert [o for _, o in ctx.outcomes()] == [INPUTS, UPSTREAM, OUTPUT, OUTPUT, CACHED, OUTPUT]


@pytest.mark.parametrize(
    "after, expected",
    [
        ({"DIR": "b"}, CACHED),  # same bytes, another folder: the same key
        ({"DIR": "c"}, ARG_CHANGED),  # other bytes
    ],
    ids=["same-bytes", "other-bytes"],
)
def test_copy_key_has_only_the_source_base_name(make, after: dict, expected: tuple[str, str]) -> None:
    """BuildKit's file operation keeps path.Base of each source in its key."""
    ctx = make(
        "FROM scratch\nARG DIR=a\nCOPY ${DIR}/x.txt /x.txt\n",
        {"a/x.txt": "x\n", "b/x.txt": "x\n", "c/x.txt": "other\n"},
    )
    ctx.built()
    assert ctx.outcomes(build_args=after) == [("COPY ${DIR}/x.txt /x.txt", expected)]


def test_copy_key_other_base_name_is_a_miss(make) -> None:
    ctx = make("FROM scratch\nCOPY a/x.txt /x.txt\n", {"a/x.txt": "x\n", "a/y.txt": "x\n"})
    ctx.built()
    ctx.set_dockerfile("FROM scratch\nCOPY a/y.txt /x.txt\n")
    assert ctx.outcomes() == [("COPY a/y.txt /x.txt", INSTRUCTION)]


def test_copy_key_same_file_from_context_or_stage(make) -> None:
    """`COPY backend/package.json ./` turned into `COPY --from=test
    /usr/local/app/package.json ./` with the same bytes: the same key."""
    test_stage = "FROM scratch AS test\nWORKDIR /usr/local/app\nCOPY backend/package.json ./\n"
    ctx = make(
        test_stage + "FROM scratch\nWORKDIR /app\nCOPY backend/package.json ./\n", {"backend/package.json": "{}\n"}
    )
    ctx.built()
    ctx.set_dockerfile(test_stage + "FROM scratch\nWORKDIR /app\nCOPY --from=test /usr/local/app/package.json ./\n")
    assert ctx.outcomes()[-1] == ("COPY --from=test /usr/local/app/package.json ./", CACHED)
    ctx.write("backend/package.json", '{"v": 2}\n')
    assert ctx.outcomes()[-1][1] != CACHED


@pytest.mark.parametrize(
    "after",
    ["COPY a/x.txt /y.txt", "COPY --chmod=600 a/x.txt /x.txt", "COPY --chown=1 a/x.txt /x.txt", "ADD a/x.txt /x.txt"],
)
def test_copy_key_keeps_dest_and_flags(make, after: str) -> None:
    ctx = make("FROM scratch\nCOPY a/x.txt /x.txt\n", {"a/x.txt": "x\n"})
    ctx.built()
    ctx.set_dockerfile(f"FROM scratch\n{after}\n")
    assert ctx.outcomes() == [(after, INSTRUCTION)]


def test_copy_link_with_chmod_is_not_rebased(make) -> None:
    """BuildKit's frontend merges a linked copy only without --chmod."""
    files = {"a.txt": "a\n", "s.sh": "echo\n"}
    ctx = make("FROM scratch\nCOPY a.txt /a.txt\nCOPY --link --chmod=755 s.sh /s.sh\n", files)
    ctx.built()
    ctx.write("a.txt", "a changed\n")
    assert [o for _, o in ctx.outcomes()] == [INPUTS, UPSTREAM]
    ctx.set_dockerfile("FROM scratch\nCOPY a.txt /a.txt\nCOPY --link s.sh /s.sh\n")
    ctx.write("a.txt", "a\n")
    ctx.built()
    ctx.write("a.txt", "a changed\n")
    assert [o for _, o in ctx.outcomes()] == [INPUTS, CACHED]


def test_copy_link_with_chmod_is_the_plain_copy(make) -> None:
    """Without the merge, `--link --chmod` builds the same graph as `--chmod` alone."""
    ctx = make("FROM scratch\nCOPY a.txt /a.txt\nCOPY --chmod=755 s.sh /s.sh\n", {"a.txt": "a\n", "s.sh": "e\n"})
    ctx.built()
    ctx.set_dockerfile("FROM scratch\nCOPY a.txt /a.txt\nCOPY --link --chmod=755 s.sh /s.sh\n")
    assert [o for _, o in ctx.outcomes()] == [CACHED, CACHED]


def test_copy_parents_double_star_matches_zero_folders(make) -> None:
    ctx = make(
        "FROM scratch\nCOPY --parents **/a.txt /txt/\n",
        {"a.txt": "top\n", "x/a.txt": "x\n", "x/y/a.txt": "y\n", "x/b.txt": "b\n"},
    )
    ctx.built()
    ctx.write("x/b.txt", "b changed\n")
    assert [o for _, o in ctx.outcomes()] == [CACHED]
    for path in ("a.txt", "x/y/a.txt"):
        ctx.write(path, "changed\n")
        assert [o for _, o in ctx.outcomes()] == [INPUTS], path


def test_copy_plain_double_star_is_one_folder(make) -> None:
    """Without --parents a wildcard is matched per path element (Go's path.Match):
    `**` is `*`, so the top-level file is not selected."""
    ctx = make("FROM scratch\nCOPY **/a.txt /txt/\n", {"a.txt": "top\n", "x/a.txt": "x\n"})
    ctx.built()
    ctx.write("a.txt", "changed\n")
    assert [o for _, o in ctx.outcomes()] == [CACHED]
    ctx.write("x/a.txt", "changed\n")
    assert [o for _, o in ctx.outcomes()] == [INPUTS]


def test_identical_steps_in_a_new_stage_are_cached(make) -> None:
    """BuildKit merges equal vertices: a stage added by a Dockerfile edit whose
    steps equal those of a built stage is served from the cache at once."""
    ctx = make("FROM scratch AS one\nCOPY a.txt /a.txt\nRUN cat /a.txt\n", {"a.txt": "a\n", "b.txt": "b\n"})
    ctx.built()
    ctx.set_dockerfile(
        "FROM scratch AS one\nCOPY a.txt /a.txt\nRUN cat /a.txt\n"
        "FROM scratch AS two\nCOPY a.txt /a.txt\nRUN cat /a.txt\nCOPY b.txt /b.txt\n"
        "FROM one\nCOPY --from=two /b.txt /b.txt\n"
    )
    report = ctx.report()
    assert [(s.stage, s.instruction, outcome(s.status, s.cause)) for s in report.steps] == [
        ("one", "COPY a.txt /a.txt", CACHED),
        ("one", "RUN cat /a.txt", CACHED),
        ("two", "COPY a.txt /a.txt", CACHED),
        ("two", "RUN cat /a.txt", CACHED),
        ("two", "COPY b.txt /b.txt", NEVER_BUILT),
        ("stage-2", "COPY --from=two /b.txt /b.txt", NEVER_BUILT),
    ]
    assert report.steps[0].key == report.steps[2].key and report.steps[1].key == report.steps[3].key


@pytest.mark.parametrize(
    "line, message",
    [
        ("COPY --frm=build /x /y", "unknown flag: --frm (did you mean from?)"),
        ("COPY --FROM=build /x /y", "unknown flag: --FROM"),
        ("RUN --mnt=type=cache,target=/c true", "unknown flag: --mnt (did you mean mount?)"),
        ("ADD --parents a.txt /y", "unknown flag: --parents"),
        ("WORKDIR --x /y", "unknown flag: --x"),
    ],
)
def test_unknown_flag_fails_like_buildkit(make, line: str, message: str) -> None:
    """BuildKit parses every instruction before it builds: an unknown flag, in
    any stage, fails the build with its line, not as a missing source."""
    ctx = make(f"FROM scratch AS build\nCOPY a.txt /x\nFROM scratch\n{line}\n", {"a.txt": "a\n"})
    (report,) = ctx.client.reports([ctx.ref], _options())
    assert (report.error, report.error_line) == (f"dockerfile parse error on line 4: {message}", 4)
    assert not report.steps


def test_wildcard_in_a_folder_nothing_sends_fails_the_build(make) -> None:
    """Found by the differential test: BuildKit sends only what the sources
    select, so `build/?.txt` matching nothing leaves no `build` folder at all
    and the build fails; another source sending something of `build` saves it."""
    ctx = make("FROM scratch\nCOPY build/?.txt /w/\n", {"build/c.md": "c\n"})
    step = ctx.step("COPY build/?.txt /w/")
    assert (outcome(step.status, step.cause), step.error) == (ERROR, "lstat /build: no such file or directory")
    ctx.set_dockerfile("FROM scratch\nCOPY build/?.txt /w/\nCOPY build/c.md /c.md\n")
    assert [o for _, o in ctx.outcomes()] == [NEVER_BUILT, NEVER_BUILT]
    ctx.set_dockerfile("FROM scratch\nCOPY nothing/?.txt /w/\nCOPY build /b\n")
    assert ctx.outcomes()[0][1] == ERROR


def test_workdir_on_scratch_runs_unless_the_next_step_runs(make) -> None:
    """Found by the differential test: BuildKit shows a WORKDIR with nothing
    before it run again when the step after it is cached (its result is not
    needed), and cached when the step after it runs. `all_cached` holds."""
    ctx = make("FROM scratch\nWORKDIR /w\nCOPY a.txt /a.txt\n", {"a.txt": "a\n"})
    ctx.built()
    report = ctx.report()
    assert [outcome(s.status, s.cause) for s in report.steps] == [
        outcome(pb.STEP_STATUS_INVALIDATED, pb.CAUSE_RUNS_ANYWAY),
        CACHED,
    ]
    assert report.all_cached
    ctx.write("a.txt", "a changed\n")
    assert [o for _, o in ctx.outcomes()] == [CACHED, INPUTS]


def test_copy_from_a_path_no_step_wrote_fails(make) -> None:
    """Found by the differential test: `COPY *.txt /w/` matching nothing makes
    no /w, and a COPY --from of /w fails (`"/w": not found`)."""
    ctx = make("FROM scratch AS one\nCOPY *.txt /w/\nFROM scratch\nCOPY --from=one /w /w\n", {"a.md": "a\n"})
    step = ctx.step("COPY --from=one /w /w")
    assert (outcome(step.status, step.cause), step.error) == (ERROR, '"/w": not found')
    ctx.write("a.txt", "a\n")
    assert [o for _, o in ctx.outcomes()] == [NEVER_BUILT, NEVER_BUILT]


def test_copy_chmod_hides_the_source_mode_from_a_later_copy_from(make) -> None:
    """Found by the differential test: under --chmod the copied file's mode is
    the flag's; a chmod of the source re-runs that COPY, not a COPY --from of its file."""
    ctx = make(
        "FROM scratch AS one\nCOPY --chmod=600 a.txt /m/\nFROM scratch\nCOPY --from=one /m/a.txt /a.txt\n",
        {"a.txt": "a\n"},
    )
    ctx.built()
    os.chmod(ctx.root / "a.txt", 0o600)
    assert [o for _, o in ctx.outcomes()] == [INPUTS, CACHED]


def test_copy_chmod_of_a_folder_hides_its_files_modes_from_a_later_copy_from(make) -> None:
    """Differential seed 4535, then checked on v0.32.2: `COPY --chmod=755 d /app/`
    re-runs after a chmod of a file in d, and `COPY --from` of /app stays cached."""
    ctx = make(
        "FROM scratch AS one\nCOPY --chmod=755 d /app/\nFROM scratch\nCOPY --from=one /app /x\n",
        {"d/f.txt": "f\n", "d/sub/g.txt": "g\n"},
    )
    ctx.built()
    os.chmod(ctx.root / "d" / "f.txt", 0o600)
    assert [o for _, o in ctx.outcomes()] == [INPUTS, CACHED]
    ctx.write("d/sub/g.txt", "g changed\n")
    assert [o for _, o in ctx.outcomes()] == [INPUTS, INPUTS]


def test_copy_chmod_to_a_path_a_run_may_have_made_a_folder_hides_the_source_mode(make) -> None:
    """Differential seed 1103: after a RUN the daemon cannot tell whether the
    destination is a folder, and knows the copied file as a whole: under
    --chmod, still without the source's own mode."""
    ctx = make(
        "FROM scratch AS base\nRUN setup\nFROM base AS one\nCOPY --chmod=755 x.json /f/3x.json\n"
        "FROM scratch\nCOPY --from=one /f/3x.json /final/\n",
        {"x.json": "x\n"},
    )
    ctx.built()
    os.chmod(ctx.root / "x.json", 0o755)
    assert [o for _, o in ctx.outcomes()] == [CACHED, INPUTS, CACHED]
    ctx.write("x.json", "x changed\n")
    assert [o for _, o in ctx.outcomes()] == [CACHED, INPUTS, INPUTS]


def test_two_folders_copied_into_one_the_later_files_replace_the_earlier(make) -> None:
    """Differential seeds 1263, 1284, 1293, 1859: a file of the first folder
    that the second also has is replaced; a change to it leaves the merged
    folder, and a COPY --from of it, as they were."""
    ctx = make(
        "FROM scratch AS st0\nCOPY app /ex/\nCOPY docs /ex/\nFROM scratch\nCOPY --from=st0 /ex /final/\n",
        {"app/main.go": "app\n", "app/d.log": "log\n", "docs/main.go": "docs\n", "docs/a.txt": "a\n"},
    )
    ctx.built()
    ctx.write("app/main.go", "app changed\n")
    assert [o for _, o in ctx.outcomes()] == [INPUTS, UPSTREAM, CACHED]
    ctx.write("app/d.log", "log changed\n")
    assert [o for _, o in ctx.outcomes()] == [INPUTS, UPSTREAM, INPUTS]


def test_copy_link_of_run_output_after_a_changed_step_is_unknown(make) -> None:
    """Found by the differential test: a linked COPY --from of a re-run RUN's
    output does not depend on the steps before it: unknown, not invalidated."""
    ctx = make(
        "FROM scratch AS base\nCOPY busybox /bin/busybox\n"
        "FROM base AS one\nCOPY a.txt /a.txt\nRUN echo same > /out.txt\n"
        "FROM scratch\nCOPY b.txt /b.txt\nCOPY --link --from=one /out.txt /out.txt\nCOPY c.txt /c.txt\n",
        {"busybox": "bb", "a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n"},
    )
    ctx.built()
    ctx.write("a.txt", "a changed\n")
    ctx.write("b.txt", "b changed\n")
    assert [o for _, o in ctx.outcomes()] == [CACHED, INPUTS, UPSTREAM, INPUTS, OUTPUT, UPSTREAM]


def test_copy_parents_matching_nothing_still_makes_the_destination(make) -> None:
    """Found by the differential test: `COPY --parents` copies the context root
    through a pattern, so its destination exists even when nothing matches."""
    ctx = make(
        "FROM scratch AS one\nCOPY --parents src/**/*.go /p/\nFROM scratch\nCOPY --from=one /p /p\n",
        {"src/b.txt": "b\n"},
    )
    assert [o for _, o in ctx.outcomes()] == [NEVER_BUILT, NEVER_BUILT]
    ctx.built()
    assert [o for _, o in ctx.outcomes()] == [CACHED, CACHED]


def test_copy_from_run_output_of_an_older_build_is_unknown(make) -> None:
    """Found by the differential test: a change reverted brings back an older
    build's RUN (cached), whose output a COPY --from after a changed step
    never met: BuildKit compares the files, so the answer is unknown."""
    ctx = make(
        "FROM scratch AS base\nCOPY busybox /bin/busybox\n"
        "FROM base AS one\nCOPY a.txt /a.txt\nRUN echo same > /out.txt\n"
        "FROM scratch\nCOPY b.txt /b.txt\nCOPY --from=one /out.txt /out.txt\n",
        {"busybox": "bb", "a.txt": "a\n", "b.txt": "b\n"},
    )
    ctx.built()
    ctx.write("a.txt", "a changed\n")
    ctx.write("b.txt", "b changed\n")
    ctx.built()
    ctx.write("a.txt", "a\n")  # the RUN of the first build, cached; b.txt as in the second
    assert [o for _, o in ctx.outcomes()] == [CACHED, CACHED, CACHED, CACHED, OUTPUT]


def test_workdir_on_scratch_read_by_another_stage_runs_unless_the_reader_runs(make) -> None:
    """Found by the differential test: a stage that is only `WORKDIR` on scratch,
    read by a COPY --from that is cached, is shown run again."""
    ctx = make("FROM scratch AS one\nWORKDIR /w\nFROM scratch\nCOPY --from=one / /all/\n", {"a.txt": "a\n"})
    ctx.built()
    assert [o for _, o in ctx.outcomes()] == [outcome(pb.STEP_STATUS_INVALIDATED, pb.CAUSE_RUNS_ANYWAY), CACHED]


def test_workdir_on_scratch_read_by_an_unknown_step_is_unknown(make) -> None:
    """Differential seeds 4399, 4420: when the step reading a WORKDIR-only stage
    is unknown (it runs on a COPY --from of a re-run RUN's output), whether
    BuildKit shows the WORKDIR run or cached is unknown too."""
    ctx = make(
        "FROM scratch AS base\nCOPY a.txt /a.txt\nRUN cp /a.txt /out.txt\n"
        "FROM scratch AS one\nWORKDIR /w\n"
        "FROM scratch\nCOPY --from=base /out.txt /out.txt\nCOPY --from=one / /all/\n",
        {"a.txt": "a\n"},
    )
    ctx.built()
    ctx.write("a.txt", "a changed\n")
    report = ctx.report()
    assert [outcome(s.status, s.cause) for s in report.steps] == [
        INPUTS,
        UPSTREAM,
        outcome(pb.STEP_STATUS_UNKNOWN, pb.CAUSE_RUNS_ANYWAY),
        OUTPUT,
        OUTPUT,
    ]


def test_copy_from_a_folder_where_a_later_copy_replaced_a_file(make) -> None:
    """Found by the differential test: a file a later COPY writes over is not
    in the folder any more; removing the first one changes nothing there."""
    ctx = make(
        "FROM scratch AS one\nCOPY b/* /w/\nCOPY a/* /w/\nFROM scratch\nCOPY --from=one /w /all/\n",
        {"a/x.json": "a\n", "b/x.json": "b\n", "b/t.txt": "t\n"},
    )
    ctx.built()
    (ctx.root / "b" / "x.json").unlink()
    assert [o for _, o in ctx.outcomes()] == [INPUTS, UPSTREAM, CACHED]


def test_wildcard_in_a_folder_a_double_star_pattern_searches_is_unknown(make) -> None:
    """Found by the differential test: with a `**` pattern of another source
    over the folder BuildKit sent it in some builds and not in others: unknown."""
    ctx = make(
        "FROM scratch\nCOPY --parents src/**/*.go /p/\nCOPY src/lib/*.md /w/\n",
        {"src/lib/d.log": "d\n", "src/a.go": "a\n"},
    )
    assert [o for _, o in ctx.outcomes()] == [NEVER_BUILT, outcome(pb.STEP_STATUS_UNKNOWN, pb.CAUSE_ERROR)]


@pytest.mark.parametrize(
    "other, fails",
    [
        ("COPY --parents **/a.txt /p/", outcome(pb.STEP_STATUS_UNKNOWN, pb.CAUSE_ERROR)),
        ("COPY --parents */a.txt /p/", ERROR),
        ("COPY */x.log /x/", NEVER_BUILT),
    ],
)
def test_wildcard_in_a_folder_another_pattern_looks_in(make, other: str, fails: tuple[str, str]) -> None:
    """Found by the differential test (seeds 81, 244, 362, 402, 507): a `**` of
    another source makes BuildKit send the folder at times (unknown); another
    wildcard sends a folder only with a match in it."""
    ctx = make(f"FROM scratch\n{other}\nCOPY src/*.md /w/\n", {"src/b.txt": "b\n", "src/x.log": "x\n"})
    assert ctx.outcomes()[1][1] == fails


def test_copy_from_the_root_of_an_empty_stage(make) -> None:
    ctx = make("FROM scratch AS one\nCOPY *.md /w/\nFROM scratch\nCOPY --from=one / /all/\n", {"a.txt": "a\n"})
    assert [o for _, o in ctx.outcomes()] == [NEVER_BUILT, NEVER_BUILT]


def test_empty_wildcard_in_a_folder_the_last_build_sent_does_not_fail(make) -> None:
    """Found by the differential test (seed 152): BuildKit keeps its copy of
    the context, so a folder the last build sent is still there; the step warns."""
    ctx = make(
        "FROM scratch\nARG DIR=src\nCOPY ${DIR}/s.txt /s/\nCOPY src/[ab].* /w/\n",
        {"src/s.txt": "s\n", "pkg/s.txt": "s\n"},
    )
    ctx.built()
    step = ctx.step("COPY src/[ab].* /w/", build_args={"DIR": "pkg"})
    assert outcome(step.status, step.cause) == CACHED and "lstat" in step.warnings[0]
