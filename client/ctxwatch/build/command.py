"""What a build command line builds: `docker build`, `docker buildx build`, `buildx build`, `buildctl build`.

The wrapper reads the command's own options the way the command does (the
context folder, the Dockerfile, build args, target, no-cache settings) so the
prediction and the recorded build use exactly what BuildKit was given, and it
adds `--progress=rawjson` to learn what BuildKit did with each step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..client import named_context_value

# docker's and buildx's options that take a value (the others are switches).
# --provenance and --sbom take one only as --opt=value.
DOCKER_VALUE_OPTIONS = frozenset(
    {
        "--add-host",
        "--allow",
        "--annotation",
        "--attest",
        "--build-arg",
        "--build-context",
        "--builder",
        "--cache-from",
        "--cache-to",
        "--call",
        "--cgroup-parent",
        "--cpu-period",
        "--cpu-quota",
        "--cpu-shares",
        "-c",
        "--cpuset-cpus",
        "--cpuset-mems",
        "--file",
        "-f",
        "--iidfile",
        "--isolation",
        "--label",
        "--memory",
        "-m",
        "--memory-swap",
        "--metadata-file",
        "--network",
        "--no-cache-filter",
        "--output",
        "-o",
        "--platform",
        "--progress",
        "--secret",
        "--security-opt",
        "--shm-size",
        "--ssh",
        "--tag",
        "-t",
        "--target",
        "--ulimit",
    }
)
# docker's own options before the command word (`docker --context x build ...`).
DOCKER_GLOBAL_VALUE_OPTIONS = frozenset(
    {"--config", "--context", "-c", "--host", "-H", "--log-level", "-l", "--tlscacert", "--tlscert", "--tlskey"}
)
BUILDCTL_VALUE_OPTIONS = frozenset(
    {
        "--allow",
        "--export-cache",
        "--frontend",
        "--import-cache",
        "--local",
        "--metadata-file",
        "--oci-layout",
        "--opt",
        "--output",
        "-o",
        "--progress",
        "--ref-file",
        "--registry-auth-tlscontext",
        "--secret",
        "--source-policy-file",
        "--ssh",
        "--trace",
    }
)
BUILDCTL_GLOBAL_VALUE_OPTIONS = frozenset(
    {
        "--addr",
        "--tlsservername",
        "--tlscacert",
        "--tlscert",
        "--tlskey",
        "--tlsdir",
        "--timeout",
        "--log-format",
        "--wait",
    }
)
PROGRESS = "--progress=rawjson"


class CommandError(ValueError):
    """The command is not a build the wrapper can follow; the message says why."""


@dataclass
class BuildCommand:
    """A build command line and what it builds."""

    argv: list[str]
    kind: str  # "docker" (docker build, docker buildx build, buildx build) or "buildctl"
    context: Path
    dockerfile: Path
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    no_cache_filter: list[str] = field(default_factory=list)
    named_contexts: dict[str, str] = field(default_factory=dict)  # --build-context: a folder made absolute
    build_word: int = 0  # index of the `build` word: options are added after it

    def with_progress(self) -> list[str]:
        """The command with machine-readable progress (any --progress of the user's replaced)."""
        head, tail = self.argv[: self.build_word + 1], self.argv[self.build_word + 1 :]
        kept: list[str] = []
        skip = False
        for arg in tail:
            if skip:
                skip = False
            elif arg == "--progress":
                skip = True
            elif not arg.startswith("--progress="):
                kept.append(arg)
        return [*head, PROGRESS, *kept]


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None, cwd: str | None = None) -> BuildCommand:
    """The build `argv` runs; CommandError when it is not one the wrapper follows."""
    environ = os.environ if environ is None else environ
    cwd = cwd or os.getcwd()
    if not argv:
        raise CommandError("no build command given (e.g. ctxwatch build -- docker build .)")
    program = os.path.basename(argv[0])
    if program == "buildctl":
        word = _command_word(argv, 1, BUILDCTL_GLOBAL_VALUE_OPTIONS, ("build",))
        return _parse_buildctl(list(argv), word, cwd)
    if program == "docker":
        word = _command_word(argv, 1, DOCKER_GLOBAL_VALUE_OPTIONS, ("build", "buildx", "image", "builder"))
        if argv[word] in ("buildx", "image", "builder"):
            if word + 1 >= len(argv) or argv[word + 1] != "build":
                raise CommandError(f"`docker {argv[word]}` without `build`: only builds can be wrapped")
            word += 1
        return _parse_docker(list(argv), word, environ, cwd)
    if program in ("buildx", "docker-buildx"):
        word = _command_word(argv, 1, frozenset({"--builder"}), ("build", "b"))
        return _parse_docker(list(argv), word, environ, cwd)
    raise CommandError(
        f"{argv[0]}: not a build command ctxwatch knows "
        "(docker build, docker buildx build, buildx build, buildctl build)"
    )


def _command_word(argv: Sequence[str], start: int, value_options: frozenset[str], words: tuple[str, ...]) -> int:
    """The index of the command word, after the program's own options."""
    index = start
    while index < len(argv):
        arg = argv[index]
        if arg in words:
            return index
        if arg.startswith("-"):
            index += 2 if arg in value_options else 1
            continue
        break
    raise CommandError(f"{' '.join(argv[:2])}...: expected `{words[0]}` (only builds can be wrapped)")


def _options(args: Sequence[str], value_options: frozenset[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(option, value) pairs and positional arguments; a switch has the value ""."""
    pairs: list[tuple[str, str]] = []
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            positional += args[index:]
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
        elif "=" in arg and arg.startswith("--"):
            name, _, value = arg.partition("=")
            pairs.append((name, value))
        elif arg in value_options:
            if index >= len(args):
                raise CommandError(f"{arg} needs a value")
            pairs.append((arg, args[index]))
            index += 1
        elif len(arg) > 2 and not arg.startswith("--") and arg[:2] in value_options:
            pairs.append((arg[:2], arg[2:]))  # -fDockerfile, -tname
        else:
            pairs.append((arg, ""))
    return pairs, positional


def _parse_docker(argv: list[str], word: int, environ: Mapping[str, str], cwd: str) -> BuildCommand:
    pairs, positional = _options(argv[word + 1 :], DOCKER_VALUE_OPTIONS)
    if len(positional) != 1:
        raise CommandError(f"expected one context folder, got {len(positional)}: {' '.join(positional) or 'none'}")
    context = _local_context(positional[0], cwd)
    command = BuildCommand(argv, "docker", context, context / "Dockerfile", build_word=word)
    for name, value in pairs:
        if name in ("-f", "--file"):
            if value == "-" or not value:
                raise CommandError("-f -: a Dockerfile read from stdin cannot be watched; name a file")
            command.dockerfile = Path(cwd, value)
        elif name == "--build-arg":
            key, sep, given = value.partition("=")
            if sep:
                command.build_args[key] = given
            elif key in environ:  # --build-arg K: the value comes from the environment, when set
                command.build_args[key] = environ[key]
        elif name == "--target":
            command.target = value
        elif name == "--no-cache":
            command.no_cache = value.lower() not in ("false", "0")
        elif name == "--no-cache-filter":
            command.no_cache_filter += [stage for stage in value.split(",") if stage]
        elif name == "--build-context":
            key, _, source = value.partition("=")
            command.named_contexts[key] = named_context_value(source, cwd)
    return _checked(command)


def _parse_buildctl(argv: list[str], word: int, cwd: str) -> BuildCommand:
    pairs, positional = _options(argv[word + 1 :], BUILDCTL_VALUE_OPTIONS)
    if positional:
        raise CommandError(f"buildctl build takes no positional arguments: {' '.join(positional)}")
    locals_: dict[str, str] = {}
    opts: dict[str, str] = {}
    frontend = ""
    no_cache = False
    for name, value in pairs:
        if name == "--local":
            key, _, path = value.partition("=")
            locals_[key] = path
        elif name == "--opt":
            key, _, given = value.partition("=")
            opts[key] = given
        elif name == "--frontend":
            frontend = value
        elif name == "--no-cache":
            no_cache = True
    if frontend != "dockerfile.v0" and "source" not in opts:
        raise CommandError("buildctl build: only the Dockerfile frontend (--frontend dockerfile.v0) can be followed")
    if "context" not in locals_:
        raise CommandError("buildctl build: no --local context=DIR")
    context = _local_context(locals_["context"], cwd)
    dockerfile_dir = Path(cwd, locals_.get("dockerfile", locals_["context"]))
    command = BuildCommand(
        argv,
        "buildctl",
        context,
        dockerfile_dir / opts.get("filename", "Dockerfile"),
        target=opts.get("target", ""),
        no_cache=no_cache,
        build_word=word,
    )
    for key, value in opts.items():
        if key.startswith("build-arg:"):
            command.build_args[key.removeprefix("build-arg:")] = value
        elif key.startswith("context:"):
            named = _buildctl_named_context(key, value, locals_)
            command.named_contexts[key.removeprefix("context:")] = named_context_value(named, cwd)
        elif key == "no-cache":
            # The frontend's no-cache option: empty is every stage, else the stages named.
            stages = [stage for stage in value.split(",") if stage]
            if stages:
                command.no_cache_filter += stages
            else:
                command.no_cache = True
    return _checked(command)


def _buildctl_named_context(option: str, value: str, locals_: Mapping[str, str]) -> str:
    """A named context as --build-context gives it: buildctl's `local:NAME` is
    the folder of `--local NAME=DIR`."""
    if not value.startswith("local:"):
        return value
    local = value.removeprefix("local:")
    if local not in locals_:
        raise CommandError(f"--opt {option}={value} names no folder: add --local {local}=DIR")
    return locals_[local]


def _local_context(text: str, cwd: str) -> Path:
    if text == "-" or "://" in text or text.startswith("git@"):
        raise CommandError(f"{text}: ctxwatch follows builds of a local context folder, not a URL or stdin")
    path = Path(cwd, text).resolve()
    if not path.is_dir():
        raise CommandError(f"{text}: the build context is not a folder")
    return path


def _checked(command: BuildCommand) -> BuildCommand:
    command.dockerfile = Path(os.path.normpath(command.dockerfile))
    if not command.dockerfile.is_file():
        raise CommandError(f"{command.dockerfile}: no such Dockerfile")
    return command
