"""Which build context a Dockerfile belongs to, and how to build it.

A Dockerfile opened in an editor is answered for the context that builds it:
the registered context naming it, else its folder (registered then, and the
editor's log says so).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from ctxwatch.client import CtxwatchClient
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

DOCKERFILE_NAMES = ("Dockerfile", "Containerfile")


def is_dockerfile(path: str, language_id: str = "") -> bool:
    """Dockerfile, Containerfile, *.Dockerfile, Dockerfile.*, or what the editor calls a dockerfile."""
    name = os.path.basename(path)
    return (
        language_id == "dockerfile"
        or name in DOCKERFILE_NAMES
        or name.endswith(".Dockerfile")
        or name.startswith(tuple(f"{n}." for n in DOCKERFILE_NAMES))
    )


def find_context(client: CtxwatchClient, dockerfile: str) -> tuple[pb.Context, str]:
    """The context for `dockerfile` (a real path), and what was done to find it ("" if it was registered)."""
    named = sorted((c for c in client.list() if c.dockerfile == dockerfile), key=lambda c: c.name)
    if named:
        return named[0], ""
    folder = os.path.dirname(dockerfile)
    context = client.register(folder, dockerfile=dockerfile).context
    return context, f"registered {folder} as context {context.name!r} for {dockerfile} (no registered context names it)"


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
