"""Measure the command line end to end with a warm daemon: `ctxwatch check -q` and `ctxwatch status`,
each in a fresh process, against the same run's `python -c pass` and `python -c "import grpc"`.

    .venv/bin/python bench/cli.py             # 50 runs of each command
    .venv/bin/python bench/cli.py --runs 200

Each command is measured three ways: with the runner warm (ctxwatch.runner: the common case, every command
after the first), without it (CTXWATCH_NO_RUNNER=1: the command imports gRPC and the stubs itself), and as the
first command, which finds no runner, runs in its own process and starts one (`check -q` only). The runner
is the bench's own (a runtime folder of its own) and is stopped at the end.

The commands run in turn (one of each, then again), so a change in the machine's load falls on all of
them alike. Wall time is what a shell prompt or a pre-commit hook waits; CPU time (user + system of
the process) is steadier on a busy machine; with the runner it counts the `ctxwatch` process alone (the
command itself runs in the runner's child). An editable install (`pip install -e`) pays its import
finder on every start, which an installed wheel does not: the output says which one ran. Compiled
modules are cached (PYTHONDONTWRITEBYTECODE is dropped for the commands), as an installed wheel's are.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# One way to run a daemon, shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.daemon import start_daemon
from support.processes import runners_with, running
from support.waiting import wait_until

from ctxwatch.front import NO_RUNNER_ENV

DOCKERFILE = "FROM alpine:3.19\nCOPY . /app\nRUN echo built\n"
SOURCE_FILES = 20


@dataclass
class Timings:
    """Wall and CPU seconds of each run of one command."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


@dataclass
class Command:
    argv: list[str]
    code: int  # the exit code expected
    env: dict[str, str]
    first: bool = False  # run with no runner serving (it starts one)


def run_once(command: Sequence[str], cwd: Path, env: dict[str, str], expected_code: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one fresh process; a wrong exit code stops the bench."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != expected_code:
        raise SystemExit(f"cli: {' '.join(command)} exited {done.returncode}, not {expected_code}: {done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def make_context(folder: Path) -> Path:
    context = folder / "context"
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(DOCKERFILE)
    for i in range(SOURCE_FILES):
        (context / f"file-{i}.txt").write_text(f"content {i}\n")
    return context


def install_kind() -> str:
    """ "editable" or "wheel": how ctxwatch is installed in this interpreter's environment."""
    direct_url = importlib.metadata.distribution("ctxwatch").read_text("direct_url.json")
    editable = bool(direct_url) and json.loads(direct_url).get("dir_info", {}).get("editable", False)
    return "editable" if editable else "wheel"


def machine(load_at_start: str) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown",
    )
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"CPU: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; Linux {platform.release()}; "
        f"ctxwatch installed as: {install_kind()}\n"
        f"load average (1, 5, 15 min): {load_at_start} at the start, {load} at the end"
    )


def measure(runs: int, folder: Path) -> dict[str, Timings]:
    context = make_context(folder)
    daemon = start_daemon(folder / "daemon", socket=folder / "daemon" / "d.sock")
    runtime = folder / "runtime"
    runtime.mkdir(mode=0o700)
    try:
        daemon.client.register(str(context))
        daemon.client.mark_built(str(context))  # every step cached: `check` exits 0
        ctxwatch = str(Path(sys.executable).with_name("ctxwatch"))
        env = {**daemon.env(), "XDG_RUNTIME_DIR": str(runtime)}
        env.pop(NO_RUNNER_ENV, None)
        # Compiled modules are cached as an installed wheel's are (pip compiles them): what users start with.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        no_runner = {**env, NO_RUNNER_ENV: "1"}
        commands = {
            "python -c pass": Command([sys.executable, "-c", "pass"], 0, env),
            'python -c "import grpc"': Command([sys.executable, "-c", "import grpc"], 0, env),
            "ctxwatch check -q": Command([ctxwatch, "check", "-q"], 0, env),
            "ctxwatch status": Command([ctxwatch, "status"], 0, env),
            f"ctxwatch check -q ({NO_RUNNER_ENV}=1)": Command([ctxwatch, "check", "-q"], 0, no_runner),
            f"ctxwatch status ({NO_RUNNER_ENV}=1)": Command([ctxwatch, "status"], 0, no_runner),
            "ctxwatch check -q, first (starts the runner)": Command([ctxwatch, "check", "-q"], 0, env, first=True),
        }
        for command in commands.values():  # warm the page cache and the daemon's answer once
            run_once(command.argv, context, command.env, command.code)
        timings = {name: Timings() for name in commands}
        for _ in range(runs):
            for name, command in commands.items():
                if command.first:
                    stop_runners(runtime)
                wall, cpu = run_once(command.argv, context, command.env, command.code)
                timings[name].wall.append(wall)
                timings[name].cpu.append(cpu)
                wait_for_runner(runtime)  # serving, and done importing: the next command has the machine
        return timings
    finally:
        stop_runners(runtime)
        daemon.stop()


def stop_runners(runtime: Path) -> None:
    mine = f"XDG_RUNTIME_DIR={runtime}"
    for pid in runners_with(mine):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    wait_until(lambda: not any(running(pid) for pid in runners_with(mine)), 30, "the runners to exit")


def wait_for_runner(runtime: Path) -> None:
    """Until a runner accepts on the bench's runtime folder (one started by an earlier command)."""

    def accepts() -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(runtime / "ctxwatch" / "cli.sock"))
            return True
        except OSError:
            return False
        finally:
            probe.close()

    wait_until(accepts, 60, "the runner to serve")


def table(timings: dict[str, Timings]) -> str:
    lines = ["| command | wall p50 | wall p99 | CPU p50 |", "|---|---|---|---|"]
    for name, timing in timings.items():
        cells = [percentile(timing.wall, 50), percentile(timing.wall, 99), percentile(timing.cpu, 50)]
        lines.append(f"| `{name}` | " + " | ".join(f"{seconds * 1000:.0f} ms" for seconds in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="fresh processes per command (default 50)")
    args = parser.parse_args()
    load_at_start = " ".join(f"{value:.1f}" for value in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="ctxwatch-bench-cli-") as folder:
        timings = measure(args.runs, Path(folder))
    print(machine(load_at_start))
    print(f"{args.runs} runs of each command, a warm daemon, a context of {SOURCE_FILES + 1} files\n")
    print(table(timings))


if __name__ == "__main__":
    main()
