"""What clients send, as the engine takes it, and the checks of it: every
field a client can get wrong is named in the error, with what would be right.
(The registration and the context reference are the registry's own types.)"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .cache.report import Cause, StepStatus
from .errors import InvalidArgument, NotFound
from .limits import MAX_BUILD_ARG_BYTES, MAX_BUILD_ARGS

MAX_NAME_LENGTH = 128


@dataclass(frozen=True)
class BuildOptions:
    """Build-time options with `docker build`'s meaning: a what-if query, or how a build was run."""

    build_args: dict[str, str] = field(default_factory=dict)  # merged over the registered ones
    target: str = ""  # empty: the registered target
    no_cache: bool = False
    no_cache_filter: tuple[str, ...] = ()
    assume_remote_unchanged: bool = False  # the same as strict_remote=False
    dockerfile_content: str = ""  # an editor's unsaved text of the Dockerfile; empty: the file
    build_contexts: dict[str, str] = field(default_factory=dict)  # merged over the registered ones
    strict_remote: bool | None = None  # None: the context's setting, else the config file


@dataclass(frozen=True)
class ObservedStep:
    """BuildKit's result for one Dockerfile step, by the line its instruction starts on."""

    line: int
    cached: bool = False
    completed: bool = False
    error: str = ""


@dataclass(frozen=True)
class PredictedStep:
    """A step of the report taken just before a watched build, as far as the check compares it."""

    line: int
    instruction: str
    status: StepStatus
    cause: Cause
    explanation: str


@dataclass(frozen=True)
class BuildRun:
    """A real build ctxwatch watched (`ctxwatch build`, or learned from the builder)."""

    steps: tuple[ObservedStep, ...] = ()
    failed: bool = False  # only the steps BuildKit completed are recorded
    prediction: tuple[PredictedStep, ...] | None = None  # None: nothing to compare with
    command: str = ""
    source: str = ""  # how ctxwatch saw it
    builder_ref: str = ""  # buildx's record of it: not learned a second time


def check_name(name: str) -> None:
    """Names show up in tables and shell commands: printable, short, no '/'."""
    if not name.strip() or "/" in name or len(name) > MAX_NAME_LENGTH or name.startswith("-") or not name.isprintable():
        raise InvalidArgument(
            f"name: {name[:80]!r} is not a valid context name (printable, at most "
            f"{MAX_NAME_LENGTH} characters, no '/', not starting with '-')"
        )


def absolute_path(path: str, field_name: str) -> str:
    if not path:
        raise InvalidArgument(f"{field_name}: required (an absolute path on the daemon's machine)")
    if "\0" in path:
        raise InvalidArgument(f"{field_name}: contains a NUL byte")
    if not os.path.isabs(path):
        raise InvalidArgument(f"{field_name}: {path!r} is not absolute (paths are on the daemon's machine)")
    return path


def absolute_dir(path: str) -> str:
    path = os.path.realpath(absolute_path(path, "path"))  # events arrive under the real path
    if not os.path.exists(path):
        raise NotFound(f"path: {path} does not exist")
    if not os.path.isdir(path):
        raise InvalidArgument(f"path: {path} is not a folder (give the build context folder)")
    return path


def registrable_dir(path: str, private_folders: tuple[str, ...]) -> str:
    """A folder that may be registered as a build context: not "/" (it would
    take in every other watched folder and get cookie files written at the
    top of the file system), not the daemon's own folders (state, socket)."""
    path = absolute_dir(path)
    if path == "/":
        raise InvalidArgument("path: / cannot be a build context (give the folder of the project)")
    for folder in private_folders:
        if path == folder or path.startswith(folder.rstrip("/") + "/"):
            raise InvalidArgument(f"path: {path} is inside the daemon's own folder {folder}; it cannot be a context")
    return path


def validated_args(args: Mapping[str, str], field_name: str) -> dict[str, str]:
    if len(args) > MAX_BUILD_ARGS:
        raise InvalidArgument(f"{field_name}: {len(args)} build args; at most {MAX_BUILD_ARGS}")
    size = sum(
        len(k.encode("utf-8", "surrogateescape")) + len(v.encode("utf-8", "surrogateescape")) for k, v in args.items()
    )
    if size > MAX_BUILD_ARG_BYTES:
        raise InvalidArgument(f"{field_name}: {size} bytes of build args; at most {MAX_BUILD_ARG_BYTES}")
    for key in args:
        if not key or "=" in key or any(c.isspace() for c in key):
            raise InvalidArgument(f"{field_name}: {key!r} is not a valid build arg name")
    return dict(args)


def validated_build_contexts(contexts: Mapping[str, str], base: str, field_name: str) -> dict[str, str]:
    """Named contexts: a remote value (docker-image://, oci-layout://, a URL) is
    kept as given; a folder is made absolute against `base` and must exist."""
    from .dockerfile.plan import is_remote_context

    checked = {}
    for name, value in contexts.items():
        if not name or "=" in name or any(c.isspace() for c in name) or name != name.lower():
            raise InvalidArgument(f"{field_name}: {name!r} is not a valid context name (lowercase, no spaces or '=')")
        if not value or "\0" in value:
            raise InvalidArgument(
                f"{field_name}[{name}]: a folder or a docker-image://, oci-layout:// value is required"
            )
        if is_remote_context(value):
            checked[name] = value
            continue
        folder = os.path.realpath(os.path.join(base, value))
        if not os.path.isdir(folder):
            raise NotFound(f"{field_name}[{name}]: {folder} is not an existing folder")
        checked[name] = folder
    return checked
