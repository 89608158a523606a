"""The package metadata tells the truth: every lower bound is pinned in tests/constraints-min.txt
(which .ci/run installs and tests), and the wheel carries what a user needs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONSTRAINTS = REPO / "tests" / "constraints-min.txt"


def _requirements() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *(req for reqs in project["optional-dependencies"].values() for req in reqs)]


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _lower_bound(requirement: str) -> tuple[str, str]:
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(?:>=|==)\s*([0-9][0-9A-Za-z.]*)\s*(?:,.*)?", requirement)
    assert match, f"{requirement!r} has no lower bound (>=X or ==X)"
    return match.group(1).lower(), match.group(2)


def _padded(version: str) -> tuple[int, ...]:
    parts = [int(part) for part in version.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def test_every_lower_bound_is_pinned_in_the_minimum_constraints() -> None:
    pins = _pins()
    for requirement in _requirements():
        name, bound = _lower_bound(requirement)
        assert name in pins, f"{name} is not pinned in {CONSTRAINTS.name}: add {name}=={bound}"
        assert _padded(pins[name]) == _padded(bound), (
            f"{CONSTRAINTS.name} pins {name}=={pins[name]}, the bound is {bound}"
        )


def test_nothing_is_pinned_that_is_not_required() -> None:
    required = {_lower_bound(requirement)[0] for requirement in _requirements()}
    assert set(_pins()) <= required


def test_the_stub_guards_match_the_declared_minimums() -> None:
    stubs = REPO / "proto" / "ctxwatch_api" / "v1"
    [grpc_version] = re.findall(r"GRPC_GENERATED_VERSION = '([0-9.]+)'", (stubs / "ctxwatch_pb2_grpc.py").read_text())
    [protobuf_version] = re.findall(r"# Protobuf Python Version: ([0-9.]+)", (stubs / "ctxwatch_pb2.py").read_text())
    bounds = dict(_lower_bound(requirement) for requirement in _requirements())
    assert bounds["grpcio"] == grpc_version
    assert bounds["protobuf"] == protobuf_version
