"""Generate a deterministic synthetic monorepo for the ctxwatch benchmarks.

    .venv/bin/python bench/generate.py --files 100000 [--dir DIR] [--seed 1]

The tree has about N/10 directories nested a few levels deep:

    services/svc-NN/Dockerfile     per-service Dockerfile (context: the repo root)
    services/svc-NN/src/...        service sources
    libs/lib-NN/...                shared libraries
    tools/...                      scripts, docs
    node_modules/...               about 10% of the files, excluded by .dockerignore
    Dockerfile                     `COPY . /repo`: the whole tree
    .dockerignore

File sizes range from a few bytes to a few MB and add up to about 10 KB per
file (about 1 GB at 100,000 files); larger trees have about 1 KB per file
(1,000,000 files: about 1 GB, 4 GB on disk), since there it is the file
count that matters. Content is slices of one seeded random
buffer, each file starting with its own path so no two files are equal.
Re-running with the same arguments reuses the tree when its marker matches.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_FILES = 100_000
DEFAULT_SEED = 1
MEAN_FILE_BYTES = 10 * 1024
LARGE_TREE = 100_000  # files; larger trees have small files
LARGE_TREE_MEAN_FILE_BYTES = 1024
BUFFER_BYTES = 8 << 20  # larger than the largest file, so any file is one slice
FREE_SPACE_MARGIN = 2 << 30  # never leave less than this free on the disk
IGNORED_DIR = "node_modules"
PROBE = "services/svc-00/src/bench-probe.txt"  # the file run.py rewrites one at a time
PROBE_CONTENTS = (b"probe content A\n", b"probe content B\n")  # same size: only content differs
FORMAT_VERSION = 1
# (probability, smallest, largest) of a file size, log-uniform inside a bucket;
# the mean is about 10 KB before the exact scaling in `file_sizes`.
SIZE_BUCKETS = (
    (0.3395, 8, 512),
    (0.50, 512, 8 << 10),
    (0.15, 8 << 10, 64 << 10),
    (0.01, 64 << 10, 1 << 20),
    (0.0005, 1 << 20, 4 << 20),
)
# Share of the directories and files in each area of the repo.
AREAS = (("services", 0.55), ("libs", 0.27), ("tools", 0.08), (IGNORED_DIR, 0.10))
MAX_DEPTH = 4  # below the area's own folders
PINNED_BASE = "alpine:3.20@sha256:" + "0123456789abcdef" * 4  # pinned: FROM never reports unknown


@dataclass(frozen=True)
class Params:
    files: int
    seed: int
    version: int = FORMAT_VERSION
    mean_file_bytes: int = MEAN_FILE_BYTES


def mean_file_bytes(files: int) -> int:
    return MEAN_FILE_BYTES if files <= LARGE_TREE else LARGE_TREE_MEAN_FILE_BYTES


@dataclass(frozen=True)
class Repo:
    """A tree to measure (generated, or a copy of a folder: bench/trees.py): where it
    is and what run.py needs to know about it."""

    root: Path
    services: list[str]  # service names, e.g. svc-00 (none in a copied folder)
    files: list[str]  # every regular file, relative to root
    probe: str = PROBE  # the file run.py rewrites one at a time, relative to root
    dockerfile: str = "Dockerfile"  # the whole-tree context's: relative to root, or absolute (outside it)
    ignored: str | None = IGNORED_DIR  # a top folder the whole-tree context does not send

    def sent_files(self) -> list[str]:
        """Files the whole-tree context sends (all but the ignored folder)."""
        if self.ignored is None:
            return list(self.files)
        return [rel for rel in self.files if not rel.startswith(self.ignored + "/")]


def default_dir() -> Path:
    return Path(tempfile.gettempdir()) / "ctxwatch-bench"


def service_count(files: int) -> int:
    return min(20, max(4, files // 5000))


def file_sizes(rng: random.Random, count: int, mean_bytes: int) -> list[int]:
    """A realistic size mix, scaled so the total is exactly count * mean_bytes."""
    weights = [bucket[0] for bucket in SIZE_BUCKETS]
    sizes = []
    for _ in range(count):
        _, low, high = rng.choices(SIZE_BUCKETS, weights)[0]
        sizes.append(int(math.exp(rng.uniform(math.log(low), math.log(high)))))
    scale = count * mean_bytes / sum(sizes)
    return [max(1, min(BUFFER_BYTES // 2, int(size * scale))) for size in sizes]


def directories(rng: random.Random, files: int, services: list[str]) -> dict[str, list[str]]:
    """Directories per area, nested up to MAX_DEPTH levels, about files/10 in all."""
    total = max(len(AREAS) + len(services), files // 10)
    found: dict[str, list[str]] = {}
    for area, share in AREAS:
        tops = [f"services/{svc}/src" for svc in services] if area == "services" else [area]
        dirs = list(tops)
        for i in range(max(0, int(total * share) - len(dirs))):
            parent = rng.choice(dirs)
            if parent.count("/") - tops[0].count("/") >= MAX_DEPTH:
                parent = rng.choice(tops)
            dirs.append(f"{parent}/{_dir_name(area, i)}")
        found[area] = dirs
    return found


def _dir_name(area: str, i: int) -> str:
    return {"services": "mod", "libs": "pkg", "tools": "util", IGNORED_DIR: "dep"}[area] + f"-{i}"


def file_paths(rng: random.Random, files: int, dirs: dict[str, list[str]]) -> list[str]:
    """`files` unique file paths spread over the areas' directories."""
    paths = []
    for area, share in AREAS:
        count = round(files * share) if area != AREAS[-1][0] else files - len(paths)
        for i in range(count):
            paths.append(f"{rng.choice(dirs[area])}/f{i}{rng.choice(('.py', '.ts', '.json', '.md', '.txt'))}")
    return paths


def content(buffer: memoryview, rel: str, size: int, token: str = "") -> bytes | memoryview:
    """Deterministic content of `size` bytes: the token (first, so even tiny files change
    with it), the path, then a slice of the buffer."""
    header = f"{token}// {rel}\n".encode()
    if size <= len(header):
        return header[:size]
    if size >= BUFFER_BYTES:  # larger than any generated file (a copied folder's): the buffer repeated
        body = size - len(header)
        return header + bytes(buffer) * (body // BUFFER_BYTES) + buffer[: body % BUFFER_BYTES]
    offset = int.from_bytes(hashlib.sha256(rel.encode()).digest()[:4], "big") % (BUFFER_BYTES - size)
    return header + buffer[offset : offset + size - len(header)]


def write_file(path: Path, data: bytes | memoryview) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def random_buffer(seed: int) -> memoryview:
    return memoryview(random.Random(seed).randbytes(BUFFER_BYTES))


def dockerfiles(services: list[str]) -> dict[str, str]:
    files = {"Dockerfile": f"FROM {PINNED_BASE}\nCOPY . /repo\nRUN echo whole-tree build\n"}
    for svc in services:
        files[f"services/{svc}/Dockerfile"] = (
            f"FROM {PINNED_BASE}\nARG VARIANT=default\n"
            f"COPY services/{svc}/ /app/\nCOPY libs/ /libs/\nRUN echo build {svc} $VARIANT\n"
        )
    return files


def plan(params: Params, root: Path) -> tuple[Repo, list[int]]:
    """The tree's layout and file sizes, from the seed alone (nothing written)."""
    rng = random.Random(params.seed)
    services = [f"svc-{i:02d}" for i in range(service_count(params.files))]
    paths = file_paths(rng, params.files, directories(rng, params.files, services))
    sizes = file_sizes(rng, len(paths), params.mean_file_bytes)
    return Repo(root, services, paths), sizes


def check_free_space(folder: Path, needed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free - needed < FREE_SPACE_MARGIN:
        sys.exit(
            f"generate: {folder} has {free / 2**30:.1f} GiB free; the tree needs "
            f"{needed / 2**30:.1f} GiB and {FREE_SPACE_MARGIN / 2**30:.0f} GiB must stay free"
        )


def write_tree(repo: Repo, sizes: list[int], seed: int) -> None:
    buffer = random_buffer(seed)
    made: set[str] = set()
    for rel, size in zip(repo.files, sizes, strict=True):
        parent = rel.rpartition("/")[0]
        if parent not in made:
            os.makedirs(repo.root / parent, exist_ok=True)
            made.add(parent)
        write_file(repo.root / rel, content(buffer, rel, size))
    for rel, text in dockerfiles(repo.services).items():
        write_file(repo.root / rel, text.encode())
    write_file(repo.root / ".dockerignore", f"{IGNORED_DIR}\n.git\n".encode())
    write_file(repo.root / PROBE, PROBE_CONTENTS[0])


def generate(files: int = DEFAULT_FILES, folder: Path | None = None, seed: int = DEFAULT_SEED) -> Repo:
    """The tree for these parameters under `folder`, written unless already there."""
    params = Params(files, seed, mean_file_bytes=mean_file_bytes(files))
    folder = folder or default_dir()
    root = folder / f"repo-{files}-s{seed}"
    marker = folder / f"repo-{files}-s{seed}.json"  # outside the tree: not part of any context
    repo, sizes = plan(params, root)
    if marker.exists() and Params(**json.loads(marker.read_text())) == params and root.is_dir():
        return repo
    if root.exists():  # an interrupted or older generation: only our own folder is removed
        shutil.rmtree(root)
    check_free_space(folder, sum(sizes) + len(sizes) * 4096)
    started = time.monotonic()
    write_tree(repo, sizes, seed)
    marker.write_text(json.dumps(asdict(params)))
    print(
        f"generated {len(repo.files):,} files, {sum(sizes) / 2**20:,.0f} MiB in {root} "
        f"({time.monotonic() - started:.1f} s)",
        file=sys.stderr,
    )
    return repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=DEFAULT_FILES, help=f"number of files (default {DEFAULT_FILES})")
    parser.add_argument("--dir", type=Path, default=default_dir(), help=f"parent folder (default {default_dir()})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    print(generate(args.files, args.dir, args.seed).root)


if __name__ == "__main__":
    main()
