"""Compose files read as `docker compose config` reads them (no docker compose
here: the expectations are derived from the Compose specification and noted
where they rest on one of its rules)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ctxwatch import compose

DATA = Path(__file__).parent / "data" / "compose"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA / "shop", tmp_path / "shop"))


def build(project: compose.Project, service: str) -> dict:
    s = project.services[service]
    return {
        "context": s.context,
        "dockerfile": s.dockerfile,
        "inline": s.dockerfile_inline,
        "args": s.args,
        "target": s.target,
        "no_cache": s.no_cache,
        "contexts": s.additional_contexts,
    }


def test_awesome_compose_react_java_mysql(tmp_path: Path) -> None:
    root = Path(shutil.copytree(DATA / "react-java-mysql", tmp_path / "react-java-mysql"))
    project = compose.load_project(cwd=root, environ={})
    # Project name: the folder of the compose file; `build: backend` is a context relative to the file.
    assert project.name == "react-java-mysql"
    assert project.files == [str(root / "compose.yaml")]
    assert set(project.services) == {"backend", "frontend"}
    assert project.skipped == {"db": "no build section (image only)"}
    assert build(project, "backend") == {
        "context": str(root / "backend"),
        "dockerfile": str(root / "backend" / "Dockerfile"),
        "inline": None,
        "args": {},
        "target": "",
        "no_cache": False,
        "contexts": {},
    }
    assert build(project, "frontend")["target"] == "development"
    assert project.context_name("frontend") == "react-java-mysql-frontend"


def test_shop_with_override_include_env_file_and_profiles(shop: Path) -> None:
    project = compose.load_project(cwd=shop, environ={})
    assert project.name == "shop"  # name: ${PROJECT_NAME:-shop}
    assert project.files == [str(shop / "compose.yaml"), str(shop / "compose.override.yaml")]
    assert set(project.services) == {"api", "web", "inline", "linter"}
    assert project.skipped == {"db": "no build section (image only)", "debug": "profile not enabled (debug)"}
    assert build(project, "api") == {
        "context": str(shop / "services" / "api"),
        "dockerfile": str(shop / "services" / "api" / "docker" / "Dockerfile.api"),  # relative to the context
        "inline": None,
        # GO_VERSION from .env (quotes removed); RELEASE from the override file; COMMIT unset: left out.
        "args": {"GO_VERSION": "1.21", "RELEASE": "2.0"},
        "target": "runtime",
        "no_cache": False,
        # additional_contexts: relative to the project folder; image references as given.
        "contexts": {"shared": str(shop / "libs" / "shared"), "base": "docker-image://alpine:3.20"},
    }
    assert build(project, "web") == {
        "context": str(shop / "services" / "web"),
        "dockerfile": str(shop / "services" / "web" / "Dockerfile"),
        "inline": None,
        # List form; $API_PORT from .env; TOKEN unset: left out; $$ is a literal $.
        "args": {"NODE_ENV": "production", "API_URL": "http://api:8080", "PRICE": "$5"},
        "target": "prod",  # from the override file
        "no_cache": True,
        "contexts": {},
    }
    assert build(project, "inline")["inline"] == "FROM scratch\nCOPY libs/shared/ /shared/\n"
    assert build(project, "inline")["context"] == str(shop)
    # An included file's paths are relative to its own folder.
    assert build(project, "linter")["context"] == str(shop / "tools")
    assert build(project, "linter")["dockerfile"] == str(shop / "tools" / "Dockerfile.lint")


def test_the_shell_environment_wins_over_the_env_file(shop: Path) -> None:
    environ = {"GO_VERSION": "1.23", "TOKEN": "abc", "COMMIT": "c0ffee", "PROJECT_NAME": "My Shop!"}
    project = compose.load_project(cwd=shop, environ=environ)
    assert project.name == "myshop"  # normalized: lowercase, only [a-z0-9_-]
    assert build(project, "api")["args"] == {"GO_VERSION": "1.23", "RELEASE": "2.0", "COMMIT": "c0ffee"}
    assert build(project, "web")["args"]["TOKEN"] == "abc"
    assert compose.load_project(cwd=shop, environ={"COMPOSE_PROJECT_NAME": "ci"}).name == "ci"
    assert compose.load_project(cwd=shop, environ={}, project_name="p2").name == "p2"


def test_files_given_are_merged_without_the_default_override(shop: Path) -> None:
    project = compose.load_project(["compose.yaml"], cwd=shop, environ={})
    assert build(project, "api")["args"] == {"GO_VERSION": "1.21", "RELEASE": "dev"}  # ${RELEASE-dev}
    assert build(project, "web")["target"] == ""
    both = compose.load_project(["compose.yaml", "compose.override.yaml"], cwd=shop, environ={"RELEASE": ""})
    assert build(both, "api")["args"]["RELEASE"] == "2.0"
    # ${RELEASE-dev} keeps an empty value (no colon); ${GO_VERSION:-1.22} does not.
    alone = compose.load_project(["compose.yaml"], cwd=shop, environ={"RELEASE": "", "GO_VERSION": ""})
    assert build(alone, "api")["args"] == {"GO_VERSION": "1.22", "RELEASE": ""}


def test_profiles_and_named_services(shop: Path) -> None:
    with_debug = compose.load_project(cwd=shop, environ={}, profiles=["debug"])
    assert "debug" in with_debug.services
    assert "debug" in compose.load_project(cwd=shop, environ={"COMPOSE_PROFILES": "debug"}).services
    named = compose.load_project(cwd=shop, environ={}, services=["debug", "web"])
    assert set(named.services) == {"debug", "web"}  # a service named explicitly is enabled
    with pytest.raises(compose.ComposeError, match="no such service: nope"):
        compose.load_project(cwd=shop, environ={}, services=["nope"])


def test_required_variable_missing_names_the_file_and_the_message(shop: Path) -> None:
    (shop / ".env").write_text("API_PORT=1\n")
    with pytest.raises(compose.ComposeError, match=r"compose\.yaml.*NODE_ENV.*set NODE_ENV in \.env"):
        compose.load_project(cwd=shop, environ={})


def test_lookup_climbs_to_the_parent_and_honours_compose_file(shop: Path) -> None:
    project = compose.load_project(cwd=shop / "services" / "web", environ={})
    assert project.name == "shop" and "api" in project.services
    (shop / "other.yml").write_text("services:\n  one:\n    build: services/web\n")
    only = compose.load_project(cwd=shop, environ={"COMPOSE_FILE": "other.yml"})
    assert set(only.services) == {"one"}


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(compose.ComposeError, match="no compose file found"):
        compose.load_project(cwd=tmp_path, environ={})
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    build: [\n")
    with pytest.raises(compose.ComposeError, match=r"compose\.yaml: not valid YAML"):
        compose.load_project(cwd=tmp_path, environ={})
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    build:\n      args: 3\n")
    with pytest.raises(compose.ComposeError, match=r"services\.a\.build\.args: expected a mapping or a list"):
        compose.load_project(cwd=tmp_path, environ={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "a"),
        ("$A-x", "a-x"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET:-${A}b}", "ab"),
        ("$$A", "$A"),
        ("cost: $5", "cost: $5"),
    ],
)
def test_interpolation_forms(text: str, expected: str) -> None:
    assert compose.substitute(text, {"A": "a", "EMPTY": ""}, "here", []) == expected


def test_required_forms() -> None:
    with pytest.raises(compose.ComposeError, match="here: required variable X is missing a value: need x"):
        compose.substitute("${X:?need x}", {"X": ""}, "here", [])
    assert compose.substitute("${X?need x}", {"X": ""}, "here", []) == ""
    warnings: list[str] = []
    assert compose.substitute("${NOPE}", {}, "here", warnings) == ""
    assert warnings == ['here: the "NOPE" variable is not set; defaulting to a blank string']
