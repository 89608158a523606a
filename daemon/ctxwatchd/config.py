"""The per-user config file: the daemon's defaults, read once as it starts.

`<user config dir>/ctxwatch/config.toml` (platformdirs), or the file named by
`ctxwatchd --config` or $CTXWATCH_CONFIG. A missing file means the defaults.
Read with the standard library's tomllib; a mistake (bad TOML, an unknown
key, a value of the wrong type) is an error naming the file, the key and,
for TOML syntax, the line: the daemon does not start on a config it cannot
follow.

    strict_remote = false      # steps on unpinned images and URLs: unknown instead of assumed
    max_builds = 100           # recorded builds kept per context
    log_level = "INFO"         # DEBUG, INFO, WARNING, ERROR
    answer_time_limit = 120.0  # seconds one context's answer may take (0: none); past it, an error for that context
    max_tree_entries = 4000000  # paths listed in one watched folder (memory); past it, an error for its contexts

    [builder]
    watch_buildx = true        # learn builds run without `ctxwatch build` from buildx's records
    buildx_config = ""         # buildx's folder; default $BUILDX_CONFIG, $DOCKER_CONFIG/buildx, ~/.docker/buildx
    buildx = "buildx"          # the program asked for the builder's history
    history_timeout = 10.0     # seconds to wait for the builder's history
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from ctxwatch_api import paths

from .budget import DEFAULT_MAX_TREE_ENTRIES, DEFAULT_TIME_LIMIT_S
from .cache.store import DEFAULT_MAX_BUILDS

CONFIG_ENV = "CTXWATCH_CONFIG"
CONFIG_NAME = "config.toml"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The Python types tomllib gives for each field type (a float setting takes an integer too).
TOML_TYPES: dict[str, type | tuple[type, ...]] = {"bool": bool, "int": int, "float": (int, float), "str": str}


class ConfigError(ValueError):
    """The config file cannot be followed; the message names the file and the key or line."""


@dataclass(frozen=True)
class BuilderSettings:
    """How the daemon learns builds run without the wrapper."""

    watch_buildx: bool = True
    buildx_config: str = ""
    buildx: str = "buildx"
    history_timeout: float = 10.0

    def buildx_dir(self) -> Path:
        """buildx's config folder: the setting, else where buildx looks ($BUILDX_CONFIG...)."""
        return paths.buildx_dir(self.buildx_config)


@dataclass(frozen=True)
class Config:
    path: Path | None = None  # the file read; None: no file, the defaults
    strict_remote: bool = False
    max_builds: int = DEFAULT_MAX_BUILDS
    log_level: str = "INFO"
    answer_time_limit: float = DEFAULT_TIME_LIMIT_S
    max_tree_entries: int = DEFAULT_MAX_TREE_ENTRIES
    builder: BuilderSettings = field(default_factory=BuilderSettings)


def default_path() -> Path:
    return platformdirs.user_config_path("ctxwatch", appauthor=False) / CONFIG_NAME


def resolve_path(flag: str | None = None) -> Path:
    """The config file from the flag, else $CTXWATCH_CONFIG, else the default."""
    chosen = flag or os.environ.get(CONFIG_ENV)
    return Path(chosen).expanduser().absolute() if chosen else default_path()


def load(path: Path) -> Config:
    """The config in `path`; the defaults when there is no such file."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        return Config()
    except PermissionError as e:
        if not os.path.exists(path):  # a folder on the way cannot be searched: no file to be seen
            return Config()
        raise ConfigError(f"{path}: cannot read it: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:  # its message ends with "(at line L, column C)"
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it: {e.strerror or e}") from None
    builder = data.pop("builder", {})
    if not isinstance(builder, dict):
        raise ConfigError(f"{path}: builder: expected a table ([builder]), got {_kind(builder)}")
    top = _values(path, "", data, Config, skip={"path", "builder"})
    if top.get("log_level", "INFO") not in LOG_LEVELS:
        raise ConfigError(f"{path}: log_level: expected one of {', '.join(LOG_LEVELS)}, got {top['log_level']!r}")
    if top.get("max_builds", 1) < 1:
        raise ConfigError(f"{path}: max_builds: must be at least 1, got {top['max_builds']}")
    if top.get("answer_time_limit", 0) < 0:
        raise ConfigError(f"{path}: answer_time_limit: must be 0 (no limit) or more, got {top['answer_time_limit']:g}")
    if top.get("max_tree_entries", 1) < 1:
        raise ConfigError(f"{path}: max_tree_entries: must be at least 1, got {top['max_tree_entries']}")
    settings = _values(path, "builder.", builder, BuilderSettings, skip=set())
    if settings.get("history_timeout", 1) <= 0:
        raise ConfigError(f"{path}: builder.history_timeout: must be more than 0")
    return Config(path=path, builder=BuilderSettings(**settings), **top)


def _values(path: Path, prefix: str, given: dict[str, Any], kind: type, skip: set[str]) -> dict[str, Any]:
    """`given` checked against the fields of `kind`: known keys, values of the field's type."""
    types = {f.name: f.type for f in fields(kind) if f.name not in skip}
    values: dict[str, Any] = {}
    for key, value in given.items():
        if key not in types:
            raise ConfigError(f"{path}: {prefix}{key}: unknown key (known: {', '.join(sorted(types))})")
        expected = TOML_TYPES[str(types[key])]
        # bool is an int in Python, but `max_builds = true` is a mistake.
        if not isinstance(value, expected) or (isinstance(value, bool) and types[key] != "bool"):
            raise ConfigError(f"{path}: {prefix}{key}: expected {types[key]}, got {_kind(value)} {value!r}")
        values[key] = float(given[key]) if types[key] == "float" else value
    return values


def _kind(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", dict: "a table"}.get(
        type(value), f"a {type(value).__name__}"
    )
