"""Contexts defined by a compose or bake file, kept registered as the file says.

A project's contexts carry labels (`ctxwatch.source`, `ctxwatch.project`,
`ctxwatch.member`, `ctxwatch.files`) so that a later command finds them again.
Each command that names a project (`add`, `status`, `check`, ... with
`--compose` or `--bake`) reads its files again first and brings the
registrations in line: a service or target added, changed or removed there
is registered, updated or unregistered, and the command says so. The files
are read here, not by the daemon, because their `${VAR}` values come from
the caller's environment (see compose.py).
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ctxwatch.client import CtxwatchError
from ctxwatch_api import paths
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

SOURCE, PROJECT, MEMBER, FILES = "ctxwatch.source", "ctxwatch.project", "ctxwatch.member", "ctxwatch.files"
INLINE_FOLDER = "inline-dockerfiles"  # in the state folder: Dockerfiles given inline (dockerfile_inline)


@dataclass
class Registration:
    """One context a project file defines."""

    name: str
    member: str  # the compose service or bake target
    path: str
    dockerfile: str
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    build_contexts: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    no_cache_filter: list[str] = field(default_factory=list)
    inline: str | None = None  # the Dockerfile's text when the file gives it inline


@dataclass
class Definition:
    """What a compose or bake file defines: its contexts, and what it leaves out and why."""

    source: str  # "compose" or "bake"
    project: str
    files: list[str]
    registrations: list[Registration]
    skipped: dict[str, str]  # member -> why it is not registered
    warnings: list[str]
    complete: bool  # every member was read (not a selection): registrations of others are stale
    folder: str = ""  # the project's folder: its contexts inside it are watched from there, as one tree

    def labels(self, member: str) -> dict[str, str]:
        return {SOURCE: self.source, PROJECT: self.project, MEMBER: member, FILES: os.pathsep.join(self.files)}


@dataclass
class Change:
    kind: str  # registered, updated, removed, unchanged, failed (detail: why)
    name: str
    member: str
    detail: str = ""

    def line(self, source: str) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{source}: {self.kind} {self.name!r} for {self.member}{detail}"


def selection_options(add: bool = False) -> argparse.ArgumentParser:
    """--compose/--bake selections (and on `add`, compose's -p and --profile)."""
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("monorepo selections")
    group.add_argument(
        "--compose",
        nargs="*",
        metavar="FILE|SERVICE",
        help="the services of compose files (default: compose.yaml or the like, here or above)",
    )
    group.add_argument(
        "--bake",
        nargs="*",
        metavar="FILE|TARGET",
        help="the targets (or groups) of bake files (default: docker-bake.hcl and the like)",
    )
    group.add_argument("--project-name", metavar="NAME", help="compose project name (as `docker compose -p`)")
    group.add_argument(
        "--profile", action="append", default=[], metavar="PROFILE", help="compose profile to enable; repeatable"
    )
    if not add:
        group.add_argument("--all", action="store_true", help="every registered context")
    return options


def wants_project(args: argparse.Namespace) -> bool:
    return getattr(args, "compose", None) is not None or getattr(args, "bake", None) is not None


def load_definition(args: argparse.Namespace) -> Definition:
    """The compose or bake definition a command line names."""
    if args.compose is not None and args.bake is not None:
        raise ValueError("give --compose or --bake, not both")
    if args.compose is not None:
        from ctxwatch import compose

        files, services = _files_and_names(args.compose, (".yaml", ".yml"))
        project = compose.load_project(
            files, project_name=args.project_name or "", profiles=args.profile, services=services
        )
        return compose_definition(project, complete=not services)
    from ctxwatch import bake

    files, targets = _files_and_names(args.bake, (".hcl", ".json"))
    return bake.definition(bake.load(files, targets), complete=not targets)


def compose_definition(project, complete: bool) -> Definition:
    registrations = []
    for service in project.services.values():
        registrations.append(
            Registration(
                name=project.context_name(service.service),
                member=service.service,
                path=service.context,
                dockerfile=service.dockerfile,
                build_args=service.args,
                target=service.target,
                build_contexts=service.additional_contexts,
                no_cache=service.no_cache,
                inline=service.dockerfile_inline,
            )
        )
    return Definition(
        "compose",
        project.name,
        project.files,
        registrations,
        project.skipped,
        project.warnings,
        complete,
        project.directory,
    )


def _files_and_names(items: Sequence[str], suffixes: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """`[FILE ...] [NAME ...]`: an existing file, or a name with a file suffix, is a file."""
    files = [item for item in items if item.endswith(suffixes) or os.path.isfile(item)]
    return files, [item for item in items if item not in files]


def sync(client, definition: Definition, state_dir: str | None) -> list[Change]:
    """Register what the definition says; update what differs; unregister
    what it no longer defines (only when it was read whole)."""
    registered = {
        c.name: c
        for c in client.list()
        if c.labels.get(SOURCE) == definition.source and c.labels.get(PROJECT) == definition.project
    }
    changes = []
    for reg in definition.registrations:
        dockerfile = _inline_file(reg, state_dir) if reg.inline is not None else reg.dockerfile
        labels = definition.labels(reg.member)
        # One watch, one tree and one sync per query for the whole project, however many services.
        inside = definition.folder and os.path.commonpath([definition.folder, reg.path]) == definition.folder
        watch_root = definition.folder if inside and definition.folder != reg.path else ""
        current = registered.get(reg.name)
        differences = _differences(current, reg, dockerfile, labels, watch_root) if current is not None else []
        if current is not None and not differences:
            changes.append(Change("unchanged", reg.name, reg.member))
            continue
        if current is not None and (current.path != reg.path or current.dockerfile != dockerfile):
            client.unregister(pb.ContextRef(name=reg.name))  # another folder: a new context
        try:
            client.register(
                reg.path,
                dockerfile,
                reg.build_args,
                reg.target,
                reg.name,
                build_contexts=reg.build_contexts,
                no_cache=reg.no_cache,
                no_cache_filter=reg.no_cache_filter,
                labels=labels,
                watch_root=watch_root,
            )
        except CtxwatchError as err:  # e.g. its Dockerfile does not exist: the others still count
            changes.append(Change("failed", reg.name, reg.member, err.message))
            continue
        changes.append(Change("updated" if current else "registered", reg.name, reg.member, ", ".join(differences)))
    if definition.complete:
        wanted = {reg.name for reg in definition.registrations}
        for name, context in sorted(registered.items()):
            if name not in wanted:
                client.unregister(pb.ContextRef(name=name))
                why = definition.skipped.get(context.labels.get(MEMBER, ""), "no longer defined")
                changes.append(Change("removed", name, context.labels.get(MEMBER, ""), why))
    return changes


def _differences(
    current: pb.Context, reg: Registration, dockerfile: str, labels: dict[str, str], watch_root: str
) -> list[str]:
    pairs = [
        ("context", current.path, reg.path),
        ("dockerfile", current.dockerfile, dockerfile),
        ("args", dict(current.build_args), reg.build_args),
        ("target", current.target, reg.target),
        ("named contexts", dict(current.build_contexts), reg.build_contexts),
        ("no-cache", current.no_cache, reg.no_cache),
        ("no-cache-filter", list(current.no_cache_filter), reg.no_cache_filter),
        ("files", dict(current.labels), labels),
        ("watched from", current.watch_root, watch_root),
    ]
    return [what for what, old, new in pairs if old != new]


def _inline_file(reg: Registration, state_dir: str | None) -> str:
    """Where an inline Dockerfile is kept so the daemon can read and watch it:
    rewritten only when its text changes (a rewrite would wake every watcher)."""
    folder = paths.resolve_state_dir(state_dir) / INLINE_FOLDER
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256(reg.path.encode()).hexdigest()[:12]
    path = folder / f"{reg.name}-{digest}.Dockerfile"
    data = (reg.inline or "").encode()
    if not path.exists() or path.read_bytes() != data:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return str(path)


def selected(client, args: argparse.Namespace) -> tuple[list[pb.ContextRef], list[Change], Definition | None]:
    """The contexts a --all / --compose / --bake command line selects (after
    bringing a project's registrations in line), or ([], [], None) for neither."""
    if getattr(args, "all", False):
        if wants_project(args):
            raise ValueError("give --all or a --compose/--bake selection, not both")
        return [pb.ContextRef(name=c.name) for c in client.list()], [], None
    if not wants_project(args):
        return [], [], None
    definition = load_definition(args)
    changes = sync(client, definition, args.state_dir)
    failed = {c.name for c in changes if c.kind == "failed"}
    refs = [pb.ContextRef(name=reg.name) for reg in definition.registrations if reg.name not in failed]
    if not refs:
        raise ValueError(f"{definition.source} files {', '.join(definition.files)} define no build to watch")
    return refs, changes, definition


def member_of(context: pb.Context) -> tuple[str, str]:
    """(source, member) of a context a project defines; ("", "") for others."""
    return context.labels.get(SOURCE, ""), context.labels.get(MEMBER, "")


def registered_refs(client, definition: Definition) -> list[pb.ContextRef]:
    """The registered contexts of a project (all of them, or the members named)."""
    members = {reg.member for reg in definition.registrations} | set(definition.skipped)
    return [
        pb.ContextRef(name=c.name)
        for c in client.list()
        if c.labels.get(SOURCE) == definition.source
        and c.labels.get(PROJECT) == definition.project
        and (definition.complete or c.labels.get(MEMBER) in members)
    ]
