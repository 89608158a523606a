"""Write docs/ctxwatch.1 from the command line's own parser (argparse-manpage, a test dependency).

Usage: python docs/make_manpage.py   (tests/test_cli_conventions.py fails while the page is stale)

Generated rather than written by hand so that it never disagrees with `ctxwatch --help`;
committed so that the wheel ships it (share/man/man1) without argparse-manpage at build time.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from argparse_manpage.manpage import Manpage

from ctxwatch import cli, front, runner

PAGE = Path(__file__).resolve().parent / "ctxwatch.1"
INFO = {
    "project_name": "ctxwatch",
    "manual_title": "ctxwatch manual",
    # Fixed (not today's date), so that the page only changes when the parser does.
    "date": "2026-12-04",
    "description": "predict which Dockerfile steps BuildKit would take from its cache, and why",
    "long_description": "Exit codes: 0 ok; 1 `check` found steps that would run again; 2 any error.",
}


# What the parser does not say: the variables the `ctxwatch` program itself reads.
ENVIRONMENT = f"""\
.TP
\\fB{front.NO_RUNNER_ENV}\\fR
set to 1, every command runs in the ctxwatch process itself; otherwise {", ".join(front.RUNNER_COMMANDS)} run in a
child of the runner, a background process that has loaded the command line once (started by the first of them,
listening beside the daemon's default socket, in $XDG_RUNTIME_DIR/ctxwatch)
.TP
\\fB{runner.IDLE_TIMEOUT_ENV}\\fR
seconds without a command after which the runner exits (default {runner.IDLE_TIMEOUT_S})
.TP
\\fBNO_COLOR\\fR
set, no colour on a terminal (--color auto)
"""


def manpage() -> str:
    info = {**INFO, "version": importlib.metadata.version("ctxwatch")}
    page = Manpage(cli.build_parser(), format="single-commands-section", _data=info)
    page.add_section("environment", "=", ENVIRONMENT)
    return str(page)


if __name__ == "__main__":
    PAGE.write_text(manpage())
    print(f"wrote {PAGE}")
