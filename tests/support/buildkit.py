"""A real BuildKit daemon for the tests: a private buildkitd (OCI worker, runc), offline.

`buildkit` is a session fixture: it starts one buildkitd as root with a fresh
state folder and stops it (and the runc containers of its builds) at the end.
Builds are independent; the cache is the daemon's, which is what makes
"CACHED" observable from one build to the next.

Programs: buildkitd and buildctl (BuildKit v0.32.2, the version every golden
case was observed with) and buildx (v0.36.1), found in $CTXWATCH_BUILDKIT_BIN,
on PATH, or in `go env GOPATH`/bin; `.ci/run` installs them. Debian's `runc`
runs the RUN steps, Debian's `busybox-static` makes the offline base image.
Missing programs fail the tests that need them; only a run without root
(the OCI worker mounts overlayfs and runs runc) skips them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ctxwatch_api.progress import DockerfileStep, ProgressReader, StepResult, match_lines, read_progress

BUILDKIT_VERSION = "v0.32.2"
BUILDX_VERSION = "v0.36.1"
BIN_ENV = "CTXWATCH_BUILDKIT_BIN"
SNAPSHOTTERS = ("overlayfs", "native")
START_TIMEOUT_S = 60.0
MARKER = ".ctxwatch-buildkit"
STATIC_BUSYBOX = Path("/bin/busybox")
# Unix socket paths are limited to about 100 bytes.
SOCKET_PATH_LIMIT = 100
BUSYBOX_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
"""


class BuildKitMissing(RuntimeError):
    """A program the real-builder tests need is not installed."""


def find_program(name: str) -> Path:
    """buildkitd, buildctl or buildx: $CTXWATCH_BUILDKIT_BIN, then PATH, then the Go bin folder."""
    folders = [os.environ[BIN_ENV]] if os.environ.get(BIN_ENV) else []
    on_path = shutil.which(name)
    if on_path:
        folders.append(str(Path(on_path).parent))
    folders.append(os.path.join(os.environ.get("GOPATH") or os.path.expanduser("~/go"), "bin"))
    for folder in folders:
        candidate = Path(folder) / name
        if os.access(candidate, os.X_OK):
            return candidate
    raise BuildKitMissing(
        f"{name} not found (looked in {', '.join(folders)}); .ci/run installs it "
        f"(BuildKit {BUILDKIT_VERSION}, buildx {BUILDX_VERSION}), or set {BIN_ENV}"
    )


def installed(name: str) -> str | None:
    """The program as find_program finds it, or None when it is not installed."""
    try:
        return str(find_program(name))
    except BuildKitMissing:
        return None


def find_runc() -> Path:
    found = shutil.which("runc") or ("/usr/sbin/runc" if os.access("/usr/sbin/runc", os.X_OK) else None)
    if found is None:
        raise BuildKitMissing("runc not found: apt-get install runc (.ci/run does)")
    return Path(found)


@dataclass(frozen=True)
class BusyboxImage:
    """An OCI layout holding a busybox image, used as the named context `busybox`."""

    layout: Path
    digest: str


@dataclass
class BuildResult:
    """One finished build: its exit code, output, and what BuildKit did for each vertex."""

    command: list[str]
    returncode: int
    stderr: str
    stdout: str
    progress: ProgressReader

    @property
    def steps(self) -> list[StepResult]:
        return self.progress.steps()

    def by_line(self, dockerfile: str, named_contexts: Sequence[str] = ()) -> dict[int, StepResult]:
        """Each Dockerfile step BuildKit reported, keyed by the line its instruction starts on."""
        return match_lines(self.steps, dockerfile_steps(dockerfile, named_contexts))

    @property
    def error(self) -> str:
        """BuildKit's error ("" when the build succeeded): the last line of text it printed."""
        if self.returncode == 0:
            return ""
        lines = [line for line in self.progress.other_lines if line.strip()]
        return lines[-1].strip() if lines else "build failed"

    def check(self) -> BuildResult:
        """Itself; raises with BuildKit's output when the build failed."""
        if self.returncode != 0:
            raise AssertionError(f"build failed ({self.returncode}): {' '.join(self.command)}\n{self.stderr[-3000:]}")
        return self


@dataclass
class Builder:
    """A running private buildkitd."""

    address: str
    pid: int
    state: Path
    snapshotter: str
    buildctl_path: Path
    runc: Path
    process: subprocess.Popen | None = None
    _busybox: BusyboxImage | None = field(default=None, repr=False)

    # ---------------------------------------------------------------- buildctl
    def buildctl_command(
        self,
        context: Path,
        dockerfile_dir: Path | None = None,
        filename: str | None = None,
        build_args: Mapping[str, str] | None = None,
        target: str | None = None,
        no_cache: bool = False,
        no_cache_filter: Sequence[str] = (),
        busybox: bool = False,
        extra: Sequence[str] = (),
    ) -> list[str]:
        """A `buildctl build` of a Dockerfile (no --progress: callers add theirs)."""
        command = [
            str(self.buildctl_path),
            "--addr",
            self.address,
            "build",
            "--frontend",
            "dockerfile.v0",
            "--local",
            f"context={context}",
            "--local",
            f"dockerfile={dockerfile_dir or context}",
        ]
        if filename:
            command += ["--opt", f"filename={filename}"]
        for key, value in (build_args or {}).items():
            command += ["--opt", f"build-arg:{key}={value}"]
        if target:
            command += ["--opt", f"target={target}"]
        if no_cache:
            command += ["--no-cache"]
        if no_cache_filter:
            command += ["--opt", f"no-cache={','.join(no_cache_filter)}"]
        if busybox:
            image = self.busybox()
            command += [
                "--oci-layout",
                f"bb={image.layout}",
                "--opt",
                f"context:busybox=oci-layout://bb@{image.digest}",
            ]
        return [*command, *extra]

    def buildctl(self, context: Path, **options) -> BuildResult:
        """Runs `buildctl build --progress=rawjson` and reads what each step did."""
        return run_build([*self.buildctl_command(context, **options), "--progress=rawjson"])

    # ---------------------------------------------------------------- buildx
    @property
    def buildx_path(self) -> Path:
        try:
            return find_program("buildx")
        except BuildKitMissing as missing:
            pytest.fail(str(missing), pytrace=False)

    def buildx_env(self, config_dir: Path, builder_name: str = "kit") -> dict[str, str]:
        """Environment for a standalone buildx whose builder (remote driver) is this daemon."""
        env = {**os.environ, "BUILDX_CONFIG": str(config_dir)}
        config_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(self.buildx_path), "create", "--name", builder_name, "--driver", "remote", self.address, "--use"],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        return env

    def buildx_command(
        self,
        context: Path,
        file: Path | None = None,
        build_args: Mapping[str, str] | None = None,
        target: str | None = None,
        busybox: bool = False,
        extra: Sequence[str] = (),
    ) -> list[str]:
        """A standalone `buildx build` into the build cache only (no --progress)."""
        command = [str(self.buildx_path), "build", "-o", "type=cacheonly"]
        if file:
            command += ["-f", str(file)]
        for key, value in (build_args or {}).items():
            command += ["--build-arg", f"{key}={value}"]
        if target:
            command += ["--target", target]
        if busybox:
            command += ["--build-context", f"busybox=oci-layout://{self.busybox().layout}"]
        return [*command, *extra, str(context)]

    def buildx(self, env: Mapping[str, str], context: Path, **options) -> BuildResult:
        """Runs `buildx build --progress=rawjson` with `env` from buildx_env()."""
        return run_build([*self.buildx_command(context, **options), "--progress=rawjson"], env=env)

    # ---------------------------------------------------------------- base image
    def busybox(self) -> BusyboxImage:
        """A busybox image as an OCI layout, built once per daemon, offline and reproducibly."""
        if self._busybox is None:
            self._busybox = self._make_busybox(self.state / "busybox-oci")
        return self._busybox

    def _make_busybox(self, layout: Path) -> BusyboxImage:
        context = self.state / "busybox-context"
        context.mkdir()
        write_busybox(context / "busybox")
        (context / "Dockerfile").write_text(BUSYBOX_DOCKERFILE)
        metadata = self.state / "busybox-metadata.json"
        build = run_build(
            [
                *self.buildctl_command(context, build_args={"SOURCE_DATE_EPOCH": "0"}),
                "--progress=rawjson",
                "--output",
                f"type=oci,tar=false,dest={layout},name=docker.io/library/busybox:latest,rewrite-timestamp=true",
                "--metadata-file",
                str(metadata),
            ]
        )
        build.check()
        shutil.rmtree(layout / "ingest", ignore_errors=True)
        return BusyboxImage(layout, json.loads(metadata.read_text())["containerimage.digest"])

    # ---------------------------------------------------------------- stop
    def stop(self) -> None:
        """Stops the daemon, kills what its builds left running, unmounts and deletes its state."""
        if _alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            # A graceful stop waits for running builds: after 3 s their containers are killed.
            if not self._wait_gone(3.0):
                self._kill_containers()
                if not self._wait_gone(30.0):
                    os.kill(self.pid, signal.SIGKILL)
                    self._wait_gone(5.0)
        self._kill_containers(delete=True)
        for mount in reversed(_mounts_under(self.state)):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        if (self.state / MARKER).exists() and not _mounts_under(self.state):
            shutil.rmtree(self.state, ignore_errors=True)

    def stop_process_only(self) -> None:
        """Stops the daemon of a failed start (its state folder stays for the next attempt)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _wait_gone(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return True
            if self.process is None and not _alive(self.pid):
                return True
            time.sleep(0.1)
        return False

    def _kill_containers(self, delete: bool = False) -> None:
        """SIGKILL (and with `delete` remove) the runc containers whose bundle is under this daemon's state."""
        listed = subprocess.run([str(self.runc), "list", "-q"], check=False, capture_output=True, text=True)
        for container in listed.stdout.split():
            state = subprocess.run([str(self.runc), "state", container], check=False, capture_output=True, text=True)
            try:
                bundle = json.loads(state.stdout).get("bundle", "")
            except json.JSONDecodeError:
                continue
            if bundle.startswith(f"{self.state}/"):
                subprocess.run([str(self.runc), "kill", container, "KILL"], check=False, capture_output=True)
                if delete:
                    time.sleep(0.5)
                    subprocess.run([str(self.runc), "delete", "--force", container], check=False, capture_output=True)


def start_builder(base_dir: str | None = None) -> Builder:
    """Starts a private buildkitd (overlayfs snapshotter, native if overlayfs does not come up)."""
    buildkitd, buildctl = find_program("buildkitd"), find_program("buildctl")
    runc = find_runc()
    # Short and fresh: the socket lives inside, and the stop deletes only a folder carrying the marker.
    state = Path(tempfile.mkdtemp(prefix="ctxwatch-bk.", dir=base_dir or "/tmp"))
    (state / MARKER).touch()
    (state / "buildkitd.toml").touch()  # an empty config: ignore /etc/buildkit/buildkitd.toml
    socket = state / "buildkitd.sock"
    if len(str(socket)) >= SOCKET_PATH_LIMIT:
        raise RuntimeError(f"socket path too long for a unix socket: {socket}")
    address = f"unix://{socket}"
    log_path = state / "buildkitd.log"
    for snapshotter in SNAPSHOTTERS:
        (state / "root").mkdir(exist_ok=True)
        (state / "tmp").mkdir(exist_ok=True)
        command = [
            str(buildkitd),
            "--config",
            str(state / "buildkitd.toml"),
            "--addr",
            address,
            "--root",
            str(state / "root"),
            "--containerd-worker=false",
            "--oci-worker=true",
            f"--oci-worker-snapshotter={snapshotter}",
            f"--oci-worker-binary={runc}",
            "--oci-worker-net=host",
            "--oci-worker-gc=false",
        ]
        with open(log_path, "ab") as log:
            log.write(f"=== starting: {' '.join(command)}\n".encode())
            log.flush()
            # Its own session: a Ctrl-C to the test run does not reach it; the finalizer stops it.
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "TMPDIR": str(state / "tmp")},
                start_new_session=True,
            )
        builder = Builder(address, process.pid, state, snapshotter, buildctl, runc, process)
        if _wait_ready(process, buildctl, address):
            return builder
        # Clean up this attempt (mounts included) but keep the folder and its log for the next one.
        builder.stop_process_only()
        for mount in reversed(_mounts_under(state / "root")):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(state / "root", ignore_errors=True)
    log_tail = log_path.read_text(errors="replace")[-2000:]
    shutil.rmtree(state, ignore_errors=True)
    raise RuntimeError(f"buildkitd did not start with any of {SNAPSHOTTERS}:\n{log_tail}")


def _wait_ready(process: subprocess.Popen, buildctl: Path, address: str) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        probe = subprocess.run([str(buildctl), "--addr", address, "debug", "workers"], check=False, capture_output=True)
        if probe.returncode == 0:
            return True
        time.sleep(0.2)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _mounts_under(folder: Path) -> list[str]:
    """Mount points below `folder`, in mount order."""
    prefix = f"{folder}/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [point for point in points if point.startswith(prefix)]


def write_busybox(path: Path) -> None:
    """Copies Debian's static busybox (the binary the offline base image runs)."""
    if not STATIC_BUSYBOX.is_file():
        raise BuildKitMissing(f"{STATIC_BUSYBOX} not found: apt-get install busybox-static (.ci/run does)")
    shutil.copyfile(STATIC_BUSYBOX, path)
    path.chmod(0o755)


def run_build(command: list[str], env: Mapping[str, str] | None = None, timeout: float = 600) -> BuildResult:
    """Runs a build whose progress is rawjson on stderr."""
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=timeout)
    return BuildResult(command, done.returncode, done.stderr, done.stdout, read_progress(done.stderr.splitlines()))


# ---------------------------------------------------------------- Dockerfile lines
#
# BuildKit's progress names steps by stage and position, not by line. This is
# the test's own reading of a Dockerfile, independent of ctxwatch's parser:
# the FROM of an image and every ADD, COPY, RUN and WORKDIR of a stage take the
# next position (BuildKit's dockerfile2llb), stages are named by `AS name` or
# `stage-N`, and a Dockerfile of one stage has no stage name.

COUNTED = frozenset({"ADD", "COPY", "RUN", "WORKDIR"})
HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
ESCAPE_DIRECTIVE = re.compile(r"^#\s*escape\s*=\s*(\S)\s*$", re.IGNORECASE)


def dockerfile_steps(text: str, named_contexts: Sequence[str] = ()) -> list[DockerfileStep]:
    """The steps BuildKit numbers in its progress, each with the line its instruction starts on."""
    lines = text.splitlines()
    escape = _escape_char(lines)
    stages: list[tuple[str, list[tuple[int, str]]]] = []
    names: set[str] = {name.lower() for name in named_contexts}
    index = 0
    while index < len(lines):
        start = index
        stripped = lines[index].strip()
        if not stripped or stripped.startswith("#"):
            index += 1
            continue
        logical = stripped
        while logical.endswith(escape) and index + 1 < len(lines):
            index += 1
            following = lines[index].strip()
            if following.startswith("#"):
                continue
            logical = logical[: -len(escape)] + " " + following
        index += 1
        words = logical.split()
        keyword = words[0].upper()
        if keyword in {"RUN", "COPY", "ADD"}:
            for dash, _, terminator in HEREDOC.findall(logical):
                while (
                    index < len(lines) and (lines[index].lstrip("\t") if dash else lines[index]).rstrip() != terminator
                ):
                    index += 1
                index += 1
        if keyword == "FROM":
            base, name = _from_words(words[1:])
            stage_name = name or f"stage-{len(stages)}"
            counted = [] if base == "scratch" or base in names else [(start + 1, "FROM")]
            stages.append((stage_name, counted))
            if name:
                names.add(name)
        elif keyword in COUNTED and stages:
            stages[-1][1].append((start + 1, keyword))
    single = len(stages) == 1
    return [
        DockerfileStep("" if single else stage, line, keyword) for stage, steps in stages for line, keyword in steps
    ]


def _escape_char(lines: Sequence[str]) -> str:
    for line in lines:
        match = ESCAPE_DIRECTIVE.match(line.strip())
        if match:
            return match[1]
        if not line.strip().startswith("#"):
            break
    return "\\"


def _from_words(words: Sequence[str]) -> tuple[str, str]:
    """(base image or stage, lower-cased stage name or "") of a FROM's arguments."""
    plain = [word for word in words if not word.startswith("--")]
    base = plain[0].lower() if plain else ""
    name = plain[2].lower() if len(plain) >= 3 and plain[1].upper() == "AS" else ""
    return base, name


# ---------------------------------------------------------------- fixtures
BUILDER_FIXTURES = ("buildkit", "own_buildkit")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use a builder carry the `buildkit` marker (`-m 'not buildkit'` leaves them out)."""
    for item in items:
        if set(BUILDER_FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.buildkit)


@pytest.fixture(scope="session")
def buildkit() -> Iterator[Builder]:
    """A private buildkitd for the whole run."""
    yield from _running_builder()


@pytest.fixture(scope="module")
def own_buildkit() -> Iterator[Builder]:
    """A private buildkitd for one module, whose cache holds only that module's builds."""
    yield from _running_builder()


def _running_builder() -> Iterator[Builder]:
    if os.geteuid() != 0:
        pytest.skip("the real builder needs root (its OCI worker mounts overlayfs and runs runc)")
    try:
        builder = start_builder()
    except BuildKitMissing as missing:
        pytest.fail(str(missing), pytrace=False)
    try:
        yield builder
    finally:
        builder.stop()
