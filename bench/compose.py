"""The 50-service compose figure: registration, then `check --all` through the CLI and through gRPC.

    .venv/bin/python bench/compose.py [--services 50] [--files-per-service 200] [--queries 50]

A generated repository holds SERVICES services, each with its own folder of
source files and a Dockerfile that also copies from a shared named context
(compose `additional_contexts`); one compose.yaml names them all. Against a
real daemon subprocess on a real Unix socket:

- registration: `ctxwatch add --compose` (a fresh CLI process: reading the
  compose file, registering every service, and the first report of each,
  which indexes the repository);
- `ctxwatch check --all` p50 (a fresh `ctxwatch` process each time, as a CI step runs it, handing
  the command to its warm runner as a user's does: it reads compose.yaml again, as every command
  answering about a project's contexts does), next to `ctxwatch ls` (what any command pays to start);
- GetReports of all the services' contexts over gRPC p50 (one connected client).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cli as cli_bench
import run

from ctxwatch.front import NO_RUNNER_ENV
from ctxwatch_api.v1 import ctxwatch_pb2 as pb


@contextmanager
def runners_stopped(runtime: Path) -> Iterator[None]:
    """The block; then every runner serving from `runtime` is stopped (none outlives the bench)."""
    try:
        yield
    finally:
        cli_bench.stop_runners(runtime)


def generate_repo(root: Path, services: int, files_per_service: int) -> None:
    (root / "libs" / "shared").mkdir(parents=True)
    (root / "libs" / "shared" / "version.txt").write_text("1.0\n")
    lines = ["name: bench", "services:"]
    for i in range(services):
        name = f"svc{i:02d}"
        folder = root / "services" / name
        for j in range(files_per_service):
            path = folder / "src" / f"pkg{j % 10}" / f"file{j}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"# {name} {j}\n" + "x = 1\n" * 20)
        (folder / "Dockerfile").write_text(
            "FROM scratch\nARG RELEASE\nCOPY src/ /app/\nCOPY --from=shared version.txt /app/version.txt\n"
        )
        lines += [
            f"  {name}:",
            "    build:",
            f"      context: services/{name}",
            "      args:",
            "        RELEASE: ${RELEASE:-dev}",
            "      additional_contexts:",
            "        shared: libs/shared",
        ]
    (root / "compose.yaml").write_text("\n".join(lines) + "\n")


def cli(daemon: run.Daemon, *args: str, cwd: Path, runtime: Path, ok_codes: tuple[int, ...] = (0,)) -> float:
    """Seconds of one `ctxwatch ARGS` process, as a user runs it: the commands the runner takes go to the runner
    serving from `runtime` (the bench's own runtime folder), once the first of them has started it."""
    environ = {
        **os.environ,
        "CTXWATCH_SOCKET": str(daemon.socket),
        "CTXWATCH_STATE_DIR": str(daemon.state_dir),
        "XDG_RUNTIME_DIR": str(runtime),
    }
    environ.pop(NO_RUNNER_ENV, None)
    environ.pop("PYTHONDONTWRITEBYTECODE", None)  # modules compiled once, as an installed wheel's are
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ctxwatch")), "--no-spawn", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode not in ok_codes:
        raise RuntimeError(f"ctxwatch {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--files-per-service", type=int, default=200)
    parser.add_argument("--queries", type=int, default=50, help="samples of each p50")
    parser.add_argument("--dir", type=Path, help="where to generate (default: a temporary folder)")
    args = parser.parse_args()
    load_at_start = run.load_average()
    with tempfile.TemporaryDirectory(prefix="ctxw-compose-", dir=args.dir) as scratch:
        folder = Path(scratch)
        repo = folder / "repo"
        generate_repo(repo, args.services, args.files_per_service)
        (folder / "daemon").mkdir()
        runtime = folder / "runtime"
        runtime.mkdir(mode=0o700)
        with run.running(run.Daemon(folder / "daemon")) as daemon, runners_stopped(runtime):
            register = cli(daemon, "add", "--compose", cwd=repo, runtime=runtime)
            roots = [r for r in daemon.client.daemon_status().roots if r.path.startswith(str(repo))]
            assert len(roots) == 1, f"{len(roots)} watched roots for one repository"
            contexts = daemon.client.list()
            assert len(contexts) == args.services, f"{len(contexts)} contexts registered"
            cli(daemon, "built", "--all", cwd=repo, runtime=runtime)
            refs = [pb.ContextRef(name=c.name) for c in contexts]
            cli(daemon, "ls", cwd=repo, runtime=runtime)  # the first command the runner takes starts it
            cli_bench.wait_for_runner(runtime)
            through_cli = [cli(daemon, "check", "-q", "--all", cwd=repo, runtime=runtime) for _ in range(args.queries)]
            # What any command pays in a fresh process (interpreter, its runner's child, one call): check's share.
            process_only = [cli(daemon, "ls", cwd=repo, runtime=runtime) for _ in range(args.queries)]
            through_grpc = []
            for _ in range(args.queries):
                started = time.perf_counter()
                reports = daemon.client.reports(refs)
                through_grpc.append(time.perf_counter() - started)
                assert all(r.all_cached for r in reports)
            rss = run.mb(daemon.memory_kib("VmRSS"))
        files = args.services * args.files_per_service
        print(f"machine: {run.machine(folder, cache='warm (not dropped)', load_at_start=load_at_start)}")
        print(f"| figure | {args.services} services ({files:,} files) |")
        print("|---|---|")
        print(f"| registration: `ctxwatch add --compose` (CLI process, first reports included) | {register:.2f} s |")
        print(
            f"| `ctxwatch check -q --all` p50 / p99 (CLI process, its runner warm) | "
            f"{run.ms(statistics.median(through_cli))} / "
            f"{run.ms(run.percentile(through_cli, 0.99))} (n={len(through_cli)}) |"
        )
        print(
            f"| for comparison: `ctxwatch ls` p50 (CLI process, its runner warm: start and one call) | "
            f"{run.ms(statistics.median(process_only))} |"
        )
        print(
            f"| GetReports of the {args.services} contexts p50 / p99 (gRPC) | "
            f"{run.ms(statistics.median(through_grpc))} / {run.ms(run.percentile(through_grpc, 0.99))} "
            f"(n={len(through_grpc)}) |"
        )
        print(f"| daemon RSS after | {rss} |")


if __name__ == "__main__":
    main()
