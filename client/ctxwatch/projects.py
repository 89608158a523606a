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
import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ctxwatch.client import CtxwatchError
from ctxwatch_api import paths
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

SOURCE, PROJECT, MEMBER, FILES = "ctxwatch.source", "ctxwatch.project", "ctxwatch.member", "ctxwatch.files"
# How the files were read, so that any later command can read them again the same way.
FOLDER, PROFILES = "ctxwatch.folder", "ctxwatch.profiles"
LABEL_OPTIONS = {SOURCE: "source", PROJECT: "project", MEMBER: "member", FILES: "files", FOLDER: "folder"}
LABEL_OPTIONS[PROFILES] = "profiles"
INLINE_FOLDER = "inline-dockerfiles"  # in the state folder: Dockerfiles given inline (dockerfile_inline)
PROFILE_SEPARATOR = ","  # in the PROFILES label (compose profile names have no comma)


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
    profiles: list[str] = field(default_factory=list)  # compose profiles enabled on the command line
    included: list[str] = field(default_factory=list)  # files read through compose's `include`
    # Skipped members the tool would build (not evaluated, a remote context): their answer is unknown.
    unknown: set[str] = field(default_factory=set)
    # Every member the files define, selected or not (None: only `complete` says what is gone).
    defined: set[str] | None = None

    @property
    def read_files(self) -> list[str]:
        """Every file the definition was read from: a change to any may change it."""
        return self.files + self.included

    @property
    def label(self) -> str:
        """How messages name the project: "compose shop"."""
        return f"{self.source} {self.project}"

    def labels(self, member: str) -> dict[str, str]:
        return {
            SOURCE: self.source,
            PROJECT: self.project,
            MEMBER: member,
            FILES: os.pathsep.join(self.files),
            FOLDER: self.folder,
            PROFILES: PROFILE_SEPARATOR.join(self.profiles),
        }


@dataclass
class Change:
    """What bringing a registration in line did: registered, updated, removed, unchanged or failed."""

    kind: str
    name: str
    member: str = ""  # the service or target; for a Dockerfile found by `discover`, its path
    detail: str = ""  # why it was removed or failed
    options: list[tuple[str, str, str]] = field(default_factory=list)  # (option, was, now) of an update
    source: str = ""  # "compose" or "bake" with the project's name; empty for a context of its own
    project: str = ""

    def line(self) -> str:
        where = f"{self.source} {self.project}: " if self.source else ""
        member = f" for {self.member}" if self.member else ""
        details = [f"{option} {was} -> {now}" for option, was, now in self.options]
        if self.detail:
            details.append(self.detail)
        return f"{where}{self.kind} {self.name!r}{member}" + (f" ({'; '.join(details)})" if details else "")


@dataclass
class Sync:
    """The project files a command read, and what bringing their registrations in line changed."""

    definitions: list[Definition] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    selected: list[Definition] = field(default_factory=list)  # the projects named by --compose/--bake

    @property
    def failed(self) -> list[Change]:
        """Registrations the files ask for that the daemon refused (e.g. a Dockerfile that does not exist)."""
        return [change for change in self.changes if change.kind == "failed"]

    @property
    def unknown(self) -> list[tuple[Definition, str]]:
        """(project, member) a selected project would build that cannot be answered: never taken as cached."""
        return [(d, member) for d in self.selected for member in sorted(d.unknown)]

    def add(self, definition: Definition, changes: list[Change], selected: bool = False) -> None:
        self.definitions.append(definition)
        if selected:
            self.selected.append(definition)
        self.changes += changes


def selection_options(add: bool = False) -> argparse.ArgumentParser:
    """--compose/--bake selections (with compose's -p and --profile), and --all except on `add`."""
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("monorepo selections")
    group.add_argument(
        "--compose",
        nargs="*",
        metavar="FILE|SERVICE",
        help="the services of compose files (default: compose.yaml or the like, here or above); "
        "their registrations are brought in line with the files first",
    )
    group.add_argument(
        "--bake",
        nargs="*",
        metavar="FILE|TARGET",
        help="the targets (or groups) of bake files (default: docker-bake.hcl and the like, here)",
    )
    group.add_argument(
        "--project-name",
        metavar="NAME",
        help="the project's name, the first part of its context names (compose: as `docker compose -p`; "
        "bake: default the folder's name)",
    )
    group.add_argument(
        "--profile", action="append", default=[], metavar="PROFILE", help="compose profile to enable; repeatable"
    )
    if not add:
        group.add_argument("--all", action="store_true", help="every registered context")
    return options


def wants_project(args: argparse.Namespace) -> bool:
    return getattr(args, "compose", None) is not None or getattr(args, "bake", None) is not None


def load_definition(args: argparse.Namespace) -> Definition:
    """The compose or bake definition a command line names (files and names relative to the current folder)."""
    if args.compose is not None and args.bake is not None:
        raise ValueError("give --compose or --bake, not both")
    if args.compose is not None:
        files, names = _files_and_names(args.compose, (".yaml", ".yml"))
        return load("compose", files, names, project_name=args.project_name or "", profiles=args.profile)
    files, names = _files_and_names(args.bake, (".hcl", ".json"))
    return load("bake", files, names, project_name=args.project_name or "")


def load(
    source: str,
    files: Sequence[str],
    names: Sequence[str],
    project_name: str = "",
    profiles: Sequence[str] = (),
    folder: str | None = None,
    every_member: bool = False,
) -> Definition:
    """Read a project's files as `docker compose` / `docker buildx bake` would, run in `folder`
    (default: the current folder), with this process's environment. `every_member`: all the
    files define (bake's default group may leave targets out; compose's default is all)."""
    cwd = Path(folder) if folder else None
    if source == "compose":
        from ctxwatch import compose

        project = compose.load_project(files, cwd=cwd, project_name=project_name, profiles=profiles, services=names)
        definition = compose_definition(project, complete=not names)
    else:
        from ctxwatch import bake

        definition = bake.definition(bake.load(files, names, cwd=cwd, every_target=every_member), project_name)
    definition.profiles = list(profiles)
    return definition


def reload(context: pb.Context) -> Definition:
    """Read again, whole, the files a project context was registered from, the way they were read then
    (same files, folder, project name and profiles; this process's environment)."""
    labels = context.labels
    files = [f for f in labels.get(FILES, "").split(os.pathsep) if f]
    profiles = [p for p in labels.get(PROFILES, "").split(PROFILE_SEPARATOR) if p]
    source, project = labels.get(SOURCE, ""), labels.get(PROJECT, "")
    folder = labels.get(FOLDER) or (os.path.dirname(files[0]) if files else None)
    return load(source, files, [], project, profiles, folder, every_member=True)


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
        included=project.included,
        unknown=project.unknown,
    )


RENAME_HINT = "give this project another name with --project-name, or remove that context (ctxwatch rm)"


def _owner(context: pb.Context) -> str:
    """Who registered a context: "compose project shop" or "a context registered by hand"."""
    source, project = context.labels.get(SOURCE, ""), context.labels.get(PROJECT, "")
    return f"{source} project {project}" if source else "a context registered by hand"


def _files_and_names(items: Sequence[str], suffixes: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """`[FILE ...] [NAME ...]`: an existing file, or a name with a file suffix, is a file."""
    files = [item for item in items if item.endswith(suffixes) or os.path.isfile(item)]
    return files, [item for item in items if item not in files]


def sync(client, definition: Definition, state_dir: str | None, registered_only: bool = False) -> list[Change]:
    """Register what the definition says; update what differs; unregister
    what it no longer defines (read whole, or not among what the files define). `registered_only`:
    update and unregister, but register no member that is not registered yet. A name that another
    project or a plain registration holds is not taken over: that member fails, saying whose it is."""
    everything = {c.name: c for c in client.list()}
    registered = {
        name: c
        for name, c in everything.items()
        if c.labels.get(SOURCE) == definition.source and c.labels.get(PROJECT) == definition.project
    }
    changes = []
    change = functools.partial(Change, source=definition.source, project=definition.project)
    for reg in definition.registrations:
        if registered_only and reg.name not in registered:
            continue
        if reg.name in everything and reg.name not in registered:
            owner = _owner(everything[reg.name])
            changes.append(change("failed", reg.name, reg.member, f"the name is taken by {owner}; {RENAME_HINT}"))
            continue
        dockerfile = _inline_file(reg, state_dir) if reg.inline is not None else reg.dockerfile
        labels = definition.labels(reg.member)
        # One watch, one tree and one sync per query for the whole project, however many services.
        inside = definition.folder and os.path.commonpath([definition.folder, reg.path]) == definition.folder
        watch_root = definition.folder if inside and definition.folder != reg.path else ""
        wanted = _settings(reg.path, dockerfile, reg.build_args, reg.target, reg.build_contexts, reg.no_cache)
        wanted.update(_project_settings(reg.no_cache_filter, labels, watch_root))
        current = registered.get(reg.name)
        differences = option_changes(settings_of(current), wanted) if current is not None else []
        if current is not None and not differences:
            changes.append(change("unchanged", reg.name, reg.member))
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
            changes.append(change("failed", reg.name, reg.member, err.message))
            continue
        changes.append(change("updated" if current else "registered", reg.name, reg.member, options=differences))
    names = {reg.name for reg in definition.registrations}
    for name, context in sorted(registered.items()):
        member = context.labels.get(MEMBER, "")
        gone = definition.complete or (definition.defined is not None and member not in definition.defined)
        if name not in names and gone:
            client.unregister(pb.ContextRef(name=name))
            changes.append(change("removed", name, member, definition.skipped.get(member, "no longer defined")))
    return changes


def settings_of(context: pb.Context) -> dict[str, str]:
    """A registered context's settings, as `option_changes` compares them."""
    settings = _settings(
        context.path,
        context.dockerfile,
        dict(context.build_args),
        context.target,
        dict(context.build_contexts),
        context.no_cache,
    )
    settings.update(_project_settings(list(context.no_cache_filter), dict(context.labels), context.watch_root))
    return settings


def _settings(
    path: str, dockerfile: str, build_args: dict, target: str, build_contexts: dict, no_cache: bool
) -> dict[str, str]:
    settings = {"context": path, "dockerfile": dockerfile, "target": target or "(last stage)"}
    settings.update({f"build arg {key}": value for key, value in build_args.items()})
    settings.update({f"named context {key}": value for key, value in build_contexts.items()})
    if no_cache:
        settings["no-cache"] = "true"
    return settings


def _project_settings(no_cache_filter: list[str], labels: dict[str, str], watch_root: str) -> dict[str, str]:
    settings = {LABEL_OPTIONS.get(key, f"label {key}"): value for key, value in labels.items() if value}
    if no_cache_filter:
        settings["no-cache-filter"] = ",".join(no_cache_filter)
    if watch_root:
        settings["watched from"] = watch_root
    return settings


def option_changes(before: dict[str, str], after: dict[str, str]) -> list[tuple[str, str, str]]:
    """(option, was, now) for each setting that differs; "(unset)" where one side has none."""
    return [
        (option, before.get(option, "(unset)"), after.get(option, "(unset)"))
        for option in sorted(set(before) | set(after), key=_option_order)
        if before.get(option) != after.get(option)
    ]


def _option_order(option: str) -> tuple[int, str]:
    # The order a reader expects: the context, its Dockerfile and target, then args, then the rest.
    for rank, prefix in enumerate(("context", "dockerfile", "target", "build arg ", "named context ")):
        if option.startswith(prefix):
            return rank, option
    return 9, option


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


def member_of(context: pb.Context) -> tuple[str, str]:
    """(source, member) of a context a project defines; ("", "") for others."""
    return context.labels.get(SOURCE, ""), context.labels.get(MEMBER, "")


def registered_of(contexts: Sequence[pb.Context], definition: Definition) -> list[pb.Context]:
    """The registered contexts of a project (all of them, or the members named)."""
    members = {reg.member for reg in definition.registrations} | set(definition.skipped)
    return [
        c
        for c in contexts
        if c.labels.get(SOURCE) == definition.source
        and c.labels.get(PROJECT) == definition.project
        and (definition.complete or c.labels.get(MEMBER) in members)
    ]
