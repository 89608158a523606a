"""A tree watches the folders it lists, and only those.

Each folder gets its inotify watch just before it is listed, so folders no
context sends (an ignored node_modules) cost no watch, and a restart reads
each folder once. The watches are read from the kernel itself: the
"inotify wd:" lines of /proc/self/fdinfo name the watched inodes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from support.contexts import make_context
from support.daemon import answer, fresh_report
from support.inotify import lowered_inotify_setting, wait_until_seen, watching_engine
from support.userns import run_in_user_namespace

from ctxwatchd.engine import Engine
from ctxwatchd.registry import ContextRef, Registration
from ctxwatchd.requests import BuildOptions
from ctxwatchd.server.wire import report_message

# The watch limit of the user namespace the process runs in (fs.inotify.max_user_watches is the first one's).
NAMESPACE_MAX_WATCHES = Path("/proc/sys/user/max_inotify_watches")
DOCKERFILE = "FROM scratch\nCOPY . /app\n"
# A context whose node_modules (50 folders) is ignored.
APP_FILES = {
    **{f"{name}/index.txt": f"{name}\n" for name in ("src/api", "src/web", "docs")},
    **{f"node_modules/pkg{i}/index.js": f"{i}\n" for i in range(50)},
    ".dockerignore": "node_modules\n",
}


def watched_inodes() -> set[int]:
    """Inodes watched by this process's inotify instances, as the kernel lists them."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            info = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue  # closed meanwhile
        for line in info.splitlines():
            if line.startswith("inotify wd:"):
                fields = dict(field.split(":", 1) for field in line.split()[1:])
                inodes.add(int(fields["ino"], 16))
    return inodes


def inode(path: Path) -> int:
    return os.stat(path).st_ino


def register(engine: Engine, ctx: Path) -> object:
    engine.register(Registration(path=str(ctx), name="app"))
    return engine.resolve(ContextRef(name="app"))


def test_only_the_folders_a_context_sends_are_watched(tmp_path):
    ctx = make_context(tmp_path / "app", DOCKERFILE, APP_FILES)
    with watching_engine(tmp_path / "state") as engine:
        reg = register(engine, ctx)
        report_message(engine.report(reg, BuildOptions()))
        watched = watched_inodes()
        sent = [ctx, ctx / "src", ctx / "src" / "api", ctx / "src" / "web", ctx / "docs"]
        assert {inode(p) for p in sent} <= watched
        ignored = [ctx / "node_modules", *(ctx / "node_modules").iterdir()]
        assert not {inode(p) for p in ignored} & watched

        # A folder created after the first answer is watched once it is
        # listed, and its later edits arrive as events (no re-scan needed).
        (ctx / "src" / "new").mkdir()
        (ctx / "src" / "new" / "a.txt").write_text("a\n")
        assert answer(report_message(engine.report(reg, BuildOptions()))) == answer(fresh_report(ctx))
        assert inode(ctx / "src" / "new") in watched_inodes()
        (ctx / "src" / "new" / "a.txt").write_text("a, changed\n")
        wait_until_seen(reg.root, "src/new/a.txt")
        assert answer(report_message(engine.report(reg, BuildOptions()))) == answer(fresh_report(ctx))


def test_a_dockerfile_folder_the_context_does_not_send_is_watched(tmp_path):
    """Live watchers must wake on Dockerfile edits even where .dockerignore
    excludes the Dockerfile's folder."""
    ctx = make_context(tmp_path / "app", DOCKERFILE, APP_FILES)
    (ctx / "docker").mkdir()
    (ctx / "docker" / "Dockerfile").write_text(DOCKERFILE)
    (ctx / ".dockerignore").write_text("node_modules\ndocker\n")
    with watching_engine(tmp_path / "state") as engine:
        engine.register(Registration(path=str(ctx), name="app", dockerfile="docker/Dockerfile"))
        reg = engine.resolve(ContextRef(name="app"))
        report_message(engine.report(reg, BuildOptions()))
        assert inode(ctx / "docker") in watched_inodes()
        seen = engine.generation
        (ctx / "docker" / "Dockerfile").write_text(DOCKERFILE + "COPY docs /docs\n")
        assert engine.wait_for_activity(seen) != seen


def own_watches() -> int:
    """The inotify watches this process holds, as the kernel lists them."""
    return sum(line.startswith("inotify wd:") for fd in Path("/proc/self/fdinfo").iterdir() for line in _lines(fd))


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []  # a descriptor closed meanwhile


def test_a_folder_the_kernel_will_not_watch_means_answers_from_rescans(tmp_path):
    # In a user namespace of its own, the watch limit counts this engine's watches only (not those of
    # whatever else runs on the machine), and lowering it touches nothing outside.
    run_in_user_namespace(answers_from_rescans_when_a_watch_is_refused, str(tmp_path))


def answers_from_rescans_when_a_watch_is_refused(tmp: str) -> None:
    tmp_path = Path(tmp)
    ctx = make_context(tmp_path / "app", DOCKERFILE, APP_FILES)
    with watching_engine(tmp_path / "state") as engine:
        reg = register(engine, ctx)
        # The root and one folder; the next one is refused.
        with lowered_inotify_setting(NAMESPACE_MAX_WATCHES, lambda: own_watches() + 2):
            report = report_message(engine.report(reg, BuildOptions()))
            [status] = engine.status()
        assert answer(report) == answer(fresh_report(ctx))
        assert not status.healthy
        assert "cannot watch" in status.message and str(ctx) in status.message
        assert "max_user_watches" in status.message  # what to do about it

        # No event can be trusted now: every answer comes from a re-scan.
        for folder in ("src/api", "src/web", "docs"):
            (ctx / folder / "index.txt").write_text("changed\n")
            assert answer(report_message(engine.report(reg, BuildOptions()))) == answer(fresh_report(ctx))
        # Once watches are available again, a retry watches the tree again.
        reg.root.retry_watch_at = time.monotonic()
        report_message(engine.report(reg, BuildOptions()))
        [status] = engine.status()
        assert status.healthy, status.message
        assert inode(ctx / "docs") in watched_inodes()
