"""A folder the bench did not generate (a real checkout, a package cache), measured through a copy.

The figures write files (the probe, the burst), so run.py never measures the
folder itself: it copies it into the bench folder once and measures the copy,
which is kept and reused, as generated trees are, while the folder's files,
bytes and newest mtime stay the same. The whole-tree context sends every file
of the copy: its Dockerfile lives next to the copy, with an empty
`<Dockerfile>.dockerignore` of its own, so a `.dockerignore` inside the folder
does not apply.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import generate

PROBE = "ctxwatch-bench-probe.txt"  # a new file at the copy's top: the one file the write figures rewrite
FORMAT_VERSION = 1


@dataclass
class Survey:
    """What a stat walk of the folder finds (nothing is read)."""

    files: list[str] = field(default_factory=list)  # regular files, relative to the folder
    links: list[str] = field(default_factory=list)  # symlinks (copied as symlinks, never followed)
    folders: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)  # sockets, fifos, devices: not copied
    size: int = 0  # bytes of the regular files
    newest_mtime_ns: int = 0


@dataclass(frozen=True)
class Marker:
    """Written next to the copy once it is complete; a matching one means the copy is reused."""

    source: str
    files: int
    size: int
    newest_mtime_ns: int
    version: int = FORMAT_VERSION


def survey(source: Path) -> Survey:
    found = Survey()
    stack = [""]
    while stack:
        rel_folder = stack.pop()
        try:
            with os.scandir(source / rel_folder) as entries:
                listed = [(entry.name, entry.stat(follow_symlinks=False)) for entry in entries]
        except OSError as error:
            sys.exit(f"run: --tree: cannot list {error.filename}: {error.strerror}")
        for name, st in listed:
            rel = f"{rel_folder}/{name}" if rel_folder else name
            if stat.S_ISDIR(st.st_mode):
                found.folders.append(rel)
                stack.append(rel)
            elif stat.S_ISREG(st.st_mode):
                found.files.append(rel)
                found.size += st.st_size
                found.newest_mtime_ns = max(found.newest_mtime_ns, st.st_mtime_ns)
            elif stat.S_ISLNK(st.st_mode):
                found.links.append(rel)
            else:
                found.others.append(rel)
    return found


def copy(source: Path, found: Survey, root: Path) -> None:
    """The folder's folders, regular files and symlinks under `root`; files keep their
    permission bits plus the owner's write bit (the bench rewrites some of them)."""
    root.mkdir(parents=True)
    for rel in found.folders:  # the walk lists a folder before what it holds
        (root / rel).mkdir(mode=0o755)
    for rel in found.files:
        try:
            shutil.copyfile(source / rel, root / rel, follow_symlinks=False)
        except OSError as error:
            sys.exit(f"run: --tree: cannot copy {source / rel}: {error.strerror}")
        os.chmod(root / rel, stat.S_IMODE(os.lstat(source / rel).st_mode) | stat.S_IWUSR | stat.S_IRUSR)
    for rel in found.links:
        os.symlink(os.readlink(source / rel), root / rel)


def tree_id(source: Path) -> str:
    """A short name for the folder, the same on every run (its resolved path's hash)."""
    return hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:8]


def tree_copy(source: Path, folder: Path) -> tuple[generate.Repo, str]:
    """The copy of `source` under `folder` (made unless a complete one is there) and a
    sentence saying what it is, for the notes under the table."""
    source = source.resolve()
    if not source.is_dir():
        sys.exit(f"run: --tree {source}: not a folder")
    if folder.is_relative_to(source):
        sys.exit(f"run: --tree {source}: the bench folder {folder} is inside it; give a --dir outside it")
    name = f"tree-{tree_id(source)}-{source.name or 'root'}"
    root, marker_file = folder / name, folder / f"{name}.json"
    found = survey(source)
    if not found.files:
        sys.exit(f"run: --tree {source}: no regular files in it")
    marker = Marker(str(source), len(found.files), found.size, found.newest_mtime_ns)
    reused = marker_file.exists() and root.is_dir() and json.loads(marker_file.read_text()) == asdict(marker)
    if not reused:
        if root.exists():  # an interrupted copy, or one of an older state of the folder: our own folder
            shutil.rmtree(root)
        marker_file.unlink(missing_ok=True)
        generate.check_free_space(folder, found.size + (len(found.files) + len(found.folders)) * 4096)
        copy(source, found, root)
        marker_file.write_text(json.dumps(asdict(marker)))
    docker = folder / f"{name}.docker"  # outside the copy: the context sends the folder's files only
    docker.mkdir(exist_ok=True)
    (docker / "Dockerfile").write_text(f"FROM {generate.PINNED_BASE}\nCOPY . /tree\nRUN echo whole-tree build\n")
    (docker / "Dockerfile.dockerignore").write_text("")  # wins over a .dockerignore inside the folder
    files = [rel for rel in found.files if rel != PROBE]
    repo = generate.Repo(root, [], files, probe=PROBE, dockerfile=str(docker / "Dockerfile"), ignored=None)
    skipped = f"; {len(found.others):,} special files not copied" if found.others else ""
    said = (
        f"a copy of {source} ({'reused' if reused else 'made now'}: {root}); {len(found.files):,} files, "
        f"{found.size / 2**20:,.0f} MiB, {len(found.links):,} symlinks{skipped}; the context sends every file"
    )
    return repo, said
