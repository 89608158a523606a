"""Who may import whom, read from the source (CONTRIBUTING.md draws the layers).

Only the daemon's gRPC adapters (server/, and local.py for `--no-daemon`)
know the wire format, the daemon never imports the command line, and the
shared API package imports neither side.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = {"ctxwatchd": REPO / "daemon", "ctxwatch": REPO / "client", "ctxwatch_api": REPO / "proto"}
WIRE = ("grpc", "grpc_health", "grpc_reflection", "google.protobuf", "ctxwatch_api.v1")
# The daemon speaks the wire only in its gRPC adapters and the in-process server of `--no-daemon`.
ADAPTERS = ("ctxwatchd.server", "ctxwatchd.local")


def modules() -> dict[str, Path]:
    """Every module of our packages, by dotted name (generated stubs left out)."""
    found = {}
    for package, top in PACKAGES.items():
        for path in sorted((top / package).rglob("*.py")):
            parts = path.relative_to(top).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if not name.startswith("ctxwatch_api.v1"):
                found[name] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """The modules `name` imports, relative imports resolved, lazy ones included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


ALL = modules()


def test_the_modules_are_found():
    assert {"ctxwatchd.engine", "ctxwatchd.cache.keys", "ctxwatch.cli", "ctxwatch_api.paths"} <= ALL.keys()


@pytest.mark.parametrize("name", [n for n in ALL if within(n, ("ctxwatchd",)) and not within(n, ADAPTERS)])
def test_only_the_adapters_know_the_wire_format(name):
    used = imports(name, ALL[name])
    shared = {m for m in used if m in ALL and within(m, ("ctxwatch_api",))}  # and through the shared package
    wire = {m for m in used if within(m, WIRE)} | {
        m for m in shared if any(within(w, WIRE) for w in imports(m, ALL[m]))
    }
    assert not wire, f"{name} imports {sorted(wire)}: convert to and from the wire in ctxwatchd.server.wire"


def test_the_adapters_are_found():
    assert {"ctxwatchd.server.wire", "ctxwatchd.server.service", "ctxwatchd.local"} <= ALL.keys()


@pytest.mark.parametrize("name", [n for n in ALL if within(n, ("ctxwatchd",))])
def test_the_daemon_never_imports_the_command_line(name):
    client = {m for m in imports(name, ALL[name]) if within(m, ("ctxwatch",))}
    assert not client, f"{name} imports {sorted(client)}: share it through ctxwatch_api"


@pytest.mark.parametrize("name", [n for n in ALL if within(n, ("ctxwatch_api",))])
def test_the_shared_package_imports_neither_side(name):
    sides = {m for m in imports(name, ALL[name]) if within(m, ("ctxwatch", "ctxwatchd"))}
    assert not sides, f"{name} imports {sorted(sides)}"


def test_the_command_line_reaches_the_daemon_only_for_no_daemon():
    users = {
        (name, m)
        for name, path in ALL.items()
        if within(name, ("ctxwatch",))
        for m in imports(name, path)
        if within(m, ("ctxwatchd",))
    }
    assert users <= {("ctxwatch.cli", "ctxwatchd.local"), ("ctxwatch.cli", "ctxwatchd.local.LocalServer")}, users
