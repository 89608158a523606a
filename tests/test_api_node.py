"""docs/api.md's Node client, taken from the page as written, run with Node
against the real daemon: a client in another language works from the .proto
and the socket alone. Skipped where no `node` is installed (CI has it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ctxwatch_api.v1 import ctxwatch_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "docs" / "node-client"  # package.json + package-lock.json: the versions tested
NODE = shutil.which("node")
NPM = shutil.which("npm")
WAIT_S = 60  # a bound on waiting for node and the daemon, not a measure of speed

pytestmark = pytest.mark.skipif(NODE is None or NPM is None, reason="node and npm are not installed")


def client_code() -> str:
    """The ```js block after the `<!-- client.js -->` marker in docs/api.md."""
    page = (ROOT / "docs" / "api.md").read_text()
    found = re.search(r"<!-- client\.js -->\n```js\n(.*?)\n```", page, re.S)
    assert found, "docs/api.md lost its client.js block"
    return found[1]


@pytest.fixture(scope="module")
def node_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """client.js in a folder of its own, with the packages of docs/node-client installed (npm ci)."""
    if not (PACKAGE / "node_modules" / "@grpc" / "grpc-js").is_dir():
        subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund"], cwd=PACKAGE, check=True, capture_output=True, timeout=600
        )
    folder = tmp_path_factory.mktemp("node-client")
    (folder / "client.js").write_text(client_code())
    (folder / "node_modules").symlink_to(PACKAGE / "node_modules")
    shutil.copy(ROOT / "proto" / "ctxwatch" / "v1" / "ctxwatch.proto", folder / "ctxwatch.proto")
    return folder / "client.js"


def printed(report) -> list[str]:
    """The lines client.js prints for a report."""
    lines = []
    for s in report.steps:
        r = s.range
        fate = pb.StepStatus.Name(s.status).removeprefix("STEP_STATUS_").lower()
        why = f" ({s.explanation})" if s.explanation else ""
        lines.append(f"{r.start_line}:{r.start_column}-{r.end_line}:{r.end_column} {fate} {s.instruction}{why}")
    return lines


def run(node_client: Path, daemon, *args: str) -> subprocess.CompletedProcess:
    env = {**daemon.env(), "CTXWATCH": str(Path(sys.executable).parent / "ctxwatch")}
    return subprocess.run(
        [NODE, str(node_client), *args], env=env, capture_output=True, text=True, timeout=WAIT_S, check=False
    )


def test_the_documented_node_client_runs_against_the_daemon(node_client, shared_daemon, tmp_path):
    ctx = tmp_path / "nodeweb"
    (ctx / "src").mkdir(parents=True)
    (ctx / "src" / "app.py").write_text("print(1)\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY src/ /app/src/\nRUN echo built \\\n    && echo twice\n")

    first = run(node_client, shared_daemon, "status", str(ctx), str(ctx / "src" / "app.py"))
    assert first.returncode == 0, first.stderr
    # What the daemon says, as the Python client reads it: the Node client prints the same.
    [report] = shared_daemon.client.reports(["nodeweb"])
    assert [(s.range.start_line, s.range.end_line) for s in report.steps] == [(2, 2), (3, 4)]
    readers = f"editing {ctx / 'src' / 'app.py'} re-runs nodeweb: {report.steps[0].instruction} (line 2)"
    assert first.stdout.splitlines() == [*printed(report), readers + " and 1 step(s) after it"]
    assert first.stdout.startswith("2:0-2:19 invalidated ") and "\n3:0-4:17 invalidated " in first.stdout

    recorded = run(node_client, shared_daemon, "record", str(ctx))
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout.strip().endswith(": 2 steps")
    cached = run(node_client, shared_daemon, "status", str(ctx))
    [report] = shared_daemon.client.reports(["nodeweb"])
    assert cached.stdout.splitlines() == printed(report)
    assert [line.split()[1] for line in cached.stdout.splitlines()] == ["cached", "cached"]

    # Live: the client waits on the stream; a file changes; it prints the new answer.
    env = {**shared_daemon.env(), "CTXWATCH": str(Path(sys.executable).parent / "ctxwatch")}
    watcher = subprocess.Popen(
        [NODE, str(node_client), "watch", str(ctx)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert watcher.stdout.readline() == "watching; change a file of the context\n"
        (ctx / "src" / "app.py").write_text("print(2)\n")
        out, err = watcher.communicate(timeout=WAIT_S)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    [report] = shared_daemon.client.reports(["nodeweb"])
    assert out.splitlines() == printed(report)
    assert [line.split()[1] for line in out.splitlines()] == ["invalidated", "invalidated"]


def test_the_node_client_shows_the_daemons_error(node_client, shared_daemon, tmp_path):
    missing = tmp_path / "no-such-folder"
    result = run(node_client, shared_daemon, "status", str(missing))
    assert result.returncode == 2
    assert result.stderr.strip() == f"ctxwatch: path: {missing} does not exist"
