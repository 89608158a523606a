"""`ctxwatch build -- COMMAND...`: predict, run the real build, record it, compare.

The prediction is taken just before the build starts. The command runs with
`--progress=rawjson` added; its stdout passes through and its progress is
shown as one line per step as it finishes (errors with the step's last
output). Then the build is recorded with exactly its options (a failed one
with only the steps BuildKit completed) and the daemon compares the
prediction with what BuildKit did. The wrapper exits with the build's code.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from ctxwatch.client import CtxwatchClient, CtxwatchError, build_options
from ctxwatch_api import paths
from ctxwatch_api.progress import ProgressReader, Vertex, observed_steps, step_result
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

from .command import PROGRESS, BuildCommand

SOURCE = "ctxwatch build"
EXIT_NOT_STARTED = 127  # the build command cannot be run (as a shell says)


@dataclass
class Wrapped:
    """A wrapped build: its exit code, the prediction made before it, and the daemon's record of it."""

    returncode: int
    prediction: pb.Report | None = None
    recorded: pb.MarkBuiltResponse | None = None


def wrap(client: CtxwatchClient, command: BuildCommand, name: str | None = None, out: IO[str] = sys.stderr) -> Wrapped:
    """Predict, build, record, compare. The build runs whatever happens to
    ctxwatch: without a prediction it runs unwatched."""
    options = build_options(
        [f"{key}={value}" for key, value in command.build_args.items()],
        command.target,
        command.no_cache,
        command.no_cache_filter,
        build_contexts=[f"{key}={value}" for key, value in command.named_contexts.items()],
    )
    try:
        ref = pb.ContextRef(name=registered(client, command, name, out).name)
        [prediction] = client.reports([ref], options)
    except CtxwatchError as err:
        print(f"ctxwatch: cannot predict this build ({err.message}); running it unwatched", file=out)
        return Wrapped(run_unwatched(command.argv))
    records_before = buildx_records()
    returncode, reader = run_command(command.with_progress(), ProgressPrinter(out))
    if not reader.vertices():  # BuildKit reports a vertex for any build it starts: this was none
        if returncode not in (0, EXIT_NOT_STARTED) and _refused_progress(reader):
            print(
                f"ctxwatch: {command.argv[0]} refused {PROGRESS}: this build does not run on BuildKit (docker's "
                "legacy builder: install docker buildx to build with BuildKit); running it as typed, unwatched",
                file=out,
            )
            return Wrapped(run_unwatched(command.argv), prediction)
        if returncode != EXIT_NOT_STARTED:
            print("ctxwatch: not recorded: the build command reported no BuildKit step", file=out)
        return Wrapped(returncode, prediction)
    if prediction.error:
        print(f"ctxwatch: not recorded: {prediction.error}", file=out)
        return Wrapped(returncode, prediction)
    steps = reader.steps()
    run = pb.BuildRun(
        steps=[
            pb.ObservedStep(line=line, cached=r.cached, completed=r.completed, error=r.error)
            for line, r in observed_steps(steps, prediction.steps)
        ],
        failed=returncode != 0,
        prediction=prediction,
        command=shlex.join(command.argv),
        source=SOURCE,
        builder_ref=new_buildx_record(records_before, command),
    )
    try:
        return Wrapped(returncode, prediction, client.mark_built(ref, options, run))
    except CtxwatchError as err:
        print(f"ctxwatch: the build was not recorded: {err.message}", file=out)
        return Wrapped(returncode, prediction)


def _refused_progress(reader: ProgressReader) -> bool:
    """Whether the command's own words reject the progress option the wrapper added."""
    return any("-progress" in line for line in reader.other_lines)


def buildx_records() -> set[str]:
    """buildx's records of builds (`<builder>/<node>/<ref>`) as they are now."""
    refs = paths.buildx_dir() / "refs"
    return {
        str(path.relative_to(refs)) for path in refs.glob("*/*/*") if path.is_file() and path.parts[-3] != "__group__"
    }


def new_buildx_record(before: set[str], command: BuildCommand) -> str:
    """The record buildx wrote for this build (so the daemon does not learn it again), or ""."""
    refs = paths.buildx_dir() / "refs"
    for ref in sorted(buildx_records() - before):
        try:
            state = json.loads((refs / ref).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and os.path.realpath(state.get("LocalPath", "")) == str(command.context):
            return ref
    return ""


def run_unwatched(argv: Sequence[str]) -> int:
    """The build as the user typed it."""
    try:
        return subprocess.call(argv)
    except OSError as e:
        print(f"ctxwatch: cannot run {argv[0]}: {e.strerror or e}", file=sys.stderr)
        return EXIT_NOT_STARTED
    except KeyboardInterrupt:
        return 130


def registered(client: CtxwatchClient, command: BuildCommand, name: str | None, out: IO[str]) -> pb.Context:
    """The context this build builds; registered (with the build's args and target) when it is not yet."""
    path, dockerfile = str(command.context), str(command.dockerfile)
    for context in client.list():
        same_dockerfile = os.path.realpath(context.dockerfile) == os.path.realpath(dockerfile)
        if os.path.realpath(context.path) == path and same_dockerfile and name in (None, context.name):
            _say_when_options_differ(context, command, out)
            return context
    response = client.register(
        path,
        dockerfile,
        build_args=command.build_args,
        target=command.target or None,
        name=name,
        build_contexts=command.named_contexts,
    )
    print(f"ctxwatch: registered context {response.context.name!r} ({path})", file=out)
    return response.context


def _say_when_options_differ(context: pb.Context, command: BuildCommand, out: IO[str]) -> None:
    """`status` answers for the registered options: say when this build used others."""
    if (dict(context.build_args), context.target, dict(context.build_contexts)) == (
        command.build_args,
        command.target,
        command.named_contexts,
    ):
        return
    flags = [f"--build-arg {shlex.quote(f'{k}={v}')}" for k, v in sorted(command.build_args.items())]
    flags += [f"--target {shlex.quote(command.target)}"] if command.target else []
    flags += [f"--build-context {shlex.quote(f'{k}={v}')}" for k, v in sorted(command.named_contexts.items())]
    print(
        f"ctxwatch: note: this build's options differ from context {context.name!r}'s; `ctxwatch status` answers "
        f"for the context's (to follow this build: ctxwatch add {shlex.quote(context.path)} "
        f"--name {shlex.quote(context.name)} {' '.join(flags)})".rstrip(),
        file=out,
    )


def run_command(argv: Sequence[str], on_line: Callable[[ProgressReader, str], None]) -> tuple[int, ProgressReader]:
    """Run the build; its stdout passes through, its stderr (the progress) goes to `on_line`."""
    reader = ProgressReader()
    try:
        process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1)
    except OSError as e:
        print(f"ctxwatch: cannot run {argv[0]}: {e.strerror or e}", file=sys.stderr)
        return EXIT_NOT_STARTED, reader
    assert process.stderr is not None
    try:
        for line in process.stderr:
            on_line(reader, line)
        return process.wait(), reader
    except KeyboardInterrupt:  # the build got the same Ctrl-C: let it stop
        return process.wait(), reader


class ProgressPrinter:
    """BuildKit's progress in a compact form: one line per step when it finishes."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.done: set[str] = set()

    def __call__(self, reader: ProgressReader, line: str) -> None:
        updates = reader.feed(line)
        if not updates and not line.lstrip().startswith("{") and line.strip():
            print(line.rstrip("\n"), file=self.out, flush=True)  # the command's own words: warnings, errors
        for update in updates:
            digest = update.get("digest", "")
            vertex = next((v for v in reader.vertices() if v.digest == digest), None)
            if vertex is None or digest in self.done or not (vertex.completed or vertex.error):
                continue
            self.done.add(digest)
            self._show(reader, vertex)

    def _show(self, reader: ProgressReader, vertex: Vertex) -> None:
        step = step_result(vertex)
        if step is None and not vertex.error:
            return  # internal vertices (loading the context, exporting) only when they fail
        if vertex.error:
            outcome = f"ERROR: {vertex.error}"
        elif vertex.cached:
            outcome = "CACHED"
        else:
            outcome = f"DONE {_seconds(vertex.started, vertex.completed)}"
        print(f"{vertex.name}  {outcome}", file=self.out, flush=True)
        if vertex.error:
            for tail in reader.log_tail(vertex.digest):
                print(f"  | {tail}", file=self.out)


def _seconds(started: str, completed: str) -> str:
    try:
        return f"{(_time(completed) - _time(started)).total_seconds():.1f}s"
    except ValueError:
        return ""


def _time(text: str) -> datetime:
    # BuildKit writes nanoseconds; datetime takes microseconds.
    head, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction + '000000')[:6]}+00:00")
