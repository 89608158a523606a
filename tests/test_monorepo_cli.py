"""The monorepo commands through the real CLI and a real daemon: compose and
bake projects registered and kept in line with their files, `affected`,
`discover`, several contexts per command, and one JSON shape per command."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.buildkit import installed
from support.cli import InProcessCli

DATA = Path(__file__).parent / "data"
CRON = "  cron:\n    build:\n      context: ./tools\n      dockerfile: Dockerfile.lint\n"
# Variables the test projects read: the test run's own environment must not decide their values.
PROJECT_VARIABLES = [
    *("PROJECT_NAME", "GO_VERSION", "RELEASE", "COMMIT", "API_PORT", "NODE_ENV", "TOKEN"),
    *("TAG", "REGISTRY", "NO_CACHE_API", "BUILDX_BAKE_FILE"),
    *("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_PATH_SEPARATOR"),
]


@pytest.fixture
def run(daemon, monkeypatch, capsys) -> InProcessCli:
    for name in PROJECT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return InProcessCli(daemon, monkeypatch, capsys)


def as_json(result) -> dict:
    document = json.loads(result.stdout)
    assert isinstance(document, dict)  # one shape: a top-level object
    return document


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA / "compose" / "shop", tmp_path / "shop"))


@pytest.fixture
def bake_shop(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA / "bake" / "shop", tmp_path / "bake-shop"))


def affected(run, root: Path, *selection: str) -> dict[str, dict]:
    document = as_json(run("affected", "--json", *selection, cwd=root))
    return {entry["member"] or entry["context"]: entry for entry in document["affected"]}


def answers(run, root: Path, *selection: str) -> dict[str, list]:
    """Each context's answer: its steps' keys and statuses."""
    document = as_json(run("status", "--json", *selection, cwd=root))
    return {r["context"]["name"]: [(s["key"], s["status"]) for s in r["steps"]] for r in document["reports"]}


def test_compose_project_registers_what_compose_config_gives(run, daemon, shop: Path) -> None:
    added = as_json(run("add", "--compose", "--json", cwd=shop))
    assert {c["context"]: c["change"] for c in added["changes"]} == {
        "shop-api": "registered",
        "shop-inline": "registered",
        "shop-linter": "registered",
        "shop-web": "registered",
    }
    [project] = added["projects"]
    assert (project["source"], project["project"]) == ("compose", "shop")
    assert project["files"] == [str(shop / "compose.yaml"), str(shop / "compose.override.yaml")]
    assert {s["member"] for s in project["skipped"]} == {"db", "debug"}
    contexts = {c["name"]: c for c in as_json(run("ls", "--json"))["contexts"]}
    # As `docker compose config` resolves them: .env, the override file, ${VAR} forms, list and map args.
    api = contexts["shop-api"]
    assert api["path"] == str(shop / "services" / "api")
    assert api["dockerfile"] == str(shop / "services" / "api" / "docker" / "Dockerfile.api")
    assert api["buildArgs"] == {"GO_VERSION": "1.21", "RELEASE": "2.0"}
    assert api["target"] == "runtime"
    assert api["buildContexts"] == {"shared": str(shop / "libs" / "shared"), "base": "docker-image://alpine:3.20"}
    assert api["labels"]["ctxwatch.member"] == "api"
    web = contexts["shop-web"]
    assert web["buildArgs"] == {"NODE_ENV": "production", "API_URL": "http://api:8080", "PRICE": "$5"}
    assert (web["target"], web["noCache"]) == ("prod", True)
    assert contexts["shop-linter"]["dockerfile"] == str(shop / "tools" / "Dockerfile.lint")
    assert Path(contexts["shop-inline"]["dockerfile"]).read_text() == "FROM scratch\nCOPY libs/shared/ /shared/\n"
    # One watch and one tree for the whole project (its services and its named context folder).
    assert [r.path for r in daemon.client.daemon_status().roots if r.path.startswith(str(shop))] == [str(shop)]
    again = as_json(run("add", "--compose", "--json", cwd=shop))
    assert {c["change"] for c in again["changes"]} == {"unchanged"}


def test_the_awesome_compose_project(run, tmp_path: Path) -> None:
    root = Path(shutil.copytree(DATA / "compose" / "react-java-mysql", tmp_path / "react-java-mysql"))
    text = run("add", "--compose", cwd=root).stdout
    assert "compose react-java-mysql: registered 'react-java-mysql-backend' for backend" in text
    assert "compose react-java-mysql: skipped db: no build section (image only)" in text
    contexts = {c["name"]: c for c in as_json(run("ls", "--json"))["contexts"]}
    assert set(contexts) == {"react-java-mysql-backend", "react-java-mysql-frontend"}
    frontend = contexts["react-java-mysql-frontend"]
    assert (frontend["path"], frontend["target"]) == (str(root / "frontend"), "development")
    assert contexts["react-java-mysql-backend"]["dockerfile"] == str(root / "backend" / "Dockerfile")


def test_one_service_s_file_changes_only_its_answer_and_affected_follows(run, shop: Path) -> None:
    run("add", "--compose", cwd=shop)
    run("built", "--compose", cwd=shop)
    # web is built with no_cache: it always rebuilds; nothing else does.
    assert set(affected(run, shop, "--compose")) == {"web"}
    assert affected(run, shop, "--compose")["web"]["explanation"]
    before = answers(run, shop, "--compose")
    (shop / "services" / "api" / "cmd" / "main.go").write_text("package main // changed\n")
    after = answers(run, shop, "--compose")
    assert {name for name in before if before[name] != after[name]} == {"shop-api"}
    assert set(affected(run, shop, "--compose")) == {"api", "web"}
    # The named context `shared` is read by api (COPY --from=shared) and by inline (COPY libs/shared/).
    run("built", "--compose", "api", cwd=shop)
    (shop / "libs" / "shared" / "version.txt").write_text("2.0\n")
    assert set(affected(run, shop, "--compose")) == {"api", "inline", "web"}
    # The names `docker compose build $(ctxwatch affected --compose)` takes, one a line.
    assert run("affected", "--compose", cwd=shop).stdout.split() == ["api", "inline", "web"]
    check = as_json(run("check", "--json", "--compose", cwd=shop, code=1))
    assert check["allCached"] is False and check["exitCode"] == 1
    by_name = {r["context"]["name"]: r for r in check["reports"]}
    assert by_name["shop-linter"]["allCached"] is True and by_name["shop-api"]["allCached"] is False


def test_compose_file_changes_update_the_registrations_and_say_so(run, shop: Path) -> None:
    run("add", "--compose", cwd=shop)
    compose = shop / "compose.yaml"
    text = compose.read_text()
    text = text.replace("  db:\n    image: postgres:16\n", CRON)
    text = text.replace("        GO_VERSION: ${GO_VERSION:-1.22}\n", "        GO_VERSION: '1.24'\n")
    compose.write_text(text)
    status = run("status", "--compose", cwd=shop)
    assert "compose shop: registered 'shop-cron' for cron" in status.stderr
    assert "compose shop: updated 'shop-api' for api (build arg GO_VERSION 1.21 -> 1.24)" in status.stderr
    # Removing a service unregisters it; the answer says so in JSON too.
    compose.write_text(compose.read_text().replace(CRON, ""))
    document = as_json(run("status", "--json", "--compose", cwd=shop))
    [removed] = [c for c in document["changes"] if c["change"] == "removed"]
    assert (removed["context"], removed["member"], removed["detail"]) == ("shop-cron", "cron", "no longer defined")
    assert {r["context"]["name"] for r in document["reports"]} == {"shop-api", "shop-web", "shop-inline", "shop-linter"}
    # The environment is the caller's: another value updates the registration.
    again = run("status", "--compose", cwd=shop, env={"RELEASE": "x", "NODE_ENV": "test"})
    assert "compose shop: updated 'shop-web' for web (build arg NODE_ENV production -> test)" in again.stderr


def test_commands_without_compose_read_the_project_files_again(run, shop: Path, tmp_path: Path) -> None:
    run("add", "--compose", cwd=shop)
    run("built", "--all", cwd=tmp_path)
    compose = shop / "compose.yaml"
    compose.write_text(compose.read_text().replace("      target: runtime\n", "      target: debug\n"))
    # Named, or --all, from anywhere: the answer is about the registration the files give now.
    check = run("check", "shop-api", cwd=tmp_path, code=1)
    assert "compose shop: updated 'shop-api' for api (target runtime -> debug)" in check.stderr
    text = compose.read_text().replace("  inline:\n", "  inline:\n    profiles: [extra]\n")
    compose.write_text(text)
    document = as_json(run("affected", "--json", "--all", cwd=tmp_path))
    assert [(c["change"], c["context"]) for c in document["changes"] if c["change"] != "unchanged"] == [
        ("removed", "shop-inline")
    ]
    assert {e["context"] for e in document["affected"]} == {"shop-api", "shop-web"}
    # A file that no longer reads is an error naming it, not an answer from stale registrations.
    compose.write_text("services: [\n")
    failed = run("status", "--all", cwd=tmp_path, code=2)
    assert "compose project shop" in failed.stderr and "compose.yaml" in failed.stderr
    assert "compose project shop" in run("status", cwd=tmp_path, code=2).stderr  # every context, by default


def test_watch_follows_the_compose_file(daemon, shop: Path) -> None:
    environ = {key: value for key, value in daemon.env().items() if key not in PROJECT_VARIABLES}
    cli = [sys.executable, "-u", "-m", "ctxwatch.cli", "--no-spawn"]
    subprocess.run([*cli, "add", "--compose"], cwd=shop, env=environ, check=True, capture_output=True)
    watcher = subprocess.Popen(
        [*cli, "watch", "--compose", "--json"],
        cwd=shop,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(json.loads(line)) for line in watcher.stdout], daemon=True).start()

    def next_line() -> dict:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                return lines.get(timeout=1)
            except queue.Empty:
                assert watcher.poll() is None, watcher.stderr.read()
        raise AssertionError("no line from watch within 60 s")

    try:
        first = {next_line()["report"]["context"]["name"] for _ in range(4)}
        assert first == {"shop-api", "shop-web", "shop-inline", "shop-linter"}
        compose = shop / "compose.yaml"
        compose.write_text(compose.read_text().replace("  db:\n    image: postgres:16\n", CRON))
        line = next_line()
        while line["report"] is not None:  # a report sent before the file changed
            line = next_line()
        assert [(c["change"], c["context"]) for c in line["changes"]] == [("registered", "shop-cron")]
        assert next_line()["report"]["context"]["name"] == "shop-cron"  # the new service is followed
        (shop / "tools" / "Dockerfile.lint").write_text("FROM scratch\nCOPY lint.sh /changed\n")
        names = set()
        while not {"shop-cron", "shop-linter"} <= names:  # both read that Dockerfile
            names.add(next_line()["report"]["context"]["name"])
        # A file the compose file includes is watched too.
        included = shop / "tools" / "compose.yaml"
        included.write_text(included.read_text() + "      args:\n        LEVEL: strict\n")
        line = next_line()
        while line["report"] is not None:
            line = next_line()
        [change] = line["changes"]
        assert (change["change"], change["context"]) == ("updated", "shop-linter")
        assert change["options"] == [{"option": "build arg LEVEL", "was": "(unset)", "now": "strict"}]
    finally:
        watcher.terminate()
        watcher.communicate(timeout=10)


def test_watch_shows_one_whole_screen_first(daemon, shop: Path) -> None:
    environ = {key: value for key, value in daemon.env().items() if key not in PROJECT_VARIABLES}
    cli = [sys.executable, "-u", "-m", "ctxwatch.cli", "--no-spawn"]
    subprocess.run([*cli, "add", "--compose"], cwd=shop, env=environ, check=True, capture_output=True)
    watcher = subprocess.Popen(
        [*cli, "watch", "--compose"],
        cwd=shop,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    stalled = threading.Timer(60, watcher.kill)  # a watch that never draws ends the read below
    stalled.start()
    try:
        assert watcher.stdout is not None
        screen = []
        for line in watcher.stdout:  # up to the first "watching" line: the first screen
            screen.append(line)
            if "Ctrl-C to stop" in line:
                break
        assert "watching 4 contexts" in screen[-1]
        headers = [line.split(":")[0] for line in screen if line.startswith("shop-")]
        assert headers == ["shop-api", "shop-inline", "shop-linter", "shop-web"]  # each once, not one screen each
    finally:
        stalled.cancel()
        watcher.terminate()
        watcher.communicate(timeout=10)


def test_bake_project_registers_what_buildx_bake_print_gives(run, bake_shop: Path, tmp_path: Path) -> None:
    program = installed("buildx")
    if program is None:
        pytest.skip("buildx v0.36.1 is not installed (see .ci/run)")
    added = as_json(run("add", "--bake", "--json", cwd=bake_shop))
    assert {c["context"] for c in added["changes"]} == {
        "bake-shop-" + t for t in ("api", "web", "worker-mail", "worker-billing")
    }
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "BUILDX_CONFIG": str(tmp_path / "buildx")}
    printed = subprocess.run(
        [program, "bake", "--print"], cwd=bake_shop, env=env, capture_output=True, text=True, check=True
    )
    expected = json.loads(printed.stdout)["target"]
    contexts = {c["labels"]["ctxwatch.member"]: c for c in as_json(run("ls", "--json"))["contexts"]}
    assert set(contexts) == set(expected)
    for name, target in expected.items():
        context = contexts[name]
        folder = bake_shop / target["context"]
        assert context["path"] == os.path.normpath(folder), name
        assert context["dockerfile"] == os.path.normpath(folder / target["dockerfile"]), name
        assert context["buildArgs"] == target.get("args", {}), name
        assert context["target"] == target.get("target", ""), name
        named = {k: v if "://" in v else os.path.normpath(bake_shop / v) for k, v in target.get("contexts", {}).items()}
        assert context["buildContexts"] == named, name
        assert context["noCache"] == target.get("no-cache", False), name
        assert context["noCacheFilter"] == target.get("no-cache-filter", []), name


def test_bake_targets_affected(run, bake_shop: Path) -> None:
    run("add", "--bake", cwd=bake_shop)
    run("built", "--bake", cwd=bake_shop)
    # web's stage `deps` is built with no-cache-filter: it always runs again.
    assert set(affected(run, bake_shop, "--bake")) == {"web"}
    (bake_shop / "services" / "api" / "main.go").write_text("package main // changed\n")
    # `docker buildx bake $(ctxwatch affected --bake)`: the targets whose image would rebuild.
    assert run("affected", "--bake", cwd=bake_shop).stdout.split() == ["api", "web", "worker-mail", "worker-billing"]
    run("built", "--bake", "api", cwd=bake_shop)
    assert set(affected(run, bake_shop, "--bake")) == {"web", "worker-mail", "worker-billing"}


def test_a_target_outside_the_default_group_is_kept_until_the_file_drops_it(run, bake_shop: Path) -> None:
    run("add", "--bake", cwd=bake_shop)
    run("add", "--bake", "tools", cwd=bake_shop)  # group "ci" builds it; "default" does not
    checked = run("check", "--bake", cwd=bake_shop, code=None)  # the default group, read again
    assert "removed" not in checked.stderr
    assert "bake-shop-tools" in {c["name"] for c in as_json(run("ls", "--json"))["contexts"]}
    status = run("status", "bake-shop-tools", cwd=bake_shop)  # read again whole: nothing changed
    assert "bake-shop-tools" in status.stdout and "removed" not in status.stderr
    hcl = bake_shop / "docker-bake.hcl"
    hcl.write_text(hcl.read_text().split('target "tools"')[0])
    checked = run("check", "--bake", cwd=bake_shop, code=None)
    assert "bake bake-shop: removed 'bake-shop-tools' for tools (no longer defined)" in checked.stderr
    assert "bake-shop-tools" not in {c["name"] for c in as_json(run("ls", "--json"))["contexts"]}


def test_a_name_another_project_holds_is_not_taken_over(run, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "web").mkdir(parents=True)
    (root / "web" / "Dockerfile").write_text("FROM scratch\nCOPY f /f\n")
    (root / "web" / "f").write_text("f\n")
    (root / "compose.yaml").write_text("services:\n  web:\n    build:\n      context: web\n      target: ''\n")
    (root / "docker-bake.hcl").write_text(
        'target "default" {\n  context = "web"\n}\ntarget "web" {\n  context = "web"\n  args = {\n    A = "1"\n  }\n}\n'
    )
    run("add", "--compose", cwd=root)
    refused = run("add", "--bake", "web", cwd=root, code=2)
    assert "the name is taken by compose project repo" in refused.stdout + refused.stderr
    [web] = [c for c in as_json(run("ls", "--json"))["contexts"] if c["name"] == "repo-web"]
    assert web["labels"]["ctxwatch.source"] == "compose" and web["buildArgs"] == {}  # left as compose said
    asked = run("status", "--bake", "web", cwd=root, code=2)  # its only member cannot be registered: said plainly
    assert asked.stderr.startswith("ctxwatch: bake repo: failed 'repo-web' for web (the name is taken by compose")
    run("add", "--bake", "web", "--project-name", "baked", cwd=root)
    names = {c["name"] for c in as_json(run("ls", "--json"))["contexts"]}
    assert {"repo-web", "baked-web"} <= names


def test_a_target_not_evaluated_is_never_taken_as_cached(run, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "app").mkdir(parents=True)
    (root / "app" / "Dockerfile").write_text("FROM scratch\nARG STAMP\nCOPY f /f\n")
    (root / "app" / "f").write_text("f\n")
    (root / "docker-bake.hcl").write_text(
        'group "default" {\n  targets = ["app", "stamped"]\n}\n'
        'target "app" {\n  context = "app"\n}\n'
        'target "stamped" {\n  context = "app"\n  args = {\n    STAMP = timestamp()\n  }\n}\n'
    )
    added = run("add", "--bake", cwd=root)
    assert "bake proj: registered 'proj-app' for app" in added.stdout
    [skipped] = [line for line in added.stdout.splitlines() if "skipped stamped" in line]
    assert "docker-bake.hcl" in skipped and "timestamp" in skipped and "args" in skipped
    run("built", "--bake", cwd=root)
    # `docker buildx bake $(ctxwatch affected --bake)` must still build it: its answer is unknown.
    document = as_json(run("affected", "--json", "--bake", cwd=root))
    assert document["names"] == ["stamped"] and "timestamp" in document["affected"][0]["unknown"]
    checked = run("check", "--bake", cwd=root, code=1)
    assert "bake proj: stamped is not answered" in checked.stderr
    assert as_json(run("check", "--json", "--bake", cwd=root, code=1))["allCached"] is False
    run("check", "proj-app", cwd=root, code=0)  # a context named alone is answered for itself


def test_several_contexts_and_all(run, tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text("FROM scratch\nCOPY f /f\n")
        (tmp_path / name / "f").write_text(name)
        run("add", str(tmp_path / name), cwd=tmp_path)
    built = as_json(run("built", "--json", "one", "two", cwd=tmp_path))
    assert [b["report"]["context"]["name"] for b in built["builds"]] == ["one", "two"]
    status = as_json(run("status", "--json", "one", cwd=tmp_path))
    assert [r["context"]["name"] for r in status["reports"]] == ["one"]  # one context: still a list inside
    assert as_json(run("check", "--json", "--all", cwd=tmp_path))["allCached"] is True
    (tmp_path / "two" / "f").write_text("changed")
    assert run("affected", cwd=tmp_path).stdout.split() == ["two"]
    assert run("check", "-q", "--all", cwd=tmp_path, code=1).stdout == ""
    assert "--all" in run("status", "--all", "one", cwd=tmp_path, code=2).stderr
    removed = as_json(run("rm", "--json", "--all", cwd=tmp_path))
    assert {r["context"]["name"] for r in removed["removed"]} == {"one", "two"}
    assert as_json(run("ls", "--json")) == {"contexts": []}


def test_rm_of_a_project_and_errors(run, shop: Path, tmp_path: Path) -> None:
    run("add", "--compose", cwd=shop)
    removed = as_json(run("rm", "--json", "--compose", cwd=shop))
    assert {r["context"]["name"] for r in removed["removed"]} == {"shop-api", "shop-web", "shop-inline", "shop-linter"}
    assert "no context of it is registered" in run("rm", "--compose", cwd=shop, code=2).stderr
    assert "no compose file found" in run("add", "--compose", cwd=tmp_path, code=2).stderr
    assert "not both" in run("add", str(shop), "--compose", cwd=shop, code=2).stderr
    assert "no such service: nope" in run("status", "--compose", "nope", cwd=shop, code=2).stderr


def test_a_service_that_cannot_be_registered_is_an_error_and_affected(run, shop: Path) -> None:
    dockerfile = shop / "services" / "web" / "Dockerfile"
    text = dockerfile.read_text()
    dockerfile.unlink()
    added = run("add", "--compose", cwd=shop, code=2)
    assert "compose shop: failed 'shop-web' for web (" in added.stdout
    assert "compose shop: registered 'shop-api' for api" in added.stdout  # the others are registered
    run("built", "--compose", cwd=shop, code=2)
    document = as_json(run("affected", "--json", "--compose", cwd=shop, code=2))
    assert "web" in document["names"] and "Dockerfile" in document["affected"][-1]["error"]
    assert as_json(run("check", "--json", "--compose", cwd=shop, code=2))["exitCode"] == 2
    dockerfile.write_text(text)
    assert "compose shop: registered 'shop-web' for web" in run("status", "--compose", cwd=shop).stderr


def test_discover_and_add(run, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(DATA / "compose" / "shop", root / "shop")
    for rel in (
        "svc/a/Dockerfile",
        "svc/b/Containerfile",
        "svc/c/api.Dockerfile",
        "svc/c/Dockerfile.dev",
        "node_modules/x/Dockerfile",
        "build/Dockerfile",
        "svc/d/Dockerfile",
        "svc/keep/Dockerfile",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("FROM scratch\n")
    (root / "svc" / "c" / "Dockerfile.dev.dockerignore").write_text("*.log\n")
    (root / ".gitignore").write_text("build/\n")
    (root / "svc" / ".gitignore").write_text("d/\n")
    (root / ".git").mkdir()
    (root / ".git" / "Dockerfile").write_text("FROM scratch\n")
    found = as_json(run("discover", "--json", str(root), cwd=tmp_path))
    assert set(found) == {"root", "dockerfiles", "problems", "changes", "projects"}
    by_file = {os.path.relpath(f["dockerfile"], root): f for f in found["dockerfiles"]}
    assert set(by_file) == {
        "svc/a/Dockerfile",
        "svc/b/Containerfile",
        "svc/c/api.Dockerfile",
        "svc/c/Dockerfile.dev",
        "svc/keep/Dockerfile",
        "shop/services/api/docker/Dockerfile.api",
        "shop/services/web/Dockerfile",
        "shop/services/debug/Dockerfile",
        "shop/tools/Dockerfile.lint",
    }
    assert by_file["svc/c/api.Dockerfile"]["name"] == "svc-c-api"
    assert by_file["svc/c/Dockerfile.dev"]["context"] == str(root / "svc" / "c")
    api = by_file["shop/services/api/docker/Dockerfile.api"]
    assert api["context"] == str(root / "shop" / "services" / "api")  # the compose file's context
    assert api["definedBy"].startswith("compose ") and api["definedBy"].endswith("service api")
    assert api["buildArgs"]["RELEASE"] == "2.0"
    assert by_file["shop/services/debug/Dockerfile"]["definedBy"] == ""  # its service's profile is off
    text = run("discover", str(root), cwd=tmp_path).stdout
    assert ["svc-c-api", "svc/c/api.Dockerfile", "context", "svc/c"] in [line.split() for line in text.splitlines()]
    added = as_json(run("discover", "--add", "--json", str(root), cwd=tmp_path))
    assert {c["change"] for c in added["changes"]} == {"registered"}
    names = {c["name"] for c in as_json(run("ls", "--json"))["contexts"]}
    assert names == {
        "svc-a",
        "svc-b",
        "svc-c-api",
        "svc-c-dev",
        "svc-keep",
        "shop-api",
        "shop-web",
        "shop-inline",
        "shop-linter",
        "shop-services-debug",
    }
    again = as_json(run("discover", "--add", "--json", str(root), cwd=tmp_path))
    assert {c["change"] for c in again["changes"]} == {"unchanged"}


REAL_PROJECT = {
    "compose.yaml": """\
services:
  api:
    build:
      context: services/api
      dockerfile: docker/Dockerfile
      target: runtime
      args:
        RELEASE: ${RELEASE:-1.0}
      additional_contexts:
        shared: ./libs/shared
  web:
    build: ./services/web
  docs:
    build:
      context: docs
  db:
    image: postgres:16
""",
    "services/api/docker/Dockerfile": """\
FROM scratch AS build
ARG RELEASE
COPY cmd/ /src/cmd/
COPY --from=shared version.txt /src/version.txt
FROM scratch AS runtime
COPY --from=build /src/ /app/
""",
    "services/api/cmd/main.go": "package main\n",
    "services/api/README.md": "not sent to any step\n",
    "services/web/Dockerfile": "FROM scratch\nCOPY src/ /www/\n",
    "services/web/src/index.html": "<p>shop</p>\n",
    "services/web/notes.txt": "not copied\n",
    "docs/Dockerfile": "FROM scratch\nCOPY . /docs/\n",
    "docs/.dockerignore": "*.tmp\n",
    "docs/index.md": "# docs\n",
    "libs/shared/version.txt": "1.0\n",
}


def test_affected_is_what_buildkit_rebuilds(buildkit, run, tmp_path: Path) -> None:
    """Each service built by the real BuildKit as compose would build it; after each edit, `affected`
    names exactly the services in which BuildKit then runs a step again."""
    root = tmp_path / "repo"
    for rel, text in REAL_PROJECT.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    run("add", "--compose", cwd=root)
    contexts = {c["labels"]["ctxwatch.member"]: c for c in as_json(run("ls", "--json"))["contexts"]}

    def rebuilt() -> set[str]:
        """Build every service; the ones with a step BuildKit did not take from its cache."""
        ran = set()
        for service, context in contexts.items():
            dockerfile = Path(context["dockerfile"])
            named = []
            for name, folder in context["buildContexts"].items():
                named += ["--local", f"{name}={folder}", "--opt", f"context:{name}=local:{name}"]
            result = buildkit.buildctl(
                Path(context["path"]),
                dockerfile_dir=dockerfile.parent,
                filename=dockerfile.name,
                build_args=context["buildArgs"],
                target=context["target"] or None,
                extra=named,
            ).check()
            if any(not step.cached for step in result.steps):
                ran.add(service)
        return ran

    assert rebuilt() <= set(contexts)  # the first builds (some may be in BuildKit's cache from another test)
    run("built", "--compose", cwd=root)
    assert run("affected", "--compose", cwd=root).stdout.split() == []
    edits = [  # (files written, the services that rebuild)
        ({"services/web/src/index.html": "<p>shop 2</p>\n"}, {"web"}),
        ({"libs/shared/version.txt": "2.0\n", "services/api/README.md": "still not sent\n"}, {"api"}),
        ({"services/web/notes.txt": "a file no step reads\n", "docs/draft.tmp": "ignored\n"}, set()),
        ({"docs/index.md": "# docs 2\n", "services/api/cmd/main.go": "package main // 2\n"}, {"api", "docs"}),
        ({"libs/shared/version.txt": "1.0\n", "services/api/cmd/main.go": "package main\n"}, set()),  # as first built
    ]
    for edit, expected in edits:
        for rel, text in edit.items():
            (root / rel).write_text(text)
        predicted = set(run("affected", "--compose", cwd=root).stdout.split())
        assert (predicted, rebuilt()) == (expected, expected), edit
        run("built", "--compose", cwd=root)
