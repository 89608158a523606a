"""Build contexts from Compose files, read as `docker compose` reads them.

Follows the Compose specification for what decides a build: the default
file lookup (and its override file), several `-f` files merged, `include`,
`.env` and `${VAR}` interpolation, `profiles`, and each service's `build:`
(string or mapping: context, dockerfile, dockerfile_inline, args, target,
no_cache, additional_contexts). YAML is parsed by PyYAML (safe loader).

Compose is evaluated here, in the client, not in the daemon: `${VAR}` takes
its value from the caller's environment, which the daemon (started once,
perhaps by systemd) does not share. The daemon stores what it resolved to.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDE_FILES = {
    "compose.yaml": "compose.override.yaml",
    "compose.yml": "compose.override.yml",
    "docker-compose.yaml": "docker-compose.override.yaml",
    "docker-compose.yml": "docker-compose.override.yml",
}
REMOTE = re.compile(r"^(https?://|git@|git://|ssh://|github\.com/)|\.git(#.*)?$")
NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class ComposeError(ValueError):
    """A compose file that docker compose would refuse; the message names the file and the place."""


@dataclass
class Service:
    """What one service's `build:` resolves to."""

    service: str
    context: str  # absolute folder (or a remote URL: then it is skipped)
    dockerfile: str  # absolute path; for dockerfile_inline, where the text is kept
    dockerfile_inline: str | None = None
    args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    additional_contexts: dict[str, str] = field(default_factory=dict)
    profiles: tuple[str, ...] = ()


@dataclass
class Project:
    name: str
    directory: str
    files: list[str]
    services: dict[str, Service]  # the services that have a build section and are enabled
    skipped: dict[str, str]  # service -> why it is not registered
    warnings: list[str] = field(default_factory=list)
    included: list[str] = field(default_factory=list)  # files read through `include`
    unknown: set[str] = field(default_factory=set)  # skipped services compose would build: no answer for them

    def context_name(self, service: str) -> str:
        return f"{self.name}-{service}"


def find_files(cwd: Path, environ: Mapping[str, str]) -> list[Path]:
    """`docker compose`'s lookup without -f: COMPOSE_FILE, else the first
    default file in the folder or the nearest parent, with its override file."""
    if environ.get("COMPOSE_FILE"):
        separator = environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
        return [cwd / part for part in environ["COMPOSE_FILE"].split(separator) if part]
    for folder in [cwd, *cwd.parents]:
        for name in DEFAULT_FILES:
            if (folder / name).is_file():
                override = folder / OVERRIDE_FILES[name]
                return [folder / name] + ([override] if override.is_file() else [])
    raise ComposeError(f"no compose file found in {cwd} or its parents (looked for {', '.join(DEFAULT_FILES)})")


def load_project(
    files: Sequence[str | Path] = (),
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    project_name: str = "",
    profiles: Sequence[str] = (),
    services: Sequence[str] = (),
) -> Project:
    """The project `docker compose [-f FILE ...] [-p NAME] [--profile P ...]` would build.

    `services` named explicitly are enabled whatever their profiles (as on
    compose's command line); an unknown one is an error."""
    cwd = Path(os.path.abspath(cwd or os.getcwd()))
    environ = dict(os.environ if environ is None else environ)
    paths = [Path(os.path.abspath(cwd / f)) for f in files] if files else find_files(cwd, environ)
    directory = paths[0].parent
    env = {**read_env_file(directory / ".env", environ), **environ}  # the shell wins over .env
    if not files and env.get("COMPOSE_FILE") and not environ.get("COMPOSE_FILE"):
        paths = find_files(cwd, env)
    warnings: list[str] = []
    merged: dict = {}
    read: list[str] = []
    for path in paths:
        merged = merge(merged, _load_with_includes(path, directory, env, warnings, set(), read))
    name = project_name or env.get("COMPOSE_PROJECT_NAME") or merged.get("name") or directory.name
    name = normalize_project_name(str(name))
    if not name:
        raise ComposeError(f"{paths[0]}: the project name {directory.name!r} has no usable characters (use -p)")
    active = set(profiles) or {p for p in env.get("COMPOSE_PROFILES", "").split(",") if p}
    declared = merged.get("services") or {}
    unknown = [s for s in services if s not in declared]
    if unknown:
        raise ComposeError(f"no such service: {', '.join(unknown)} (services: {', '.join(sorted(declared))})")
    project = Project(name, str(directory), [str(p) for p in paths], {}, {}, warnings)
    project.included = [f for f in read if f not in project.files]
    for service, definition in sorted(declared.items()):
        if services and service not in services:
            continue
        _add_service(project, service, definition or {}, active, env, explicit=service in services)
    return project


def _add_service(
    project: Project, service: str, definition: dict, active: set[str], env: Mapping[str, str], explicit: bool
) -> None:
    if "extends" in definition:
        project.skipped[service] = "uses `extends`, which is not evaluated"
        project.unknown.add(service)
        return
    build = definition.get("build")
    if build is None:
        project.skipped[service] = "no build section (image only)"
        return
    service_profiles = tuple(definition.get("profiles") or ())
    if service_profiles and not explicit and not active & set(service_profiles):
        project.skipped[service] = f"profile not enabled ({', '.join(service_profiles)})"
        return
    build = {"context": build} if isinstance(build, str) else dict(build)
    origin = build.pop("__dir__", project.directory)
    context = str(build.get("context") or ".")
    if REMOTE.search(context):
        project.skipped[service] = f"remote build context {context} (not watched)"
        project.unknown.add(service)
        return
    context = os.path.normpath(os.path.join(origin, os.path.expanduser(context)))
    inline = build.get("dockerfile_inline")
    dockerfile = os.path.normpath(os.path.join(context, str(build.get("dockerfile") or "Dockerfile")))
    project.services[service] = Service(
        service=service,
        context=context,
        dockerfile=dockerfile,
        dockerfile_inline=None if inline is None else str(inline),
        args=_args(build.get("args"), env, service),
        target=str(build.get("target") or ""),
        no_cache=bool(build.get("no_cache")),
        additional_contexts={
            key: _context_value(value, origin, project.name)
            for key, value in _mapping(build.get("additional_contexts"), f"services.{service}.build").items()
        },
        profiles=service_profiles,
    )


def _args(raw, env: Mapping[str, str], service: str) -> dict[str, str]:
    """Build args; one given without a value takes it from the environment,
    and is left out when the environment does not have it."""
    args = {}
    for key, given in _mapping(raw, f"services.{service}.build.args", keep_unset=True).items():
        value = env.get(key) if given is None else given
        if value is not None:
            args[key] = _scalar(value)
    return args


def _context_value(value, origin: str, project: str) -> str:
    value = str(value)
    if value.startswith("service:"):
        # Another service's image: what it holds is known once that service is built, not here.
        return f"docker-image://{project}-{value.removeprefix('service:')}"
    if "://" in value or REMOTE.search(value):
        return value
    return os.path.normpath(os.path.join(origin, os.path.expanduser(value)))


def _mapping(raw, where: str, keep_unset: bool = False) -> dict:
    """A compose "mapping or list": {K: V} or ["K=V", "K"]."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {str(k): v for k, v in raw.items()}
    if isinstance(raw, list):
        result: dict = {}
        for item in raw:
            key, sep, value = str(item).partition("=")
            if sep or keep_unset:
                result[key] = value if sep else None
        return result
    raise ComposeError(f"{where}: expected a mapping or a list, got {type(raw).__name__}")


def _scalar(value) -> str:
    """A YAML scalar as compose passes it on: booleans as true/false, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# -- files ----------------------------------------------------------------------------
def _load_with_includes(
    path: Path, directory: Path, env: dict, warnings: list[str], seen: set[Path], read: list[str]
) -> dict:
    """One file, its `include`s first; paths of included files stay relative to their own folder.
    Every file read is added to `read`."""
    if path in seen:
        raise ComposeError(f"{path}: included twice (an include cycle)")
    seen = seen | {path}
    read.append(str(path))
    data = _read_yaml(path)
    data = interpolate(data, env, f"{path}", warnings)
    result: dict = {}
    for item in data.pop("include", None) or []:
        spec = {"path": item} if isinstance(item, str) else dict(item)
        included_paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
        for included in included_paths:
            included_path = Path(os.path.normpath(directory / included))
            sub_dir = Path(os.path.normpath(directory / spec.get("project_directory", included_path.parent)))
            sub_env = {**read_env_file(sub_dir / ".env", env), **env}
            loaded = _load_with_includes(included_path, sub_dir, sub_env, warnings, seen, read)
            clash = set(loaded.get("services") or {}) & set(result.get("services") or {})
            if clash:
                raise ComposeError(f"{included_path}: services {', '.join(sorted(clash))} are defined twice")
            result = merge(result, loaded)
    for definition in (data.get("services") or {}).values():
        build = (definition or {}).get("build")
        if isinstance(build, str):
            definition["build"] = {"context": build}
        if isinstance(definition, dict) and isinstance(definition.get("build"), dict):
            definition["build"].setdefault("__dir__", str(directory))
    clash = set(data.get("services") or {}) & set(result.get("services") or {})
    if clash:
        raise ComposeError(f"{path}: services {', '.join(sorted(clash))} are also defined by an included file")
    return merge(result, data)


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as e:
        raise ComposeError(f"{path}: {e.strerror or e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ComposeError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ComposeError(f"{path}: the top level must be a mapping")
    services = data.get("services")
    if services is not None and not isinstance(services, dict):
        raise ComposeError(f"{path}: services must be a mapping")
    return data


def merge(base, override):
    """Compose's merge of several files: mappings merge key by key, a later
    scalar or list replaces; `args` and `additional_contexts` in list form
    merge as mappings. A build section's folder stays the first file's."""
    if isinstance(base, dict) and isinstance(override, dict):
        result = dict(base)
        for key, value in override.items():
            if key == "__dir__" and "__dir__" in base:
                continue
            if key in ("args", "additional_contexts") and key in base:
                result[key] = {**_mapping(base[key], key, True), **_mapping(value, key, True)}
            else:
                result[key] = merge(base.get(key), value) if key in base else value
        return result
    return override


def read_env_file(path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """A `.env` file as compose reads it: KEY=VALUE lines, `export` allowed,
    comments, single quotes literal, double quotes with escapes, ${VAR} expanded."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            raise ComposeError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if value[:1] == "'" and value.count("'") >= 2:
            values[key] = value[1 : value.index("'", 1)]
            continue
        if value[:1] == '"' and len(value) > 1:
            end = _closing_quote(value)
            inner = value[1:end].replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
            values[key] = substitute(inner, {**values, **environ}, f"{path}:{number}", [])
            continue
        value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
        values[key] = substitute(value, {**values, **environ}, f"{path}:{number}", [])
    return values


def _closing_quote(value: str) -> int:
    i = 1
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == '"':
            return i
        i += 1
    return len(value)


# -- interpolation -----------------------------------------------------------------------
def interpolate(data, env: Mapping[str, str], where: str, warnings: list[str]):
    """Every string value of a compose file interpolated (keys are not)."""
    if isinstance(data, dict):
        return {k: interpolate(v, env, f"{where}: {k}", warnings) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate(v, env, where, warnings) for v in data]
    if isinstance(data, str):
        return substitute(data, env, where, warnings)
    return data


def substitute(text: str, env: Mapping[str, str], where: str, warnings: list[str]) -> str:
    """`$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`,
    `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`; defaults may nest."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c != "$" or i + 1 >= len(text):
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing_brace(text, i + 2, where)
            out.append(_expression(text[i + 2 : end], env, where, warnings))
            i = end + 1
        else:
            match = re.match(NAME, text[i + 1 :])
            if match is None:
                out.append(c)
                i += 1
                continue
            out.append(_lookup(match.group(), env, where, warnings))
            i += 1 + match.end()
    return "".join(out)


def _closing_brace(text: str, start: int, where: str) -> int:
    depth = 1
    for j in range(start, len(text)):
        if text[j] == "{" and text[j - 1] == "$":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    raise ComposeError(f"{where}: unclosed ${{ in {text!r}")


def _expression(body: str, env: Mapping[str, str], where: str, warnings: list[str]) -> str:
    match = re.match(rf"({NAME})(:?[-?+])?(.*)$", body, re.S)
    if match is None or (match.group(2) is None and match.group(3)):
        raise ComposeError(f"{where}: invalid interpolation format ${{{body}}}")
    name, op, rest = match.groups()
    value = env.get(name)
    if op is None:
        return _lookup(name, env, where, warnings)
    empty_counts = op.startswith(":")  # with ':', an empty value counts as unset
    is_set = value is not None and (value != "" or not empty_counts)
    kind = op[-1]
    if kind == "+":
        return substitute(rest, env, where, warnings) if is_set else ""
    if value is not None and is_set:
        return value
    if kind == "-":
        return substitute(rest, env, where, warnings)
    message = substitute(rest, env, where, warnings) or f"{name} is not set"  # "?"
    raise ComposeError(f"{where}: required variable {name} is missing a value: {message}")


def _lookup(name: str, env: Mapping[str, str], where: str, warnings: list[str]) -> str:
    value = env.get(name)
    if value is None:
        warnings.append(f'{where}: the "{name}" variable is not set; defaulting to a blank string')
        return ""
    return value


def normalize_project_name(name: str) -> str:
    """compose-go's NormalizeProjectName: lowercase, only a-z 0-9 _ -, no leading _ or -."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")
