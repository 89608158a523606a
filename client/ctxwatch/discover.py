"""`ctxwatch discover`: every Dockerfile under a folder, with the context it would get.

Dockerfiles are `Dockerfile`, `Containerfile`, `*.Dockerfile` and
`Dockerfile.*`. The walk skips `.git`, `node_modules` and what `.gitignore`
files exclude, with git's rules (a deeper file wins, `!` re-includes, a
folder pattern ends in `/`) as pathspec's GitIgnoreSpec implements them:
gitignore matching has enough corner cases that a maintained implementation
is worth more than a hand-written one. A Dockerfile that a compose or bake
file in the walk names gets that definition's context; the others get their
own folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from ctxwatch import bake, compose, projects

SKIPPED_FOLDERS = {".git", "node_modules"}
DOCKERFILE = re.compile(r"^(Dockerfile|Containerfile|.+\.Dockerfile|Dockerfile\..+)$")


@dataclass
class Found:
    dockerfile: str
    context: str
    name: str  # the context name it is (or would be) registered under
    defined_by: str = ""  # "compose FILE service S" / "bake FILE target T"; empty: its own folder
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""

    def as_json(self) -> dict:
        return {
            "dockerfile": self.dockerfile,
            "context": self.context,
            "name": self.name,
            "definedBy": self.defined_by,
            "buildArgs": self.build_args,
            "target": self.target,
        }


@dataclass
class Discovery:
    root: str
    found: list[Found]
    definitions: list[projects.Definition]  # compose and bake files met on the walk
    problems: list[str]  # files that could not be read, and why


def is_dockerfile(name: str) -> bool:
    return bool(DOCKERFILE.match(name)) and not name.endswith(".dockerignore")


def walk(root: str) -> tuple[list[str], list[str]]:
    """(Dockerfiles, folders) under `root` that git would not ignore, in walk order."""
    root = os.path.abspath(root)
    dockerfiles, folders = [], []
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []  # (folder, its .gitignore), outermost first
    for folder, subfolders, files in os.walk(root):
        specs = [(base, spec) for base, spec in specs if folder == base or folder.startswith(base + os.sep)]
        if ".gitignore" in files:
            try:
                with open(os.path.join(folder, ".gitignore"), encoding="utf-8", errors="surrogateescape") as f:
                    specs.append((folder, pathspec.GitIgnoreSpec.from_lines(f.read().splitlines())))
            except OSError:
                pass  # unreadable: git would not apply it either
        folders.append(folder)
        subfolders[:] = sorted(
            d for d in subfolders if d not in SKIPPED_FOLDERS and not _ignored(specs, os.path.join(folder, d), True)
        )
        for name in sorted(files):
            path = os.path.join(folder, name)
            if is_dockerfile(name) and not _ignored(specs, path, False):
                dockerfiles.append(path)
    return dockerfiles, folders


def _ignored(specs: list[tuple[str, pathspec.GitIgnoreSpec]], path: str, is_dir: bool) -> bool:
    """Git's answer: the deepest .gitignore with a matching pattern decides."""
    for base, spec in reversed(specs):
        rel = os.path.relpath(path, base).replace(os.sep, "/") + ("/" if is_dir else "")
        result = spec.check_file(rel)
        if result.include is not None:
            return result.include
    return False


def discover(root: str, environ: dict[str, str] | None = None) -> Discovery:
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise ValueError(f"{root} is not a folder")
    environ = dict(os.environ if environ is None else environ)
    dockerfiles, folders = walk(root)
    definitions, problems = read_definitions(folders, environ)
    by_dockerfile: dict[str, list[tuple[projects.Definition, projects.Registration]]] = {}
    for definition in definitions:
        for reg in definition.registrations:
            by_dockerfile.setdefault(reg.dockerfile, []).append((definition, reg))
    found = []
    for dockerfile in dockerfiles:
        named = by_dockerfile.get(dockerfile)
        if not named:
            found.append(Found(dockerfile, os.path.dirname(dockerfile), _folder_name(root, dockerfile)))
            continue
        for definition, reg in named:
            found.append(
                Found(
                    dockerfile,
                    reg.path,
                    reg.name,
                    f"{definition.source} {definition.files[0]} {_member_word(definition)} {reg.member}",
                    reg.build_args,
                    reg.target,
                )
            )
    return Discovery(root, found, definitions, problems)


def _member_word(definition: projects.Definition) -> str:
    return "service" if definition.source == "compose" else "target"


def read_definitions(folders: list[str], environ: dict[str, str]) -> tuple[list[projects.Definition], list[str]]:
    """The compose and bake files of each folder, read as their tools would read them there."""
    definitions, problems = [], []
    for folder in folders:
        names = set(os.listdir(folder))
        if names & set(compose.DEFAULT_FILES):
            try:
                project = compose.load_project(cwd=Path(folder), environ=environ)
                definitions.append(projects.compose_definition(project, complete=True))
            except (compose.ComposeError, OSError) as e:
                problems.append(str(e))
        if names & set(bake.DEFAULT_FILES):
            try:
                definitions.append(bake.definition(bake.load(cwd=Path(folder), environ=environ)))
            except (bake.BakeError, OSError) as e:
                problems.append(str(e))
    # A compose file another one includes is part of that project, not a project of its own.
    included = {path for definition in definitions for path in definition.included}
    return [d for d in definitions if not set(d.files) <= included], problems


def _folder_name(root: str, dockerfile: str) -> str:
    """A context name from the path: its folder below the root, and the
    Dockerfile's variant (api.Dockerfile, Dockerfile.dev) when it has one."""
    folder = os.path.relpath(os.path.dirname(dockerfile), root)
    base = os.path.basename(root) if folder == "." else folder.replace(os.sep, "-")
    name = os.path.basename(dockerfile)
    variant = ""
    if name.endswith(".Dockerfile"):
        variant = name.removesuffix(".Dockerfile")
    elif name.startswith(("Dockerfile.", "Containerfile.")):
        variant = name.split(".", 1)[1]
    return f"{base}-{variant}" if variant else base


def register(client, discovery: Discovery, state_dir: str | None) -> list[projects.Change]:
    """Register every Dockerfile found: a compose/bake file's builds as that
    file says (kept in line with it, see projects.py), the others at their folder."""
    changes = []
    for definition in discovery.definitions:
        changes += projects.sync(client, definition, state_dir)
    registered = {c.name: c for c in client.list()}
    for found in discovery.found:
        if found.defined_by:
            continue
        current = registered.get(found.name)
        if current is not None and current.path == found.context and current.dockerfile == found.dockerfile:
            changes.append(projects.Change("unchanged", found.name, found.dockerfile))
            continue
        response = client.register(found.context, found.dockerfile, name=found.name)
        changes.append(projects.Change("updated" if response.updated else "registered", found.name, found.dockerfile))
    return changes
