"""Build contexts written for a test: a Dockerfile and the files it reads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def make_context(
    folder: Path,
    dockerfile: str | None,
    files: Mapping[str, str | bytes] | None = None,
    modes: Mapping[str, int] | None = None,
) -> Path:
    """`folder` with the Dockerfile (None: none) and `files` (relative path ->
    text or bytes; a path ending in "/" is an empty folder), `modes` set on
    the paths named. Returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    if dockerfile is not None:
        (folder / "Dockerfile").write_text(dockerfile)
    for rel, content in (files or {}).items():
        path = folder / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    for rel, mode in (modes or {}).items():
        os.chmod(folder / rel, mode)
    return folder


# A small context as users have them: an ignore file, a file each COPY reads, a file ignored.
EXAMPLE_DOCKERFILE = """\
FROM scratch
COPY app.txt /app/app.txt
COPY src/ /app/src/
RUN ["/bin/true"]
"""
EXAMPLE_FILES = {".dockerignore": "*.log\n", "app.txt": "hello\n", "src/a.py": "print('a')\n", "notes.log": "started\n"}


def example_context(folder: Path) -> Path:
    return make_context(folder, EXAMPLE_DOCKERFILE, EXAMPLE_FILES, modes={"app.txt": 0o644})
