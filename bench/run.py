"""Measure ctxwatchd against the quality bars of DESIGN.md and print one table.

    .venv/bin/python bench/run.py --quick                      # 1,000 and 10,000 files, about a minute
    .venv/bin/python bench/run.py --sweep 1000,10000,100000    # the full run (about 1 GB on disk)
    .venv/bin/python bench/run.py --tree ~/src/some-checkout   # the same figures on a copy of a folder

Every figure of a tree size is measured in the same run, against a real
daemon subprocess on a real Unix socket, through the Python client. See
bench/README.md for what each figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import generate
import trees

import ctxwatch
import ctxwatch_api
import ctxwatchd
from ctxwatch.client import CtxwatchClient
from ctxwatch.front import NO_RUNNER_ENV
from ctxwatch_api import paths
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

# One way to run a daemon, shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.daemon import Daemon as RunningDaemon
from support.daemon import guarded_client, start_daemon

WHOLE_TREE = "monorepo"  # name of the `COPY . /repo` context
BURST_FILES = 10_000
CALL_TIMEOUT_S = 600.0  # a deadline on every call, so a hung daemon cannot hang the bench
CORRECT_TIMEOUT_S = 60.0  # how long restart waits for a correct answer before giving up
MAX_SOCKET_PATH = 100  # Unix socket paths are limited to about 104-108 bytes
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IDLE_CPU_LIMIT = 0.01  # "~0": at most 1% of the idle period on the CPU
READERS = 50  # clients querying at once in the many-readers figure
READERS_SECONDS = 10.0
WIDE_FILES = 200_000  # files in the one folder of the wide-folder figure


@dataclass(frozen=True)
class Profile:
    """How many samples each figure takes."""

    warm_queries: int = 500
    write_samples: int = 100  # even: the probe file ends with the content it was built with
    idle_seconds: float = 10.0
    no_daemon_runs: int = 3
    scale_queries: int = 50
    context_counts: tuple[int, ...] = (1, 10, 50)
    # A sampled figure stops early past this many seconds (with at least
    # MIN_SAMPLES), so a slow daemon makes the bench report, not hang.
    budget_seconds: float = 60.0


FULL = Profile()
QUICK = Profile(warm_queries=200, write_samples=50, idle_seconds=5.0, scale_queries=20, budget_seconds=20.0)
MIN_SAMPLES = 5


def samples_within(count: int, budget_seconds: float, step: int = 1, minimum: int = MIN_SAMPLES) -> Iterator[int]:
    """0 .. count-1, stopping early (only at multiples of `step`) once the budget is spent."""
    deadline = time.monotonic() + budget_seconds
    for i in range(count):
        if i >= minimum and i % step == 0 and time.monotonic() > deadline:
            return
        yield i


# -- results -------------------------------------------------------------------------------


@dataclass
class Cell:
    text: str
    met: bool | None = None  # None: a figure without a target

    def render(self) -> str:
        return self.text if self.met is None else f"{self.text} {'met' if self.met else 'MISSED'}"


# (key, figure, target) in table order
ROWS = [
    ("tree", "tree: files / bytes sent (whole-tree context)", ""),
    ("baseline_warm", "baseline, page cache warm: read + SHA-256 of the sent files, one thread", ""),
    ("cold_warm", "cold index, page cache warm: daemon start + register + first report", "≤ 1.0× baseline"),
    (
        "cold_cli",
        "cold index, page cache warm: the first `ctxwatch add` (the program; it starts the daemon)",
        "≤ 1.0× baseline",
    ),
    ("baseline", "baseline, page cache dropped", ""),
    ("cold", "cold index, page cache dropped: register + first report", "≤ 1.5× baseline"),
    ("warm_p50", "warm query p50 (nothing changed)", "≤ 2 ms"),
    ("warm_p99", "warm query p99", "≤ 10 ms"),
    ("write_p50", "query after a one-file write p50", "≤ 30 ms"),
    ("write_p99", "query after a one-file write p99", ""),
    (
        "readers",
        f"{READERS} clients querying for {READERS_SECONDS:.0f} s while a file is written: p50 / p99",
        "p99 ≤ 50 ms",
    ),
    ("burst", f"{BURST_FILES:,}-file burst until a correct answer", "≤ 2 s"),
    ("burst_cpu", "daemon CPU during the burst", ""),
    ("idle", "daemon CPU while idle", "~0"),
    ("no_daemon", "no-daemon `status --json` (fresh process)", "≥ 100× warm p50"),
    ("rss", "daemon peak RSS (VmHWM, its hash workers included)", "≤ 100 MB (1M files: ≤ 500 MB)"),
    ("stop", "stop: SIGTERM until the daemon exits (it saves its hash cache)", ""),
    ("restart", "restart until a correct answer", "≤ 15% of cold index (page cache warm)"),
    ("small_during_cold", "2-file context: query p99 while the whole tree is cold-indexed", "≤ 10 ms"),
    *[
        (f"contexts_{n}", f"{n} context{'s' if n > 1 else ''}: GetReports p50 / daemon RSS", "")
        for n in FULL.context_counts
    ],
]


@dataclass
class SizeResult:
    label: str  # the column's header: the tree size, or the folder a copy was made of
    cells: dict[str, Cell] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile of the sorted samples."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 0.1 else f"{seconds:.2f} s"


def mb(kib: int) -> str:
    return f"{kib * 1024 / 1e6:.0f} MB"


# -- the daemon ----------------------------------------------------------------------------


class Daemon:
    """A ctxwatchd subprocess started and stopped as the tests do it (tests/support/daemon.py),
    its client's calls under a deadline, so a hung daemon cannot hang the bench."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "d.sock"
        self.state_dir = folder / "state"
        self.log = folder / "ctxwatchd.log"
        self._running: RunningDaemon | None = None
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise SystemExit(f"run: the socket path {self.socket} is too long; use a shorter --dir")

    @property
    def client(self) -> CtxwatchClient:
        assert self._running is not None, "not started"
        return self._running.client

    @property
    def process(self) -> subprocess.Popen:
        assert self._running is not None, "not started"
        return self._running.process

    def start(self) -> None:
        self._running = start_daemon(self.folder, socket=self.socket, call_timeout=CALL_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM (the daemon saves its state), SIGKILL if it hangs: it never outlives the bench."""
        if self._running is not None:
            self._running.stop()
            self._running = None

    def cpu_seconds(self) -> float:
        """utime + stime of the daemon (all its threads), from /proc/<pid>/stat."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def memory_kib(self, key: str, pid: int | None = None) -> int:
        """VmRSS (now) or VmHWM (peak) of the daemon (or of `pid`) from /proc/<pid>/status, in KiB."""
        pid = pid or self.process.pid
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"no {key} in /proc/{pid}/status")

    def hash_workers(self) -> list[int]:
        """Pids of the daemon's hash worker processes running now."""
        tasks = Path(f"/proc/{self.process.pid}/task").iterdir()  # any of its threads may have started one
        children = [pid for task in tasks for pid in (task / "children").read_text().split()]
        return [
            int(pid)
            for pid in children
            if b"ctxwatchd.context.hash_worker" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        ]

    def workers_peak_kib(self) -> int:
        """The peak RSS (VmHWM) of the hash workers running now, added up."""
        return sum(self.memory_kib("VmHWM", pid) for pid in self.hash_workers())

    def report(self, name: str = WHOLE_TREE) -> pb.Report:
        [report] = self.client.reports([pb.ContextRef(name=name)])
        if report.error:
            raise RuntimeError(f"report of {name}: {report.error}")
        return report


@contextmanager
def running(daemon: Daemon) -> Iterator[Daemon]:
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def timed(call: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def register_whole_tree(daemon: Daemon, repo: generate.Repo) -> None:
    daemon.client.register(str(repo.root), repo.dockerfile, name=WHOLE_TREE)


def copy_step(report: pb.Report) -> pb.Step:
    """The step that reads the context (`COPY . /repo`)."""
    return next(step for step in report.steps if step.instruction.startswith("COPY"))


# -- the page cache ------------------------------------------------------------------------


def drop_page_cache() -> bool:
    """Drop the kernel's page cache (needs root); False when not allowed."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


# -- figures -------------------------------------------------------------------------------


def read_and_hash(root: Path, ignored: str | None) -> tuple[int, int]:
    """Read and SHA-256 every file the whole-tree context sends (all but the top folder
    `ignored`); (files, bytes)."""
    files = size = 0
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if not (folder == root and entry.name == ignored):
                        stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    digest = hashlib.sha256()
                    with open(entry.path, "rb", buffering=0) as f:
                        while chunk := f.read(1 << 20):
                            digest.update(chunk)
                            size += len(chunk)
                    files += 1
    return files, size


def measure_baseline(repo: generate.Repo, cold: bool, result: SizeResult, key: str = "baseline") -> float:
    if not cold:
        read_and_hash(repo.root, repo.ignored)  # the same warm cache the daemon will see
    else:
        drop_page_cache()
    seconds, (files, size) = timed(lambda: read_and_hash(repo.root, repo.ignored))
    result.cells["tree"] = Cell(f"{files:,} / {size / 2**20:,.0f} MiB")
    result.cells[key] = Cell(f"{seconds:.2f} s")
    return seconds


def measure_cold_index(
    daemon: Daemon, repo: generate.Repo, cold: bool, baseline: float, result: SizeResult, started: float
) -> float:
    """The cold index in a running daemon, in seconds: from the register with the page cache dropped, else from the
    daemon's start (`started`, a perf_counter reading), as the warm-cache figure is timed."""
    if cold:
        drop_page_cache()
    indexing, _ = timed(lambda: (register_whole_tree(daemon, repo), daemon.report()))
    seconds = indexing if cold else time.perf_counter() - started
    if cold:
        result.cells["cold"] = Cell(f"{seconds:.2f} s ({seconds / baseline:.2f}×)", seconds <= 1.5 * baseline)
    else:
        result.cells["cold_warm"] = cold_warm_cell(seconds, indexing, baseline)
    built = daemon.client.mark_built(pb.ContextRef(name=WHOLE_TREE)).report
    if not built.all_cached:
        result.notes.append("MarkBuilt: the report it returned is not all cached")
    return seconds


def measure_cold_index_warm_cache(repo: generate.Repo, run_folder: Path, result: SizeResult) -> tuple[float, float]:
    """The cold index with the page cache warm, from the start of a daemon of its own (the
    time to a first answer a user waits), against a baseline taken just before; (its seconds, the baseline's)."""
    baseline = measure_baseline(repo, False, result, "baseline_warm")
    (run_folder / "warm").mkdir()
    daemon = Daemon(run_folder / "warm")
    started = time.perf_counter()
    with running(daemon):
        indexing, _ = timed(lambda: (register_whole_tree(daemon, repo), daemon.report()))
        seconds = time.perf_counter() - started
    result.cells["cold_warm"] = cold_warm_cell(seconds, indexing, baseline)
    return seconds, baseline


def measure_first_add(repo: generate.Repo, run_folder: Path, baseline: float, result: SizeResult) -> None:
    """The first `ctxwatch add` of the tree as a user types it, with no daemon running and the page cache
    warm: the `ctxwatch` program starts the daemon, registers the context and prints its report."""
    folder = run_folder / "cli"
    folder.mkdir()
    env = {
        **os.environ,
        paths.SOCKET_ENV: str(folder / "d.sock"),
        paths.STATE_DIR_ENV: str(folder / "state"),
        "XDG_RUNTIME_DIR": str(folder),  # no runner of the user's
        NO_RUNNER_ENV: "1",
    }
    program = [sys.executable, "-m", "ctxwatch.front"]  # what the installed `ctxwatch` runs
    add = [*program, "add", str(repo.root), "-f", os.path.join(repo.root, repo.dockerfile), "--name", WHOLE_TREE]
    try:
        seconds, done = timed(lambda: subprocess.run(add, env=env, capture_output=True, text=True, check=False))
    finally:
        subprocess.run([*program, "daemon", "stop"], env=env, capture_output=True, check=False)
    if done.returncode not in (0, 1) or WHOLE_TREE not in done.stdout:  # 1: steps that would run (none built)
        raise RuntimeError(f"`ctxwatch add` failed ({done.returncode}): {done.stderr.strip()}")
    result.cells["cold_cli"] = Cell(f"{seconds:.2f} s ({seconds / baseline:.2f}×)", seconds <= baseline)


def cold_warm_cell(seconds: float, indexing: float, baseline: float) -> Cell:
    """A warm-cache cold index timed from the daemon's start, with the part after it was serving."""
    ratio = seconds / baseline
    return Cell(f"{seconds:.2f} s ({ratio:.2f}×; {indexing:.2f} s of it after serving)", ratio <= 1.0)


def measure_readers(daemon: Daemon, repo: generate.Repo, result: SizeResult) -> None:
    """READERS clients, each on its own channel, query the whole-tree context
    for READERS_SECONDS while the probe file is rewritten every 100 ms; then
    the probe gets its built content back and the next answer must say so."""
    times: list[float] = []
    querying = threading.Event()
    querying.set()

    def reader() -> None:
        client = guarded_client(daemon.socket, timeout=60)
        try:
            while querying.is_set():
                times.append(timed(lambda: client.reports([pb.ContextRef(name=WHOLE_TREE)]))[0])
        finally:
            client.close()

    readers = [threading.Thread(target=reader) for _ in range(READERS)]
    for thread in readers:
        thread.start()
    writes, deadline = 0, time.monotonic() + READERS_SECONDS
    try:
        while time.monotonic() < deadline:
            generate.write_file(repo.root / repo.probe, generate.PROBE_CONTENTS[1 - writes % 2])
            writes += 1
            time.sleep(0.1)
    finally:
        querying.clear()
        for thread in readers:
            thread.join()
    generate.write_file(repo.root / repo.probe, generate.PROBE_CONTENTS[0])
    right = copy_step(daemon.report()).status == pb.STEP_STATUS_CACHED
    p99 = percentile(times, 0.99)
    result.cells["readers"] = Cell(
        f"{ms(statistics.median(times))} / {ms(p99)} (n={len(times)}, {writes} writes)", p99 <= 0.050 and right
    )
    if not right:
        result.notes.append("many readers: the answer after the last write did not see it")


def measure_warm(daemon: Daemon, profile: Profile, result: SizeResult) -> float:
    times, wrong = [], 0
    for _ in samples_within(profile.warm_queries, profile.budget_seconds):
        seconds, report = timed(daemon.report)
        times.append(seconds)
        wrong += not report.all_cached
    samples = len(times)
    p50, p99 = statistics.median(times), percentile(times, 0.99)
    result.cells["warm_p50"] = Cell(ms(p50), p50 <= 0.002 and not wrong)
    result.cells["warm_p99"] = Cell(f"{ms(p99)} (n={samples})", p99 <= 0.010 and not wrong)
    if wrong:
        result.notes.append(f"warm query: {wrong}/{samples} reports were not all cached although nothing changed")
    return p50


def probe_status_right(report: pb.Report, built_content: bool) -> bool:
    """After writing the probe file: the COPY step is cached when it holds the built content, else invalidated."""
    expected = pb.STEP_STATUS_CACHED if built_content else pb.STEP_STATUS_INVALIDATED
    return copy_step(report).status == expected


def names_probe(report: pb.Report, probe: str) -> bool:
    return any(change.path == probe for change in copy_step(report).changed_paths)


def written_and_asked(
    daemon: Daemon, probe: Path, contents: tuple[bytes, bytes], profile: Profile, name: str = WHOLE_TREE
) -> Iterator[tuple[bool, float, pb.Report]]:
    """Alternate the probe file between another content (contents[1]) and its
    built one (contents[0]), asking for the context's report after each write:
    (whether the probe holds its built content, seconds, report). The COPY
    step must flip between invalidated and cached on every sample. Stops only
    after a pair, so the probe file ends with its built content."""
    for i in samples_within(profile.write_samples, profile.budget_seconds, step=2):
        built_content = i % 2 == 1
        generate.write_file(probe, contents[0] if built_content else contents[1])
        seconds, report = timed(lambda: daemon.report(name))
        yield built_content, seconds, report


def measure_one_file_write(daemon: Daemon, repo: generate.Repo, profile: Profile, result: SizeResult) -> None:
    times, wrong, unnamed, named_instead = [], 0, 0, set()
    for built_content, seconds, report in written_and_asked(
        daemon, repo.root / repo.probe, generate.PROBE_CONTENTS, profile
    ):
        times.append(seconds)
        wrong += not probe_status_right(report, built_content)
        if not built_content and not names_probe(report, repo.probe):  # the status is right, the explanation is not
            unnamed += 1
            named_instead.update(change.path for change in copy_step(report).changed_paths)
    samples = len(times)
    p50, p99 = statistics.median(times), percentile(times, 0.99)
    result.cells["write_p50"] = Cell(f"{ms(p50)} ({samples - wrong}/{samples} correct)", p50 <= 0.030 and not wrong)
    result.cells["write_p99"] = Cell(ms(p99))
    if wrong:
        result.notes.append(f"one-file write: {wrong}/{samples} COPY step statuses did not follow the last write")
    if unnamed:
        result.notes.append(
            f"one-file write: {unnamed}/{samples // 2} invalidated COPY steps did not name "
            f"{repo.probe} in changed_paths (named: {sorted(named_instead)})"
        )


def rewrite(repo: generate.Repo, files: list[str], token: str) -> None:
    """New content, same sizes: what a branch switch does to these files."""
    buffer = generate.random_buffer(0)  # any bytes: the token already makes every file new
    sizes = [os.path.getsize(repo.root / rel) for rel in files]
    for rel, size in zip(files, sizes, strict=True):
        generate.write_file(repo.root / rel, generate.content(buffer, rel, size, token))


def measure_burst(daemon: Daemon, repo: generate.Repo, result: SizeResult) -> pb.Report:
    """Rewrite 10,000 sent files, then time the first report (checked later against --no-daemon)."""
    sent = repo.sent_files()
    files = random.Random(len(sent)).sample(sent, min(BURST_FILES, len(sent)))
    token = hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:8]  # new content on every run
    cpu_before = daemon.cpu_seconds()
    write_seconds, _ = timed(lambda: rewrite(repo, files, token))
    seconds, report = timed(daemon.report)
    cpu = daemon.cpu_seconds() - cpu_before
    result.cells["burst"] = Cell(
        f"{seconds:.2f} s ({len(files):,} files written in {write_seconds:.1f} s)", seconds <= 2.0
    )
    result.cells["burst_cpu"] = Cell(f"{cpu:.2f} s (writes + first report)")
    if copy_step(report).status != pb.STEP_STATUS_INVALIDATED:
        result.cells["burst"].met = False
        result.notes.append("burst: the COPY step was not invalidated by the first report after the burst")
    return report


def measure_no_daemon(
    daemon: Daemon, runs: int, warm_p50: float, expected: pb.Report, result: SizeResult, cwd: Path
) -> None:
    """`ctxwatch --no-daemon status` in a fresh process, end to end; its digest must match the daemon's."""
    command = [
        sys.executable,
        "-m",
        "ctxwatch.cli",
        "--no-daemon",
        "--state-dir",
        str(daemon.state_dir),
        "status",
        WHOLE_TREE,
        "--json",
    ]
    times, digests = [], set()
    for _ in range(runs):
        seconds, done = timed(lambda: subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False))
        if done.returncode != 0:
            raise RuntimeError(f"--no-daemon status failed ({done.returncode}): {done.stderr.strip()}")
        times.append(seconds)
        digests.update(report.get("contextDigest", "") for report in json.loads(done.stdout)["reports"])
    median = statistics.median(times)
    ratio = median / warm_p50
    agrees = digests == {expected.context_digest}
    result.cells["no_daemon"] = Cell(f"{median:.2f} s ({ratio:,.0f}×)", ratio >= 100)
    if not agrees:
        result.notes.append(f"no-daemon digest(s) {sorted(digests)} != the daemon's {expected.context_digest}")
        for key in ("no_daemon", "burst"):
            if key in result.cells:
                result.cells[key].met = False


def measure_idle(daemon: Daemon, seconds: float, result: SizeResult) -> None:
    before = daemon.cpu_seconds()
    time.sleep(seconds)
    cpu = daemon.cpu_seconds() - before
    result.cells["idle"] = Cell(f"{cpu:.2f} s over {seconds:.0f} s", cpu <= IDLE_CPU_LIMIT * seconds)


def digest_with_probe(daemon: Daemon, repo: generate.Repo, content: bytes) -> str:
    generate.write_file(repo.root / repo.probe, content)
    return daemon.report().context_digest


def peak_memory(daemon: Daemon, workers_seen: int) -> tuple[int, str]:
    """The daemon's peak RSS and its hash workers' added up (theirs the larger
    of `workers_seen`, read while they ran, and now: a worker exits after a
    minute idle), in KiB; and as a cell says it."""
    own, workers = daemon.memory_kib("VmHWM"), max(workers_seen, daemon.workers_peak_kib())
    return own + workers, f"{mb(own + workers)} (daemon {mb(own)} + hash workers {mb(workers)})"


def measure_restart(daemon: Daemon, repo: generate.Repo, warm_cold_seconds: float, result: SizeResult) -> None:
    """Stop, change the probe file while no daemon watches, start again: the first
    report must see the change (its digest is learned before stopping). The restart
    runs on a warm page cache: its share is of the cold index with the cache warm."""
    built, other = generate.PROBE_CONTENTS
    expected = digest_with_probe(daemon, repo, other)
    digest_with_probe(daemon, repo, built)
    stopping, _ = timed(daemon.stop)
    result.cells["stop"] = Cell(f"{stopping:.2f} s")
    generate.write_file(repo.root / repo.probe, other)
    started = time.perf_counter()
    daemon.start()
    serving = time.perf_counter()
    wrong = 0
    while daemon.report().context_digest != expected:
        wrong += 1
        if time.perf_counter() - started > CORRECT_TIMEOUT_S:
            raise RuntimeError(f"restart: no correct report within {CORRECT_TIMEOUT_S:.0f} s")
    done = time.perf_counter()
    seconds, after_serving = done - started, done - serving
    share = seconds / warm_cold_seconds
    result.cells["restart"] = Cell(
        f"{seconds:.2f} s ({share:.0%}; {after_serving:.2f} s of it after serving)", share <= 0.15 and not wrong
    )
    if wrong:
        result.notes.append(f"restart: {wrong} wrong report(s) before the first correct one")
    generate.write_file(repo.root / repo.probe, built)


SMALL = "small"  # the 2-file context queried while the whole tree is indexed


def measure_small_during_cold_index(repo: generate.Repo, folder: Path, result: SizeResult) -> None:
    """Query a 2-file context, in a fresh daemon, for as long as the whole tree's
    first index takes in the same daemon: no query may wait for that index."""
    small = folder / SMALL
    small.mkdir()
    (small / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    (small / "app.txt").write_text("a small context\n")
    fresh = folder / "fresh"  # its own state: the whole tree is indexed again
    fresh.mkdir()
    daemon = Daemon(fresh)
    with running(daemon):
        daemon.client.register(str(small), name=SMALL)
        daemon.client.mark_built(pb.ContextRef(name=SMALL))
        indexed = threading.Event()

        def index() -> None:
            try:
                register_whole_tree(daemon, repo)
                daemon.report()
            finally:
                indexed.set()

        indexer = threading.Thread(target=index, name="cold-index")
        started = time.perf_counter()
        indexer.start()
        times, wrong = [], 0
        while True:  # at least one query, however short the index
            seconds, report = timed(lambda: daemon.report(SMALL))
            times.append(seconds)
            wrong += not report.all_cached
            if indexed.is_set():
                break
        index_seconds = time.perf_counter() - started
        indexer.join()
    p99 = percentile(times, 0.99)
    text = f"{ms(p99)} (max {ms(max(times))}, n={len(times)} during a {index_seconds:.2f} s index)"
    result.cells["small_during_cold"] = Cell(text, p99 <= 0.010 and not wrong)
    if wrong:
        result.notes.append(f"small context during a cold index: {wrong}/{len(times)} answers were not all cached")


def service_context(repo: generate.Repo, k: int) -> tuple[str, str, dict[str, str]]:
    """The k-th per-service context: (name, Dockerfile, build args); past the last
    service, the same Dockerfiles again with another VARIANT build arg."""
    svc = repo.services[k % len(repo.services)]
    variant = k // len(repo.services)
    name = svc if not variant else f"{svc}-v{variant}"
    return name, f"services/{svc}/Dockerfile", ({"VARIANT": f"v{variant}"} if variant else {})


def measure_contexts_scale(daemon: Daemon, repo: generate.Repo, profile: Profile, result: SizeResult) -> None:
    names: list[str] = []
    deadline = time.monotonic() + 2 * profile.budget_seconds
    for count in profile.context_counts:
        if time.monotonic() > deadline:
            result.cells[f"contexts_{count}"] = Cell("skipped (time budget spent)")
            continue
        while len(names) < count:
            name, dockerfile, build_args = service_context(repo, len(names))
            daemon.client.register(str(repo.root), dockerfile, build_args, name=name)
            daemon.client.mark_built(pb.ContextRef(name=name))
            names.append(name)
        refs = [pb.ContextRef(name=name) for name in names]
        times, wrong = [], 0
        for _ in samples_within(profile.scale_queries, profile.budget_seconds / len(profile.context_counts), minimum=1):
            seconds, reports = timed(lambda refs=refs: daemon.client.reports(refs))
            times.append(seconds)
            wrong += len(reports) != count or not all(r.all_cached for r in reports)
        rss = mb(daemon.memory_kib("VmRSS"))
        result.cells[f"contexts_{count}"] = Cell(f"{ms(statistics.median(times))} / {rss} (n={len(times)})")
        if wrong:
            result.notes.append(f"{count} contexts: {wrong}/{len(times)} answers were not all cached")


# -- one tree ------------------------------------------------------------------------------


def run_size(files: int, folder: Path, profile: Profile, cold: bool, only_contention: bool = False) -> SizeResult:
    """The figures on the generated tree of `files` files."""
    repo = generate.generate(files, folder)
    return measure_tree(repo, SizeResult(f"{files:,} files"), folder / f"run-{files}", profile, cold, only_contention)


def run_tree(source: Path, folder: Path, profile: Profile, cold: bool, only_contention: bool = False) -> SizeResult:
    """The figures on a copy of a folder the bench did not generate (bench/trees.py)."""
    repo, said = trees.tree_copy(source, folder)
    result = SizeResult(f"{source.name or source} ({len(repo.files):,} files)", notes=[said])
    run_folder = folder / f"run-tree-{trees.tree_id(source)}"  # no folder name: the socket path stays short
    return measure_tree(repo, result, run_folder, profile, cold, only_contention)


def measure_tree(
    repo: generate.Repo, result: SizeResult, run_folder: Path, profile: Profile, cold: bool, only_contention: bool
) -> SizeResult:
    files = len(repo.files)
    if run_folder.exists():
        shutil.rmtree(run_folder)  # our own folder from an earlier run: a fresh state dir
    run_folder.mkdir(parents=True)
    generate.write_file(repo.root / repo.probe, generate.PROBE_CONTENTS[0])
    daemon = Daemon(run_folder)
    if only_contention:
        measure_small_during_cold_index(repo, run_folder, result)
        return result
    try:
        if files > generate.LARGE_TREE:
            # One cold index only, page cache warm, in the daemon the other figures use (each takes long here).
            cold = False
            for key in ("baseline", "cold", "cold_cli"):
                result.cells[key] = Cell(f"not measured above {generate.LARGE_TREE:,} files")
        else:
            warm_cold_seconds, warm_baseline = measure_cold_index_warm_cache(repo, run_folder, result)
            measure_first_add(repo, run_folder, warm_baseline, result)
        baseline = measure_baseline(repo, cold, result, "baseline" if cold else "baseline_warm")
        started = time.perf_counter()
        with running(daemon):
            cold_seconds = measure_cold_index(daemon, repo, cold, baseline, result, started)
            workers_after_index = daemon.workers_peak_kib()  # they leave when idle: measured while they run
            warm_p50 = measure_warm(daemon, profile, result)
            measure_one_file_write(daemon, repo, profile, result)
            measure_readers(daemon, repo, result)
            expected = daemon.report()
            if files >= BURST_FILES:
                expected = measure_burst(daemon, repo, result)
            # Before no-daemon: its reads of the tree are file events for the daemon.
            measure_idle(daemon, profile.idle_seconds, result)
            if files <= generate.LARGE_TREE:
                measure_no_daemon(daemon, profile.no_daemon_runs, warm_p50, expected, result, run_folder)
            else:  # a fresh process hashing every file, then twice stat'ing them: too long a wait
                result.cells["no_daemon"] = Cell(f"not measured above {generate.LARGE_TREE:,} files")
            peak, text = peak_memory(daemon, workers_after_index)
            result.cells["rss"] = Cell(text, peak * 1024 <= (100e6 if files <= generate.LARGE_TREE else 500e6))
            # This daemon's cold index is the warm-cache one unless the cache was dropped for it.
            measure_restart(daemon, repo, warm_cold_seconds if cold else cold_seconds, result)
            if repo.services:
                measure_contexts_scale(daemon, repo, profile, result)
            else:
                result.notes.append(
                    "contexts scale: not measured (it registers the per-service Dockerfiles of a generated tree; "
                    "this one has none)"
                )
        if files <= generate.LARGE_TREE:  # a third cold index
            measure_small_during_cold_index(repo, run_folder, result)
        else:
            result.cells["small_during_cold"] = Cell(f"not measured above {generate.LARGE_TREE:,} files")
    except Exception as error:  # report what was measured and why the rest is missing
        result.notes.append(f"stopped early: {type(error).__name__}: {error} (daemon log: {daemon.log})")
    return result


# -- a wide folder ---------------------------------------------------------------------------


def wide_folder(folder: Path, files: int) -> Path:
    """A context whose files are all in one folder (made once, reused)."""
    root, marker = folder / f"wide-{files}", folder / f"wide-{files}.json"
    if marker.exists() and root.is_dir():
        return root
    if root.exists():
        shutil.rmtree(root)  # an interrupted generation: our own folder
    (root / "wide").mkdir(parents=True)
    for i in range(files):
        generate.write_file(root / "wide" / f"f{i:07d}.txt", f"{i}\n".encode())
    (root / "Dockerfile").write_text(f"FROM {generate.PINNED_BASE}\nCOPY . /wide\n")
    marker.write_text(json.dumps({"files": files}))
    return root


def measure_wide(folder: Path, files: int, profile: Profile) -> str:
    """One file of a folder of `files` files is rewritten, then the context is
    queried at once (alternating contents: the COPY step must flip each time)."""
    root = wide_folder(folder, files)
    run_folder = folder / "run-wide"
    if run_folder.exists():
        shutil.rmtree(run_folder)
    run_folder.mkdir()
    probe = root / "wide" / f"f{files // 2:07d}.txt"
    built = f"{files // 2}\n".encode()
    generate.write_file(probe, built)
    daemon = Daemon(run_folder)
    with running(daemon):
        cold, _ = timed(lambda: (daemon.client.register(str(root), name="wide"), daemon.report("wide")))
        workers_after_index = daemon.workers_peak_kib()
        daemon.client.mark_built(pb.ContextRef(name="wide"))
        times, wrong = [], 0
        for built_content, seconds, report in written_and_asked(daemon, probe, (built, b"changed\n"), profile, "wide"):
            times.append(seconds)
            wrong += not probe_status_right(report, built_content)
        _, rss = peak_memory(daemon, workers_after_index)
    p50, p99 = statistics.median(times), percentile(times, 0.99)
    rows = [
        ("cold index: register + first report", "", f"{cold:.2f} s"),
        (
            "query after a one-file write p50",
            "≤ 30 ms",
            Cell(f"{ms(p50)} ({len(times) - wrong}/{len(times)} correct)", p50 <= 0.030 and not wrong).render(),
        ),
        ("query after a one-file write p99", "", ms(p99)),
        ("daemon peak RSS (VmHWM, its hash workers included)", "", rss),
    ]
    lines = [f"| wide folder: {files:,} files in one folder | target | |", "|---|---|---|"]
    return "\n".join([*lines, *(f"| {label} | {target} | {value} |" for label, target, value in rows)])


# -- the machine and the table -------------------------------------------------------------


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def filesystem_of(folder: Path) -> str:
    """The type of the filesystem holding `folder` (longest mount point that contains it)."""
    path = os.path.realpath(folder)
    best, fstype = "", "unknown"
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, kind, *_ = line.split()
        inside = path == mount or path.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, fstype = mount, kind
    return fstype


def load_average() -> str:
    return " ".join(f"{load:.1f}" for load in os.getloadavg())


def machine(folder: Path, cache: str, load_at_start: str) -> str:
    ram = int(
        next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
    )
    return (
        f"CPU: {cpu_model()}, {os.cpu_count()} cores; RAM: {ram / 2**20:.1f} GiB; "
        f"Python {platform.python_version()}; Linux {platform.release()}\n"
        f"bench folder: {folder} ({filesystem_of(folder)}); page cache: {cache}\n"
        f"load average (1, 5, 15 min): {load_at_start} at the start, {load_average()} at the end"
    )


def table(results: list[SizeResult]) -> str:
    header = ["figure", "target", *[r.label for r in results]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label, target in ROWS:
        cells = [r.cells[key].render() if key in r.cells else "n/a" for r in results]
        lines.append("| " + " | ".join([label, target, *cells]) + " |")
    notes = [f"- {r.label}: {note}" for r in results for note in r.notes]
    return "\n".join([*lines, *(["", *notes] if notes else [])])


def compile_as_installed() -> None:
    """Compile the packages' modules once and let the daemons read them, as an installed wheel's are (pip compiles
    them): otherwise PYTHONDONTWRITEBYTECODE, or a fresh checkout, adds their compilation to every daemon start."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    for package in (ctxwatchd, ctxwatch, ctxwatch_api):
        compileall.compile_dir(Path(package.__file__).parent, quiet=1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--files", type=int, help=f"one tree size (default {generate.DEFAULT_FILES:,})")
    sizes.add_argument("--sweep", help="comma-separated tree sizes, e.g. 1000,10000,100000")
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="also (without --files or --sweep: only) measure a copy of this folder, made in --dir; repeatable",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=generate.default_dir(),
        help=f"bench folder: trees and daemon state (default {generate.default_dir()})",
    )
    parser.add_argument(
        "--only-contention",
        action="store_true",
        help="only the 2-file context's queries during the whole tree's cold index",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer samples, and sizes 1000,10000 unless given (or --tree): about a minute",
    )
    parser.add_argument(
        "--keep-page-cache",
        action="store_true",
        help="never drop the page cache (on a shared machine): every figure runs with it warm",
    )
    parser.add_argument(
        "--wide",
        type=int,
        help=f"files in the wide-folder figure's one folder "
        f"(default {WIDE_FILES:,}; none with --quick or --tree; 0: skip it)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.sweep:
        sizes = [int(size) for size in args.sweep.split(",")]
    elif args.files:
        sizes = [args.files]
    elif args.tree:
        sizes = []
    else:
        sizes = [1000, 10_000] if args.quick else [generate.DEFAULT_FILES]
    profile = QUICK if args.quick else FULL
    folder = args.dir.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    wide = args.wide if args.wide is not None else (0 if args.quick or args.tree else WIDE_FILES)
    load_at_start = load_average()
    compile_as_installed()
    if args.keep_page_cache:
        cold, cache = False, "warm page cache (--keep-page-cache)"
    else:
        cold = drop_page_cache()
        cache = "dropped before baseline and cold index" if cold else "warm page cache (could not drop it)"
    results = []
    for files in sizes:
        print(f"measuring {files:,} files ...", file=sys.stderr, flush=True)
        results.append(run_size(files, folder, profile, cold, args.only_contention))
    for source in args.tree:
        print(f"measuring a copy of {source} ...", file=sys.stderr, flush=True)
        results.append(run_tree(source, folder, profile, cold, args.only_contention))
    wide_table = ""
    if wide:
        print(f"measuring a folder of {wide:,} files ...", file=sys.stderr, flush=True)
        wide_table = measure_wide(folder, wide, profile)
    print(machine(folder, cache, load_at_start))
    print()
    print(table(results))
    if wide_table:
        print()
        print(wide_table)


if __name__ == "__main__":
    main()
