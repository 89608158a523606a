"""The 50-service compose figure: registration, then `check --all` through the CLI and through gRPC.

    .venv/bin/python bench/compose.py [--services 50] [--files-per-service 200] [--queries 50]

A generated repository holds SERVICES services, each with its own folder of
source files and a Dockerfile that also copies from a shared named context
(compose `additional_contexts`); one compose.yaml names them all. Against a
real daemon subprocess on a real Unix socket:

- registration: `ctxwatch add --compose` (a fresh CLI process: reading the
  compose file, registering every service, and the first report of each,
  which indexes the repository);
- `ctxwatch check --all` p50 (a fresh CLI process each time, as a CI step runs it: it reads
  compose.yaml again, as every command answering about a project's contexts does), next to
  `ctxwatch ls` (what any command pays to start);
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
from pathlib import Path

import run

from ctxwatch_api.v1 import ctxwatch_pb2 as pb


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


def cli(daemon: run.Daemon, *args: str, cwd: Path, ok_codes: tuple[int, ...] = (0,)) -> float:
    environ = {**os.environ, "CTXWATCH_SOCKET": str(daemon.socket), "CTXWATCH_STATE_DIR": str(daemon.state_dir)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ctxwatch.cli", "--no-spawn", *args],
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
        with run.running(run.Daemon(folder / "daemon")) as daemon:
            register = cli(daemon, "add", "--compose", cwd=repo)
            roots = [r for r in daemon.client.daemon_status().roots if r.path.startswith(str(repo))]
            assert len(roots) == 1, f"{len(roots)} watched roots for one repository"
            contexts = daemon.client.list()
            assert len(contexts) == args.services, f"{len(contexts)} contexts registered"
            cli(daemon, "built", "--all", cwd=repo)
            refs = [pb.ContextRef(name=c.name) for c in contexts]
            through_cli = [cli(daemon, "check", "-q", "--all", cwd=repo) for _ in range(args.queries)]
            # What any command pays in a fresh process (interpreter, gRPC, one call): check's share of it.
            process_only = [cli(daemon, "ls", cwd=repo) for _ in range(args.queries)]
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
            f"| `ctxwatch check -q --all` p50 / p99 (CLI process) | {run.ms(statistics.median(through_cli))} / "
            f"{run.ms(run.percentile(through_cli, 0.99))} (n={len(through_cli)}) |"
        )
        print(
            f"| for comparison: `ctxwatch ls` p50 (CLI process start and one call) | "
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
