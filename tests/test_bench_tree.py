"""bench/run.py --tree: the bench's figures on a folder it did not generate, measured through a copy.

The bench runs for real here (a real daemon on a real socket, on a small folder made by the test); what is checked
is that every figure gives a number and that the folder is left as it was, never how long anything takes.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.contexts import make_context

from ctxwatch_api.v1 import ctxwatch_pb2 as pb

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
import run  # noqa: E402  (bench/ is not a package: its modules import each other by name)
import trees  # noqa: E402

# The figures a --tree run of a folder below 10,000 files must fill (the burst needs 10,000 files, the
# contexts-scale figure a generated tree's per-service Dockerfiles; the dropped-cache pair is not taken
# with --keep-page-cache).
FIGURES = [
    "tree",
    "baseline_warm",
    "cold_warm",
    "cold_cli",
    "warm_p50",
    "warm_p99",
    "write_p50",
    "write_p99",
    "readers",
    "idle",
    "no_daemon",
    "rss",
    "stop",
    "restart",
    "small_during_cold",
]


def real_folder(folder: Path, files: int = 300) -> Path:
    """A folder as real ones are: nested, sizes from a few bytes to 200 KB, a symlink, a read-only file, an
    executable, and a .dockerignore of its own (which the bench's context must not apply)."""
    rng = random.Random(18)
    for i in range(files):
        path = folder / f"pkg-{i % 7}" / f"mod-{i % 5}" / f"f{i}.{'log' if i % 10 == 0 else 'go'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(int(rng.choice((8, 300, 4000, 200_000)) * rng.random()) + 1))
    make_context(folder, None, {".dockerignore": "*.log\n", "tool.sh": "#!/bin/sh\n"}, modes={"tool.sh": 0o755})
    os.chmod(folder / "pkg-0" / "mod-0" / "f0.log", 0o444)
    os.symlink("pkg-1/mod-1/f1.go", folder / "link.go")
    return folder


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry's kind, mode, size, mtime and content (or link target)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            what: object = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = None
        found[str(path.relative_to(folder))] = (st.st_mode, st.st_size, st.st_mtime_ns, what)
    return found


def contents(folder: Path) -> dict[str, tuple]:
    """What a copy keeps: every entry's kind and content (or link target)."""
    return {rel: (stat.S_IFMT(mode), what) for rel, (mode, _, _, what) in snapshot(folder).items()}


def table_cells(output: str, column: str) -> dict[str, str]:
    """The figure rows of the bench's table: figure label -> the cell in `column`."""
    lines = [line for line in output.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    at = header.index(column)
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]
    return {row[0]: row[at] for row in rows}


def test_tree_option_measures_a_copy_and_leaves_the_folder_alone(tmp_path):
    source = real_folder(tmp_path / "src")
    before = snapshot(source)
    regular = sum(1 for _, (mode, *_) in before.items() if stat.S_ISREG(mode))

    command = [sys.executable, str(BENCH / "run.py"), "--quick", "--keep-page-cache"]
    done = subprocess.run(
        [*command, "--tree", str(source), "--dir", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert snapshot(source) == before
    label = f"src ({regular:,} files)"
    cells = table_cells(done.stdout, label)
    labels = {key: figure for key, figure, _ in run.ROWS}
    for key in FIGURES:
        assert re.search(r"\d", cells[labels[key]]), (key, cells[labels[key]])
    # every file is sent, the bench's probe file included: the folder's .dockerignore does not apply
    assert cells[labels["tree"]].startswith(f"{regular + 1:,} / ")
    assert re.match(r"[\d.]+ ms \((\d+)/\1 correct\)", cells[labels["write_p50"]]), cells[labels["write_p50"]]
    notes = [line for line in done.stdout.splitlines() if line.startswith(f"- {label}: ")]
    assert any(f"a copy of {source} (made now: " in note for note in notes), notes
    assert any("contexts scale: not measured" in note for note in notes), notes
    assert not any("stopped early" in note or "wrong" in note or "did not" in note for note in notes), notes
    assert "page cache: warm page cache (--keep-page-cache)" in done.stdout


def test_the_copy_is_reused_until_the_folder_changes(tmp_path):
    source = real_folder(tmp_path / "src", files=40)
    bench_dir = tmp_path / "b"

    repo, said = trees.tree_copy(source, bench_dir)
    assert "(made now: " in said
    assert contents(repo.root) == contents(source)  # the probe file is run.py's to write
    assert "reused" in trees.tree_copy(source, bench_dir)[1]

    (source / "pkg-2" / "mod-2" / "f2.go").write_bytes(b"changed\n")
    repo, said = trees.tree_copy(source, bench_dir)
    assert "(made now: " in said
    assert (repo.root / "pkg-2" / "mod-2" / "f2.go").read_bytes() == b"changed\n"


def test_the_copy_is_writable_and_keeps_modes_and_symlinks(tmp_path):
    source = real_folder(tmp_path / "src", files=40)
    repo, _ = trees.tree_copy(source, tmp_path / "b")

    assert os.readlink(repo.root / "link.go") == "pkg-1/mod-1/f1.go"
    assert stat.S_IMODE((repo.root / "tool.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((repo.root / "pkg-0" / "mod-0" / "f0.log").stat().st_mode) == 0o644  # owner-writable
    assert repo.probe not in repo.files and repo.services == [] and repo.ignored is None


def test_the_context_sends_the_files_the_folders_dockerignore_names(tmp_path, shared_daemon):
    """The bench's Dockerfile lives outside the copy with an empty ignore file of its own: a change to a
    file the folder's own .dockerignore excludes invalidates the COPY step."""
    source = real_folder(tmp_path / "src", files=40)
    repo, _ = trees.tree_copy(source, tmp_path / "b")
    name = f"bench-tree-{tmp_path.name}"
    shared_daemon.client.register(str(repo.root), repo.dockerfile, name=name)
    shared_daemon.client.mark_built(pb.ContextRef(name=name))

    (repo.root / "pkg-0" / "mod-0" / "f0.log").write_bytes(b"not ignored\n")
    [report] = shared_daemon.client.reports([pb.ContextRef(name=name)])

    step = run.copy_step(report)
    assert step.status == pb.STEP_STATUS_INVALIDATED
    assert [change.path for change in step.changed_paths] == ["pkg-0/mod-0/f0.log"]


def test_a_bench_folder_inside_the_tree_is_refused(tmp_path):
    source = real_folder(tmp_path / "src", files=10)
    with pytest.raises(SystemExit, match="is inside it; give a --dir outside it"):
        trees.tree_copy(source, source / "bench")
    assert not (source / "bench").exists()
