"""A private BuildKit daemon (buildkitd, OCI worker, runc) and builds through buildctl.

The differential test needs the real builder: this starts one in a fresh
state folder, builds a context with `buildctl --progress=rawjson`, and says
for each step (vertex) whether BuildKit took it from its cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def find_program(name: str) -> str | None:
    """On PATH, or where `go install` puts it ($GOPATH/bin, ~/go/bin)."""
    found = shutil.which(name)
    if found:
        return found
    gopath = os.environ.get("GOPATH") or str(Path.home() / "go")
    candidate = Path(gopath) / "bin" / name
    return str(candidate) if candidate.exists() else None


def unavailable_reason() -> str:
    """Why a real builder cannot run here ("" when it can)."""
    if os.geteuid() != 0:
        return "buildkitd's OCI worker needs root"
    missing = [p for p in ("buildkitd", "buildctl", "runc") if find_program(p) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (BuildKit: go install; runc: apt-get install runc)"
    return ""


@dataclass
class Vertex:
    name: str
    cached: bool
    error: str


class Builder:
    """One buildkitd; stop() kills its RUN containers and removes its state."""

    def __init__(self) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="ctxwatch-bk."))
        self.socket = self.state / "buildkitd.sock"
        self.address = f"unix://{self.socket}"
        self.buildctl = find_program("buildctl") or "buildctl"
        self.log = self.state / "buildkitd.log"
        self.process: subprocess.Popen | None = None
        self._start()

    def _start(self) -> None:
        (self.state / "root").mkdir()
        (self.state / "tmp").mkdir()
        config = self.state / "buildkitd.toml"
        config.write_text("")  # ignore any system-wide /etc/buildkit/buildkitd.toml
        errors = []
        for snapshotter in ("overlayfs", "native"):
            args = [
                find_program("buildkitd") or "buildkitd",
                "--config", str(config),
                "--addr", self.address,
                "--root", str(self.state / "root"),
                "--containerd-worker=false",
                "--oci-worker=true",
                f"--oci-worker-snapshotter={snapshotter}",
                f"--oci-worker-binary={find_program('runc')}",
                "--oci-worker-net=host",
                "--oci-worker-gc=false",
            ]  # fmt: skip
            with open(self.log, "ab") as log:
                # Its own session: a Ctrl-C meant for the test run does not reach it half-way.
                self.process = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    env={**os.environ, "TMPDIR": str(self.state / "tmp")},
                )
            if self._wait_ready():
                return
            errors.append(f"{snapshotter}: {self.log.read_text(errors='replace')[-400:]}")
            self._kill()
        raise RuntimeError("buildkitd did not start:\n" + "\n".join(errors))

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self.socket.exists():
                workers = [self.buildctl, "--addr", self.address, "debug", "workers"]
                probe = subprocess.run(workers, check=False, capture_output=True, timeout=30)
                if probe.returncode == 0:
                    return True
            time.sleep(0.2)
        return False

    def build(
        self, context: Path, dockerfile: Path, build_args: dict[str, str], target: str = ""
    ) -> tuple[list[Vertex], str]:
        """Build; the vertices in the order they were first reported, and the error ("" on success)."""
        args = [
            self.buildctl, "--addr", self.address, "build", "--progress=rawjson",
            "--frontend", "dockerfile.v0",
            "--local", f"context={context}", "--local", f"dockerfile={dockerfile.parent}",
            "--opt", f"filename={dockerfile.name}",
        ]  # fmt: skip
        for name, value in sorted(build_args.items()):
            args += ["--opt", f"build-arg:{name}={value}"]
        if target:
            args += ["--opt", f"target={target}"]
        done = subprocess.run(args, check=False, capture_output=True, text=True, timeout=600)
        return parse_rawjson(done.stderr), "" if done.returncode == 0 else _last_error(done.stderr)

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._kill_containers()
                self.process.kill()
                self.process.wait()

    def _kill_containers(self) -> None:
        """RUN containers of this daemon (their bundle is under its state folder)."""
        runc = find_program("runc")
        listed = subprocess.run([runc, "list", "-q"], check=False, capture_output=True, text=True).stdout.split()
        for container in listed:
            state = subprocess.run([runc, "state", container], check=False, capture_output=True, text=True).stdout
            if str(self.state) in state:
                subprocess.run([runc, "kill", container, "KILL"], check=False, capture_output=True)

    def stop(self) -> None:
        self._kill()
        root = self.state / "root"
        # Mounts the worker left behind (overlay snapshots) must go before the folder can.
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(root))), reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(self.state, ignore_errors=True)


def parse_rawjson(stream: str) -> list[Vertex]:
    """buildctl's --progress=rawjson: one SolveStatus per line; a vertex is sent
    again each time it changes, the last one says whether it was cached."""
    order: list[str] = []
    last: dict[str, dict] = {}
    for line in stream.splitlines():
        if not line.startswith("{"):
            continue
        try:
            status = json.loads(line)
        except json.JSONDecodeError:
            continue
        for vertex in status.get("vertexes") or []:
            digest = vertex["digest"]
            if digest not in last:
                order.append(digest)
            last[digest] = vertex
    return [Vertex(last[d].get("name", ""), bool(last[d].get("cached")), last[d].get("error", "")) for d in order]


def _last_error(stream: str) -> str:
    lines = [line for line in stream.splitlines() if line and not line.startswith("{")]
    return lines[-1] if lines else "build failed"
