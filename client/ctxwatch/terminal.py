"""Writing a command's output: lines that survive a closed pipe, colour and width for this stdout, and
the hashing progress shown while a first answer takes long."""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import sys
from collections.abc import Callable
from typing import TypeVar

PROGRESS_AFTER_S = 0.5
T = TypeVar("T")


def emit(text: str) -> None:
    """Print a line of output; a reader that went away (`| head`) ends the output quietly."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        stdout_gone()


def stdout_gone() -> None:
    # Later prints and the interpreter's final flush write to /dev/null instead of failing.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def style(args: argparse.Namespace) -> dict:
    """Colour and truncation for this stdout: --color, else colour on a terminal unless $NO_COLOR is set
    (https://no-color.org); lines are cut to the terminal's width only on a terminal."""
    terminal = sys.stdout.isatty()
    color = {"always": True, "never": False}.get(args.color, terminal and not os.environ.get("NO_COLOR"))
    return {"color": color, "width": shutil.get_terminal_size().columns if terminal else None}


def with_progress(client, call: Callable[[], T], quiet: bool = False) -> T:
    """Run `call`; while it takes long (a first index of a big context), show
    the daemon's hashing progress on stderr when that is a terminal."""
    if quiet or not sys.stderr.isatty() or not hasattr(client, "daemon_status"):
        return call()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(call)
        shown = False
        while True:
            try:
                result = pending.result(timeout=PROGRESS_AFTER_S)
                break
            except concurrent.futures.TimeoutError:
                roots = client.daemon_status().roots
                files, size = sum(r.files_hashed for r in roots), sum(r.bytes_hashed for r in roots)
                print(f"\rindexing: {files:,} files hashed ({size / 1e6:,.0f} MB)", end="", file=sys.stderr)
                shown = True
        if shown:
            print(file=sys.stderr)
        return result
