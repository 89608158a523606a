"""A restart keeps what is still true and re-checks everything else.

Each view saves its folder digests with the listing signature they rest on
(every entry's name and stat key); a new engine keeps the digest of a folder
whose listing is unchanged when its sub-folders keep theirs, and reads a
folder's saved file records only where a file digest is needed. Whatever
changed while no daemon ran, the first answer must equal a fresh scan.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.daemon import answer, fresh_report, start_daemon
from support.waiting import wait_until

from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatchd.cache.store import Store
from ctxwatchd.context import hashing, view
from ctxwatchd.context.records import RACY_WINDOW_NS
from ctxwatchd.context.tree import Tree, listing_signature
from ctxwatchd.engine import Engine
from ctxwatchd.registry import ContextRef, Registration
from ctxwatchd.requests import BuildOptions
from ctxwatchd.server.main import STATE_FILE
from ctxwatchd.server.wire import report_message

DOCKERFILE = """\
FROM scratch
COPY . /all
COPY src/ /src/
COPY *.txt /txt/
"""


def make_tree(folder: Path) -> Path:
    for i in range(3):
        for j in range(3):
            deep = folder / "src" / f"pkg{i}" / f"mod{j}"
            deep.mkdir(parents=True)
            for k in range(3):
                (deep / f"f{k}.py").write_text(f"{i}{j}{k}\n")
    (folder / "docs").mkdir()
    (folder / "docs" / "readme.md").write_text("readme\n")
    (folder / "node_modules" / "pkg").mkdir(parents=True)
    (folder / "node_modules" / "pkg" / "index.js").write_text("1\n")
    (folder / "a.txt").write_text("a\n")
    (folder / "Dockerfile").write_text(DOCKERFILE)
    (folder / ".dockerignore").write_text("node_modules\n")
    time.sleep(2 * RACY_WINDOW_NS / 1e9)  # no file is racy when first hashed
    return folder


def run_engine(state: Path, ctx: Path, then: Callable[[Engine, object], None] = lambda engine, reg: None) -> None:
    """One daemon run: an engine (watching) does `then`, and closes (saving its caches)."""
    store = Store(state / STATE_FILE)
    engine = Engine(store)
    try:
        if not engine.contexts():
            engine.register(Registration(path=str(ctx), name="app"))
        reg = engine.resolve(ContextRef(name="app"))
        then(engine, reg)
    finally:
        engine.close()
        store.close()


def first_answer(state: Path, ctx: Path) -> tuple[pb.Report, int, int]:
    """The first report of a restarted engine, the files it read and the folder digests it computed."""
    seen = {}

    def ask(engine: Engine, reg) -> None:
        seen["report"] = report_message(engine.report(reg, BuildOptions()))
        seen["files"] = reg.root.tree.files_hashed
        seen["folders"] = sum(view.folders_hashed for view in engine.views(reg).values())

    run_engine(state, ctx, ask)
    return seen["report"], seen["files"], seen["folders"]


def same_size_edit_mtime_put_back(ctx: Path) -> None:
    path = ctx / "src" / "pkg0" / "mod0" / "f1.py"
    st = os.stat(path)
    path.write_text("XYZ\n")  # same size as "001\n"
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the ctime tells


def replace_folder_with_same_names(ctx: Path) -> None:
    folder = ctx / "src" / "pkg2" / "mod1"
    moved = ctx / "src" / "pkg2" / "old"
    folder.rename(moved)
    folder.mkdir()
    for k in range(3):
        (folder / f"f{k}.py").write_text(f"21{k}\n")  # same names and content, new inodes
    (folder / "f1.py").write_text("different\n")
    for path in moved.iterdir():
        path.unlink()
    moved.rmdir()


CHANGES_WHILE_DOWN = {
    "deep file content": lambda ctx: (ctx / "src" / "pkg1" / "mod2" / "f0.py").write_text("changed\n"),
    "same size, mtime put back": same_size_edit_mtime_put_back,
    "file added": lambda ctx: (ctx / "src" / "pkg0" / "new.py").write_text("new\n"),
    "file removed": lambda ctx: (ctx / "src" / "pkg1" / "mod0" / "f2.py").unlink(),
    "folder mode": lambda ctx: os.chmod(ctx / "src" / "pkg2", 0o700),
    "file mode": lambda ctx: os.chmod(ctx / "docs" / "readme.md", 0o755),
    "folder replaced": replace_folder_with_same_names,
    "ignored file edited": lambda ctx: (ctx / "node_modules" / "pkg" / "index.js").write_text("2\n"),
    "ignore file edited": lambda ctx: (ctx / ".dockerignore").write_text("node_modules\ndocs\n"),
    "symlink added": lambda ctx: os.symlink("../a.txt", ctx / "src" / "link"),
}


@pytest.fixture(params=["listed by the walk", "listed by workers"])
def listing(request, monkeypatch) -> Iterator[None]:
    """Folders listed on the walk's thread (a small tree), or, past the
    root, all by the hash workers (as a large tree's are)."""
    if request.param == "listed by the walk":
        yield
        return
    monkeypatch.setattr(hashing, "LISTED_HERE", 0)
    monkeypatch.setattr(hashing, "BATCH_FOLDERS", 2)
    installed = []
    install = Tree.install_listing
    monkeypatch.setattr(Tree, "install_listing", lambda *args: installed.append(args[1]) or install(*args))
    yield
    assert "src/pkg1/mod2" in installed, "the workers listed the folders"


@pytest.mark.parametrize("change", list(CHANGES_WHILE_DOWN.values()), ids=list(CHANGES_WHILE_DOWN))
def test_first_answer_after_a_restart_equals_a_fresh_scan(tmp_path, change, listing):
    ctx = make_tree(tmp_path / "ctx")
    run_engine(tmp_path / "state", ctx, lambda engine, reg: report_message(engine.report(reg, BuildOptions())))
    change(ctx)
    report, _, _ = first_answer(tmp_path / "state", ctx)
    assert answer(report) == answer(fresh_report(ctx))


def test_restarts_with_nothing_changed_read_no_file_and_compute_no_folder_digest(tmp_path, listing):
    ctx = make_tree(tmp_path / "ctx")
    run_engine(tmp_path / "state", ctx, lambda engine, reg: report_message(engine.report(reg, BuildOptions())))
    for _ in range(3):  # each run saves again what it restored without using
        report, files_read, folders_computed = first_answer(tmp_path / "state", ctx)
        assert answer(report) == answer(fresh_report(ctx))
        assert (files_read, folders_computed) == (0, 0)
    # A change after several restarts still finds every other record saved.
    (ctx / "src" / "pkg2" / "mod2" / "f1.py").write_text("changed\n")
    time.sleep(2 * RACY_WINDOW_NS / 1e9)
    report, files_read, _ = first_answer(tmp_path / "state", ctx)
    assert answer(report) == answer(fresh_report(ctx))
    assert files_read == 1


def test_a_stop_after_a_restart_saves_the_restored_digests_without_signing_their_listings_again(tmp_path, monkeypatch):
    ctx = make_tree(tmp_path / "ctx")
    run_engine(tmp_path / "state", ctx, lambda engine, reg: report_message(engine.report(reg, BuildOptions())))
    (ctx / "docs" / "new.md").write_text("added while down\n")
    time.sleep(2 * RACY_WINDOW_NS / 1e9)
    signed: list[str] = []

    def counting(folder):
        signed.append(folder)
        return listing_signature(folder)

    def stop_counting(engine, reg) -> None:
        report_message(engine.report(reg, BuildOptions()))
        signed.clear()  # the restart signs every listing to compare it with the saved one
        monkeypatch.setattr(view, "listing_signature", counting)

    run_engine(tmp_path / "state", ctx, stop_counting)
    # Only the folders whose digest was computed again: docs and the root, in the whole context's view.
    assert len(signed) == 2
    report, files_read, folders_computed = first_answer(tmp_path / "state", ctx)
    assert answer(report) == answer(fresh_report(ctx))
    assert (files_read, folders_computed) == (0, 0)  # what the stop saved is restored in full


def test_a_deep_change_recomputes_only_the_folders_above_it(tmp_path, listing):
    ctx = make_tree(tmp_path / "ctx")
    run_engine(tmp_path / "state", ctx, lambda engine, reg: report_message(engine.report(reg, BuildOptions())))
    (ctx / "src" / "pkg1" / "mod2" / "f0.py").write_text("changed while down\n")
    time.sleep(2 * RACY_WINDOW_NS / 1e9)  # else each view reads the new file again (racy)
    report, files_read, folders_computed = first_answer(tmp_path / "state", ctx)
    assert answer(report) == answer(fresh_report(ctx))
    assert files_read == 1
    # mod2, pkg1, src and the root, in each of the two views (the whole
    # context, and `COPY src/`'s), which share their digests of src and below.
    assert folders_computed <= 8


def test_folders_removed_while_running_do_not_stop_the_caches_being_saved(tmp_path):
    """Folders restored (their saved records never needed), then removed or
    replaced by a file while the daemon runs: shutdown still saves the rest."""
    ctx = make_tree(tmp_path / "ctx")
    run_engine(tmp_path / "state", ctx, lambda engine, reg: report_message(engine.report(reg, BuildOptions())))

    def remove_folders(engine: Engine, reg) -> None:
        report_message(engine.report(reg, BuildOptions()))
        shutil.rmtree(ctx / "src" / "pkg1")
        shutil.rmtree(ctx / "src" / "pkg2" / "mod0")
        (ctx / "src" / "pkg2" / "mod0").write_text("a file now\n")
        time.sleep(2 * RACY_WINDOW_NS / 1e9)  # read once, and saved
        assert answer(report_message(engine.report(reg, BuildOptions()))) == answer(fresh_report(ctx))

    run_engine(tmp_path / "state", ctx, remove_folders)
    report, files_read, _ = first_answer(tmp_path / "state", ctx)
    assert answer(report) == answer(fresh_report(ctx))
    assert files_read == 0  # the new file was read before the shutdown; every record was saved


def test_files_written_just_before_a_stop_are_read_again_at_the_stop_not_at_the_next_start(tmp_path):
    """A burst of writes right before the daemon stops leaves racy records;
    reading those files again as it stops lets their records and folder
    digests be saved, so the next start reads nothing."""
    ctx = make_tree(tmp_path / "ctx")
    run_engine(tmp_path / "state", ctx, lambda engine, reg: report_message(engine.report(reg, BuildOptions())))

    def burst_then_answer(engine: Engine, reg) -> None:
        for i in range(3):
            (ctx / "src" / f"pkg{i}" / "mod1" / "f0.py").write_text(f"burst {i}\n")
        report_message(engine.report(reg, BuildOptions()))  # the files are racy when read here
        time.sleep(2 * RACY_WINDOW_NS / 1e9)

    run_engine(tmp_path / "state", ctx, burst_then_answer)
    report, files_read, folders_computed = first_answer(tmp_path / "state", ctx)
    assert answer(report) == answer(fresh_report(ctx))
    assert (files_read, folders_computed) == (0, 0)


def test_a_file_racy_at_shutdown_is_read_again(tmp_path):
    """Hashed within the racy window of its last write: a later write could
    keep its stat key, so neither its record nor the digest of the folder
    holding it is kept; the folders beside it are."""
    ctx = make_tree(tmp_path / "ctx")
    racy = ctx / "src" / "pkg0" / "mod1" / "f2.py"

    def write_then_answer(engine: Engine, reg) -> None:
        racy.write_text("v1\n")
        soon = time.time_ns() + 10**10  # an mtime ahead of the clock: racy whenever it is read
        os.utime(racy, ns=(soon, soon))
        report_message(engine.report(reg, BuildOptions()))
        [whole] = [view for key, view in engine.views(reg).items() if key.excludes == ()]
        saved = dict(whole.saveable())
        assert "src/pkg0/mod1" not in saved
        assert {"src/pkg0/mod0", "src/pkg1", "docs", ""} <= saved.keys()

    run_engine(tmp_path / "state", ctx, write_then_answer)
    report, files_read, _ = first_answer(tmp_path / "state", ctx)
    assert answer(report) == answer(fresh_report(ctx))
    assert files_read >= 1


def test_the_daemon_warms_up_its_contexts_as_it_starts(tmp_path):
    """Registered contexts are answered once at start: the tree is listed
    before anyone asks (the status RPC does not sync or list anything)."""
    ctx = make_tree(tmp_path / "ctx")
    daemon = start_daemon(tmp_path / "daemon")
    daemon.client.register(str(ctx), name="app")
    daemon.client.mark_built(pb.ContextRef(name="app"))
    assert daemon.stop() == 0
    (ctx / "src" / "pkg0" / "mod0" / "f0.py").write_text("changed while down\n")

    again = start_daemon(tmp_path / "daemon")
    try:

        def listed() -> pb.WatchedRoot | None:
            [root] = again.client.daemon_status().roots
            return root if root.files else None

        root = wait_until(listed, 30, "the tree listed without a query")
        # Every file and folder but those inside the ignored node_modules (never listed).
        walked = [(folder, files) for folder, _, files in os.walk(ctx) if "node_modules/" not in folder]
        assert (root.files, root.directories) == (sum(len(files) for _, files in walked), len(walked))
        [report] = again.client.reports([pb.ContextRef(name="app")])
        assert answer(report) == answer(fresh_report(ctx))
        changed = [c.path for s in report.steps for c in s.changed_paths]
        assert changed and all(path.endswith("pkg0/mod0/f0.py") for path in changed)
    finally:
        assert again.stop() == 0
