"""A folder of thousands of entries keeps its entries encoded: a change in it
encodes that entry again, not the folder (view.WideListing), and a diff
decodes only the entries where the bytes differ (ContextView.changed_window).
Both must give exactly what a fresh scan and a full decode give."""

from __future__ import annotations

import os
import shutil
from itertools import accumulate
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctxwatchd.cache.diff import ADDED, CONTENT, MODE, REMOVED, Differ
from ctxwatchd.context import view as view_module
from ctxwatchd.context.ignore import PathMatcher
from ctxwatchd.context.records import KIND_DIR
from ctxwatchd.context.tree import DirEntry, Tree, join
from ctxwatchd.context.view import ContextView

WIDE = "wide"
FILES = view_module.WIDE_FOLDER + 40
PATTERNS = ["wide/*.log"]  # some entries of the wide folder are not sent


def make_tree(root: Path) -> None:
    folder = root / WIDE
    folder.mkdir()
    for i in range(FILES):
        (folder / f"f{i:05d}.{'log' if i % 7 == 0 else 'txt'}").write_text(f"{i}\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.txt").write_text("inner\n")


@pytest.fixture(scope="module")
def wide_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wide")
    make_tree(root)
    return root


def fresh(root: Path) -> ContextView:
    return ContextView(Tree(str(root)), "", PathMatcher(PATTERNS))


def refresh(tree: Tree, touched: set[str]) -> None:
    """What the watcher does with the paths its events named."""
    for rel in sorted(touched, key=lambda r: r.count("/")):
        tree.refresh(rel)


def recorded_nodes(view: ContextView, rel: str = "") -> dict[bytes, bytes]:
    sent = view.node(rel)
    nodes = {sent.digest: sent.blob}
    if sent.kind == KIND_DIR:
        for child in sent.node.children:
            nodes.update(recorded_nodes(view, join(rel, child.name)))
    return nodes


NAMES = [f"f{i:05d}.txt" for i in (1, 2, 500, FILES - 1)] + ["f00000.log", "new.txt", "zz-new.txt", "aa-new.log"]
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(NAMES), st.sampled_from(["x\n", "other\n", "longer content\n"])),
        st.tuples(st.just("delete"), st.sampled_from(NAMES), st.just("")),
        st.tuples(st.just("chmod"), st.sampled_from(NAMES), st.just("")),
        st.tuples(st.just("subfolder"), st.sampled_from(["sub", "sub2"]), st.sampled_from(["write", "remove"])),
    ),
    min_size=1,
    max_size=6,
)


def apply(root: Path, operation: tuple[str, str, str]) -> set[str]:
    """Do one operation; the paths a watcher would be told about."""
    kind, name, arg = operation
    path = root / WIDE / name
    rel = f"{WIDE}/{name}"
    if kind == "write":
        path.write_text(arg)
    elif kind == "delete":
        if path.exists():
            path.unlink()
    elif kind == "chmod":
        if path.exists():
            path.chmod(path.stat().st_mode ^ 0o100)
    elif arg == "write":
        path.mkdir(exist_ok=True)
        (path / "inner.txt").write_text(f"{os.urandom(4).hex()}\n")
        return {rel, f"{rel}/inner.txt"}
    else:
        shutil.rmtree(path, ignore_errors=True)
    return {rel}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(OPERATIONS, min_size=1, max_size=4))
def test_a_wide_folder_kept_by_events_equals_a_fresh_scan(wide_tree, batches) -> None:
    root = wide_tree  # shared by the examples: whatever state one leaves, the next starts from a fresh view
    view = fresh(root)
    view.node("")
    assert view.wide[WIDE].sends_any()  # the folder is kept encoded
    for batch in batches:
        touched: set[str] = set()
        for operation in batch:
            touched |= apply(root, operation)
        refresh(view.tree, touched)
        view.prefetch("")
        scan = fresh(root)
        assert view.node("").digest == scan.node("").digest
        assert view.node(WIDE).blob == scan.node(WIDE).blob


def diff_after(root: Path, change) -> tuple[Differ, ContextView]:
    """Record every node, make a change (which returns the touched paths), diff."""
    view = fresh(root)
    old = recorded_nodes(view)
    old_root = view.node("").digest
    refresh(view.tree, change())
    differ = Differ(old.get, view, limit=20, built_at_ns=0)
    assert differ.compare(old_root, view.node("").blob, "")
    return differ, view


def test_a_diff_in_a_wide_folder_names_what_changed(tmp_path: Path) -> None:
    make_tree(tmp_path)
    folder = tmp_path / WIDE

    def change() -> set[str]:
        (folder / "f00500.txt").write_text("changed\n")  # the middle
        (folder / "f00001.txt").chmod(0o755)  # near the start
        (folder / "f00000.log").write_text("not sent\n")  # ignored: no change
        (folder / f"f{FILES - 1:05d}.txt").unlink()  # the end
        (folder / "zz-new.txt").write_text("new\n")  # added after every other
        return {
            f"{WIDE}/{n}" for n in ("f00500.txt", "f00001.txt", "f00000.log", f"f{FILES - 1:05d}.txt", "zz-new.txt")
        }

    differ, _ = diff_after(tmp_path, change)
    assert sorted((c.path, c.kind) for c in differ.changes) == [
        (f"{WIDE}/f00001.txt", MODE),
        (f"{WIDE}/f00500.txt", CONTENT),
        (f"{WIDE}/f{FILES - 1:05d}.txt", REMOVED),
        (f"{WIDE}/zz-new.txt", ADDED),
    ]


def test_one_change_in_a_wide_folder_decodes_one_entry(tmp_path: Path) -> None:
    make_tree(tmp_path)
    view = fresh(tmp_path)
    before = view.node(WIDE).blob
    (tmp_path / WIDE / "f00500.txt").write_text("changed, longer\n")
    refresh(view.tree, {f"{WIDE}/f00500.txt"})
    view.node("")
    old, new = view.changed_window(WIDE, before, view.node(WIDE).blob)
    assert [c.name for c in old.children] == [c.name for c in new.children] == ["f00500.txt"]
    assert old.children[0].digest != new.children[0].digest


@given(
    puts=st.lists(
        st.tuples(st.text("abcdef", min_size=1, max_size=3), st.one_of(st.none(), st.binary(max_size=3))),
        max_size=80,
    )
)
def test_a_wide_listing_in_small_blocks_is_the_sorted_join_of_its_entries(puts) -> None:
    """Blocks split, empty and are removed as entries come and go: the bytes
    and the entry boundaries stay those of the entries in name order."""
    saved = view_module.BLOCK
    view_module.BLOCK = 2
    try:
        folder = DirEntry(b"\0" * 44)
        folder.children = {}
        wide = view_module.WideListing(folder, view_module.ROOT_STATE)
        expected: dict[str, bytes] = {}
        for name, part in puts:
            wide.put(name, part)
            if part is None:
                expected.pop(name, None)
            else:
                expected[name] = part
            blob = wide.blob()
            assert blob[view_module.DIR_HEADER_SIZE :] == b"".join(expected[n] for n in sorted(expected))
        blob = wide.blob()
        starts = list(accumulate((len(expected[n]) for n in sorted(expected)), initial=view_module.DIR_HEADER_SIZE))
        for at in range(view_module.DIR_HEADER_SIZE, len(blob) + 1):
            assert wide.boundary(at, after=False) == max(s for s in starts if s <= at)
            assert wide.boundary(at, after=True) == min(s for s in starts if s >= at)
    finally:
        view_module.BLOCK = saved
