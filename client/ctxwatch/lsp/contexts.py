"""Which build context a Dockerfile belongs to, and how to build it.

A Dockerfile opened in an editor is answered for the context that builds it:
the registered context naming it; else the build of a compose or bake file
that names it (the files `docker compose` and `docker buildx bake` would read
in the Dockerfile's folder or a folder above it, up to the repository root),
registered as `ctxwatch add --compose`/`--bake` registers them; else its
folder. What was registered is said in the editor's log.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterator

from ctxwatch import discover, projects
from ctxwatch.client import CtxwatchClient
from ctxwatch_api.v1 import ctxwatch_pb2 as pb


def is_dockerfile(path: str, language_id: str = "") -> bool:
    """A Dockerfile by its name (as `discover` finds them), or what the editor calls a dockerfile."""
    return language_id == "dockerfile" or discover.is_dockerfile(os.path.basename(path))


def find_context(client: CtxwatchClient, dockerfile: str, state_dir: str | None = None) -> tuple[pb.Context, list[str]]:
    """The context for `dockerfile` (a real path), and what was done to find
    it, for the log (nothing when a registered context names it)."""
    named = sorted((c for c in client.list() if c.dockerfile == dockerfile), key=lambda c: c.name)
    if named:
        return named[0], []
    notes: list[str] = []
    for definition, registration in _defining(dockerfile, notes):
        changes = projects.sync(client, definition, state_dir)
        notes += [change.line() for change in changes if change.kind != "unchanged"]
        context = next((c for c in client.list() if c.name == registration.name), None)
        if context is not None:
            notes.append(
                f"{dockerfile} is built by {definition.source} file {definition.files[0]} "
                f"({registration.member}): answering for context {context.name!r}"
            )
            return context, notes
    folder = os.path.dirname(dockerfile)
    context = client.register(folder, dockerfile=dockerfile).context
    notes.append(
        f"registered {folder} as context {context.name!r} for {dockerfile} "
        "(no registered context, compose or bake file names it)"
    )
    return context, notes


def _defining(dockerfile: str, notes: list[str]) -> Iterator[tuple[projects.Definition, projects.Registration]]:
    """The compose and bake builds of `dockerfile`, the nearest files first;
    files that cannot be read are said in `notes`."""
    definitions, problems = discover.read_definitions(_folders_up_to_repository(dockerfile), dict(os.environ))
    notes += [f"skipped: {problem}" for problem in problems]
    for definition in definitions:
        for registration in definition.registrations:
            if registration.inline is None and os.path.realpath(registration.dockerfile) == dockerfile:
                yield definition, registration


def _folders_up_to_repository(dockerfile: str) -> list[str]:
    """The Dockerfile's folder and those above it up to the repository's root
    (the nearest holding .git); outside a repository, its own folder only."""
    folder = os.path.dirname(dockerfile)
    folders = [folder]
    while not os.path.exists(os.path.join(folder, ".git")):
        parent = os.path.dirname(folder)
        if parent == folder:
            return folders[:1]  # no repository: its folder only
        folder = parent
        folders.append(folder)
    return folders


def build_command(context: pb.Context) -> list[str]:
    """The command that builds the context: through `ctxwatch build` when this
    ctxwatch has that wrapper (it records the build), else plain `docker build`."""
    docker = ["docker", "build", "-f", context.dockerfile]
    for key, value in sorted(context.build_args.items()):
        docker += ["--build-arg", f"{key}={value}"]
    if context.target:
        docker += ["--target", context.target]
    docker.append(context.path)
    if _has_build_wrapper():
        return [_ctxwatch_program(), "build", "--name", context.name, "--", *docker]
    return docker


def _has_build_wrapper() -> bool:
    from ctxwatch.cli import build_parser  # the CLI this server is part of

    # argparse has no public way to list a parser's commands.
    commands = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return any("build" in a.choices for a in commands)


def _ctxwatch_program() -> str:
    """This ctxwatch's own script when it runs as one, else the one on PATH."""
    argv0 = sys.argv[0]
    if os.path.basename(argv0) == "ctxwatch" and os.path.isfile(argv0):
        return os.path.abspath(argv0)
    return shutil.which("ctxwatch") or "ctxwatch"
