"""The command line's runner (ctxwatch.runner) behind its front (ctxwatch.front), in real processes.

The suite turns the runner off (conftest.py); these tests turn it on, each with a runtime folder of its own
(so nothing reaches the user's), and stop every runner they started. A command goes through the front as the
`ctxwatch` program runs it; the front then records where the command ran: "runner" when a runner answered,
"here" when the front ran it in its own process. Every comparison is with the same command run in-process.
"""

from __future__ import annotations

import fcntl
import os
import pty
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.contexts import example_context, make_context
from support.processes import processes_with, runners_with, running
from support.waiting import wait_until

from ctxwatch import front, render, runner

# `ctxwatch ARGS` through the front, which then writes where the command ran into the file named first.
RUN_FRONT = """
import os, sys
where = sys.argv.pop(1)
from ctxwatch import front
_exit = os._exit
def ran_in_runner(code):  # the front ends this way only after a runner ran the command
    with open(where, "w") as out:
        out.write("runner")
    _exit(code)
os._exit = ran_in_runner
code = front.main()
with open(where, "w") as out:
    out.write("here" if "ctxwatch.cli" in sys.modules else "nowhere")
sys.exit(code)
"""
RUNNER = front.RUNNER_MAIN.encode()  # a runner's command line holds it


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    where: str  # "runner" or "here"


class Fronts:
    """Runs `ctxwatch` through the front with a runtime folder of its own; `stop()` ends its runners."""

    def __init__(self, env: dict[str, str], runtime: Path, cwd: Path) -> None:
        self.env = env
        self.runtime = runtime
        self.cwd = cwd
        self.socket = runtime / "ctxwatch" / "cli.sock"

    def command(self, where: Path) -> list[str]:
        return [sys.executable, "-c", RUN_FRONT, str(where)]

    def run(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Ran:
        where = self.runtime.parent / f"where-{uuid.uuid4().hex[:8]}"
        done = subprocess.run(
            [*self.command(where), *args],
            env=env or self.env,
            cwd=cwd or self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr, where.read_text() if where.exists() else "")

    def in_process(self, *args: str, cwd: Path | None = None) -> Ran:
        return self.run(*args, env={**self.env, front.NO_RUNNER_ENV: "1"}, cwd=cwd)

    def runners(self) -> list[int]:
        """The runner processes started with this runtime folder (a runner's children included)."""
        return runners_with(f"XDG_RUNTIME_DIR={self.runtime}")

    def serving(self) -> int:
        """The pid of the one runner serving, once it serves (it was started by an earlier command)."""

        def one_serving() -> int | None:
            every = self.runners()
            pids = [pid for pid in every if _parent(pid) not in every]  # not a runner's child
            if len(pids) != 1 or not _accepts(self.socket):
                return None
            return pids[0]

        return wait_until(one_serving, 60, "one runner serving")

    def start_runner(self) -> int:
        """A serving runner, started by a first command as a user's first command starts it."""
        first = self.run("ls")
        assert first.where == "here", first  # no runner yet: the front ran it
        return self.serving()

    def stop(self) -> None:
        for pid in self.runners():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        wait_until(lambda: not self.runners(), 30, "the runners to exit")


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except OSError:
        return 0


def _accepts(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


@pytest.fixture
def fronts(shared_daemon, tmp_path) -> Iterator[Fronts]:
    runtime = Path(tempfile.mkdtemp(prefix="rt-", dir=tmp_path if len(str(tmp_path)) < 60 else None))
    os.chmod(runtime, 0o700)
    env = {**shared_daemon.env(), "XDG_RUNTIME_DIR": str(runtime)}
    env.pop(front.NO_RUNNER_ENV, None)
    env.pop("NO_COLOR", None)
    folder = example_context(tmp_path / "ctx")
    shared_daemon.client.register(str(folder), name=f"runner-{uuid.uuid4().hex[:10]}")
    made = Fronts(env, runtime, folder)
    try:
        yield made
    finally:
        made.stop()
        shutil.rmtree(runtime, ignore_errors=True)


def _same(through_runner: Ran, in_process: Ran) -> None:
    assert through_runner.where == "runner", through_runner
    assert in_process.where == "here", in_process
    assert (through_runner.code, through_runner.stdout, through_runner.stderr) == (
        in_process.code,
        in_process.stdout,
        in_process.stderr,
    )


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("check",), 1),  # nothing built yet
        (("check", "-q"), 1),
        (("status",), 0),
        (("affected",), 0),
        (("check", "no-such-context"), 2),
        (("status", "--json"), 0),
    ],
)
def test_a_command_through_the_runner_is_the_command_in_process(fronts, args, code):
    fronts.start_runner()
    through_runner = fronts.run(*args)
    assert through_runner.code == code, through_runner
    _same(through_runner, fronts.in_process(*args))


def test_cached_and_broken_contexts_exit_as_in_process(fronts, shared_daemon, tmp_path):
    runner_pid = fronts.start_runner()
    shared_daemon.client.mark_built(str(fronts.cwd))
    cached = fronts.run("check")
    assert cached.code == 0, cached
    _same(cached, fronts.in_process("check"))
    broken = make_context(tmp_path / "broken", "FROM alpine\nNOT_AN_INSTRUCTION x\n")
    shared_daemon.client.register(str(broken), name=f"broken-{uuid.uuid4().hex[:10]}")
    failed = fronts.run("check", cwd=broken)
    assert failed.code == 2, failed
    _same(failed, fronts.in_process("check", cwd=broken))
    assert fronts.serving() == runner_pid  # the same runner ran them all


def test_a_reader_that_goes_away_ends_the_output_as_in_process(fronts):
    fronts.start_runner()

    def closed_pipe(env_extra: dict[str, str]) -> tuple[int, str, str]:
        where = fronts.runtime.parent / f"where-{uuid.uuid4().hex[:8]}"
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first line
        process = subprocess.Popen(
            [*fronts.command(where), "status"],
            env={**fronts.env, **env_extra},
            cwd=fronts.cwd,
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        os.close(write_end)
        _, err = process.communicate(timeout=60)
        return process.returncode, err.decode(), where.read_text()

    assert closed_pipe({}) == (0, "", "runner")
    assert closed_pipe({front.NO_RUNNER_ENV: "1"}) == (0, "", "here")


def test_colour_and_width_follow_the_terminal_as_in_process(fronts):
    fronts.start_runner()
    through_pipe = fronts.run("status")
    assert through_pipe.where == "runner" and "\x1b[" not in through_pipe.stdout
    code, output, where = _on_terminal(fronts, {})
    assert (code, where) == (0, "runner")
    assert "\x1b[" in output  # colour: stdout is the front's terminal
    assert render.ELLIPSIS in output  # the steps' lines are cut to the terminal's width
    assert (code, output) == _on_terminal(fronts, {front.NO_RUNNER_ENV: "1"})[:2]


def _on_terminal(fronts: Fronts, env_extra: dict[str, str]) -> tuple[int, str, str]:
    """Exit code, output and where the command ran, for `status` on a terminal 30 columns wide."""
    where = fronts.runtime.parent / f"where-{uuid.uuid4().hex[:8]}"
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 30, 0, 0))
    process = subprocess.Popen(
        [*fronts.command(where), "status"],
        env={**fronts.env, **env_extra},
        cwd=fronts.cwd,
        stdout=terminal,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    process.wait(timeout=60)
    return process.returncode, output.decode(), where.read_text()


@pytest.fixture
def silent_daemon(tmp_path) -> Iterator[Path]:
    """A socket that accepts and never answers: a command on it waits (about 2 s) for the daemon's health."""
    path = tmp_path / "silent.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    yield path
    listener.close()


def _waiting_command(fronts: Fronts, silent: Path) -> tuple[subprocess.Popen, int]:
    """A `check` waiting on the silent socket, through the runner: its front and the runner's child running it."""
    runner_pid = fronts.serving()
    where = fronts.runtime.parent / "where-waiting"
    process = subprocess.Popen(
        [*fronts.command(where), "--no-spawn", "--socket", str(silent), "check"],
        env=fronts.env,
        cwd=fronts.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    [child] = wait_until(lambda: processes_with(RUNNER, parent=runner_pid), 30, "the runner's child")
    return process, child


def test_the_runner_runs_the_command_in_a_child_of_its_own(fronts, silent_daemon):
    fronts.start_runner()
    process, child = _waiting_command(fronts, silent_daemon)
    assert running(child)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2, err
    assert f"accepts connections on {silent_daemon} but has not answered" in err.decode(), err
    assert not running(child)


def test_ctrl_c_reaches_the_command(fronts, silent_daemon):
    fronts.start_runner()
    process, child = _waiting_command(fronts, silent_daemon)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err  # the CLI's code for KeyboardInterrupt: the child got the Ctrl-C
    assert "Traceback" not in err.decode()
    wait_until(lambda: not running(child), 10, "the child to end")


def test_a_child_that_dies_is_reported_and_not_run_again(fronts, silent_daemon):
    runner_pid = fronts.start_runner()
    process, child = _waiting_command(fronts, silent_daemon)
    os.kill(child, signal.SIGKILL)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    [line] = err.decode().splitlines()
    assert line.startswith("ctxwatch: the command's process") and "is not run again" in line, line
    assert fronts.serving() == runner_pid  # the runner serves on


def test_a_runner_of_other_code_gives_way_to_a_fresh_one(fronts):
    old = fronts.start_runner()
    # Another PYTHONWARNINGS is another interpreter set-up: the fingerprint differs, as after an upgrade.
    other = {**fronts.env, "PYTHONWARNINGS": "default"}
    ran = fronts.run("check", env=other)
    assert ran.where == "here" and ran.code == 1, ran
    wait_until(lambda: not running(old), 30, "the stale runner to exit")
    fresh = fronts.serving()
    assert fresh != old
    again = fronts.run("check", env=other)
    assert again.where == "runner" and (again.code, again.stdout, again.stderr) == (ran.code, ran.stdout, ran.stderr)


def test_a_stale_socket_file_is_replaced(fronts):
    fronts.socket.parent.mkdir(mode=0o700)
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(fronts.socket))
    left.close()  # the file stays; nobody listens (a runner killed with SIGKILL leaves this)
    assert fronts.socket.exists() and not _accepts(fronts.socket)
    first = fronts.run("status")
    assert (first.where, first.code) == ("here", 0)
    fronts.serving()
    assert fronts.run("status").where == "runner"


def test_fronts_at_once_start_one_runner(fronts):
    commands = [
        subprocess.Popen(
            [*fronts.command(fronts.runtime.parent / f"where-{n}"), "status"],
            env=fronts.env,
            cwd=fronts.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        for n in range(3)
    ]
    assert [command.wait(timeout=60) for command in commands] == [0, 0, 0]
    fronts.serving()
    time.sleep(1.0)  # a second runner, had one started, would be serving or gone by now
    assert len(fronts.runners()) == 1


def test_the_runner_exits_when_idle(fronts):
    fronts.env[runner.IDLE_TIMEOUT_ENV] = "1"
    pid = fronts.start_runner()
    wait_until(lambda: not running(pid), 30, "the idle runner to exit")
    assert not fronts.socket.exists()
    assert fronts.run("status").where == "here"  # and the next command starts another


def test_no_runner_when_turned_off(fronts):
    fronts.env[front.NO_RUNNER_ENV] = "1"
    assert fronts.run("status").where == "here"
    time.sleep(1.0)  # a runner started would be listed by now
    assert fronts.runners() == []


def test_no_runner_serves_from_a_folder_others_can_open(fronts):
    fronts.socket.parent.mkdir()
    os.chmod(fronts.socket.parent, 0o755)
    assert fronts.run("status").where == "here"
    time.sleep(1.0)  # a runner started would be serving by now
    assert fronts.runners() == [] and not fronts.socket.exists()
    assert fronts.run("status").where == "here"


# The front's own work in an interpreter without site (no editable-install finder, which loads pathlib itself).
FRONT_MODULES = """
import sys
from ctxwatch import front
from ctxwatch_api import paths
paths.runner_socket_path()
front.code_fingerprint()
front.encode_request(["check"], "")
print("\\n".join(sorted(sys.modules)))
"""


def test_the_front_loads_neither_grpc_nor_protobuf_nor_pathlib(tmp_path):
    root = Path(__file__).resolve().parent.parent
    source = os.pathsep.join(str(root / folder) for folder in ("client", "proto", "daemon"))
    done = subprocess.run(
        [sys.executable, "-S", "-c", FRONT_MODULES],
        env={**os.environ, "PYTHONPATH": source, "XDG_RUNTIME_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules = set(done.stdout.split())
    assert "ctxwatch.front" in modules
    heavy = {"grpc", "google", "pathlib", "platformdirs", "socket", "typing"}
    assert {module.partition(".")[0] for module in modules} & heavy == set()
    assert "ctxwatch.cli" not in modules


@pytest.mark.parametrize(
    ("argv", "environ", "wanted"),
    [
        (["check", "-q"], {}, True),
        (["--socket", "s.sock", "status"], {}, True),
        (["--socket", "check", "ls"], {}, True),  # "check" is the socket's path: the command is ls
        (["affected", "--compose"], {}, True),
        (["watch"], {}, False),  # runs until interrupted, redraws
        (["prune", "--all"], {}, False),  # may ask on the terminal
        (["daemon", "status"], {}, False),
        (["build", "--", "docker", "build", "."], {}, False),
        ([], {}, False),
        (["check"], {front.NO_RUNNER_ENV: "1"}, False),
        (["check"], {front.NO_RUNNER_ENV: "0"}, True),
        (["check"], {"_ARGCOMPLETE": "1"}, False),  # the shell asks for completions
    ],
)
def test_which_command_lines_go_to_the_runner(argv, environ, wanted):
    assert front.runner_wanted(argv, environ) is wanted


@pytest.mark.parametrize(
    ("project_file", "text", "option"),
    [
        ("compose.yaml", "services:\n  web:\n    build: web\n", "--compose"),
        (
            "docker-bake.hcl",
            'group "default" {\n  targets = ["web"]\n}\ntarget "web" {\n  context = "web"\n}\n',
            "--bake",
        ),
    ],
)
def test_a_command_in_a_project_folder_through_the_runner_is_the_command_in_process(
    fronts, tmp_path, project_file, text, option
):
    """The runner has the project files' readers loaded for its children (PyYAML, python-hcl2); a command run
    in a compose or bake project reads the file and answers for its contexts as in-process."""
    project = tmp_path / f"project{uuid.uuid4().hex[:8]}"  # its name names its contexts in the shared daemon
    example_context(project / "web")
    (project / project_file).write_text(text)
    fronts.start_runner()
    registered = fronts.in_process("add", option, cwd=project)
    assert registered.code == 0 and f"{project.name}-web" in registered.stdout, registered
    for args in (("check", option), ("status", option), ("affected", option), ("ls", option)):
        _same(fronts.run(*args, cwd=project), fronts.in_process(*args, cwd=project))
