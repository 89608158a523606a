"""The diff between a recorded tree and the current one, on a real tree in
a temporary folder: its findings, and what its budget spares."""

from __future__ import annotations

from pathlib import Path

from ctxwatchd.cache import diff
from ctxwatchd.cache.diff import CONTENT, Differ
from ctxwatchd.context.ignore import PathMatcher
from ctxwatchd.context.records import KIND_DIR
from ctxwatchd.context.tree import Tree, join
from ctxwatchd.context.view import ContextView

FOLDERS, FILES = 30, 20


def write_tree(root: Path, content: str) -> None:
    for f in range(FOLDERS):
        folder = root / f"d{f:02d}"
        folder.mkdir(exist_ok=True)
        for i in range(FILES):
            (folder / f"f{i:02d}.txt").write_text(content)


def recorded_nodes(view: ContextView, rel: str = "") -> dict[bytes, bytes]:
    """digest -> blob of every node the view sends below `rel` (what a build records)."""
    sent = view.node(rel)
    nodes = {sent.digest: sent.blob}
    if sent.kind == KIND_DIR:
        for child in sent.node.children:
            nodes.update(recorded_nodes(view, join(rel, child.name)))
    return nodes


def changes_after_rewrite(tmp_path: Path, budget: int) -> tuple[Differ, list[bytes]]:
    """Record every node, rewrite every file, and diff: the differ, and the
    recorded nodes it read."""
    write_tree(tmp_path, "old\n")
    view = ContextView(Tree(str(tmp_path)), "", PathMatcher([]))
    old = recorded_nodes(view)
    old_root = view.node("").digest
    write_tree(tmp_path, "new content\n")
    view = ContextView(Tree(str(tmp_path)), "", PathMatcher([]))
    read: list[bytes] = []

    def load_old(digest: bytes) -> bytes | None:
        read.append(digest)
        return old.get(digest)

    diff.COMPARE_BUDGET, saved = budget, diff.COMPARE_BUDGET
    try:
        differ = Differ(load_old, view, limit=20, built_at_ns=0)
        assert differ.compare(old_root, view.node("").blob, "")
    finally:
        diff.COMPARE_BUDGET = saved
    return differ, read


def test_every_change_is_found_within_a_large_budget(tmp_path: Path) -> None:
    differ, read = changes_after_rewrite(tmp_path, budget=10_000)
    assert not differ.truncated
    assert differ.total == FOLDERS * FILES
    assert [c.path for c in differ.changes] == [f"d00/f{i:02d}.txt" for i in range(FILES)]
    assert {c.kind for c in differ.changes} == {CONTENT}
    assert len(read) == 1 + FOLDERS + FOLDERS * FILES  # every changed node, once


def test_nodes_past_the_budget_are_never_read(tmp_path: Path) -> None:
    budget = 50
    differ, read = changes_after_rewrite(tmp_path, budget)
    assert differ.truncated
    assert len(differ.changes) == 20  # the paths shown are always found
    assert 20 <= differ.total < FOLDERS * FILES
    # The root, then one recorded node per compared node: the changed
    # children of a folder are read when compared, not when found.
    assert len(read) <= 1 + budget + 1
