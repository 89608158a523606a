"""What changed between a recorded input and the current one, path by path.

Both sides are Merkle nodes: the old one is read by digest from the store,
the new one by path from the context view. The walk descends only where
digests differ, so unchanged folders cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..context.nodes import SELECTION, Child, Node, decode
from ..context.records import KIND_DIR, KIND_SYMLINK, FileRecord, key_mtime_ns
from ..context.tree import join
from ..context.view import ContextView

ADDED, REMOVED, CONTENT, MODE, SYMLINK_TARGET, TYPE, XATTR = (
    "added",
    "removed",
    "content",
    "mode",
    "symlink target",
    "type",
    "xattr",
)


@dataclass(frozen=True)
class Change:
    path: str
    kind: str
    detail: str = ""
    # A builder that kept its copy of the context re-sends only files whose
    # size, mtime, mode, owner or link target changed, and never updates a
    # directory's own metadata: this change would slip past it.
    unseen_by_reused_copy: bool = False


# Nodes compared per step, once the changes shown are found: after a branch
# switch, counting every changed file of a large tree would cost more than
# the answer is worth, and it is paid on every answer until the next build
# (about 0.1 ms per node). Past it the total is a lower bound ("N+ more").
COMPARE_BUDGET = 500


class Differ:
    """Collects changes until `limit`, then only counts them, within a budget."""

    def __init__(
        self, load_old: Callable[[bytes], bytes | None], view: ContextView, limit: int, built_at_ns: int
    ) -> None:
        self.load_old = load_old
        self.view = view
        self.built_at_ns = built_at_ns
        self.limit = limit
        self.changes: list[Change] = []
        self.total = 0
        self.budget = COMPARE_BUDGET
        self.truncated = False  # the budget ran out: total is a lower bound

    def add(self, change: Change) -> None:
        self.total += 1
        if len(self.changes) < self.limit:
            self.changes.append(change)

    def compare(self, old_digest: bytes, new_blob: bytes, new_rel: str) -> bool:
        """Record the changes between a recorded node and the current one (its bytes).

        Returns False when the old node is no longer stored (no detail known).
        """
        blob = self.load_old(old_digest)
        if blob is None:
            return False
        # An explicit stack (folders may nest deeper than Python's recursion
        # limit) of the children whose digests differ. Each is resolved (its
        # recorded node read, its current one listed) only when its turn
        # comes: those left when the budget runs out cost nothing.
        pending = self._compare_blobs(blob, new_blob, new_rel)
        while pending and self._within_budget():
            old_digest, child, rel = pending.pop()
            blob, current = self.load_old(old_digest), self._current(rel, child)
            if blob is None or current is None:
                self.add(Change(rel, CONTENT))
            else:
                pending.extend(self._compare_blobs(blob, current, rel))
        return True

    def _compare_blobs(self, old: bytes, new: bytes, rel: str) -> list[tuple[bytes, Child, str]]:
        # A wide folder is compared on the entries where the bytes differ, not decoded whole.
        window = self.view.changed_window(rel, old, new)
        return self._compare(*(window or (decode(old), decode(new))), rel)

    def _within_budget(self) -> bool:
        """Count one more compared node. Only counting is cut short: the paths
        shown are always found (the walk descends only where digests differ,
        so that is cheap)."""
        self.budget -= 1
        if self.budget < 0 and len(self.changes) >= self.limit:
            self.truncated = True
        return not self.truncated

    def _compare(self, old: Node, new: Node, rel: str) -> list[tuple[bytes, Child, str]]:
        """Record what differs at this node; return the children to compare."""
        if old.kind in (KIND_DIR, SELECTION) and new.kind in (KIND_DIR, SELECTION):
            if old.kind == KIND_DIR and new.kind == KIND_DIR and old.mode != new.mode:
                self.add(Change(rel or ".", MODE, f"mode {old.mode:04o} -> {new.mode:04o}", unseen_by_reused_copy=True))
            return self._compare_children(old, new, rel, selection=new.kind == SELECTION)
        if old.kind != new.kind:
            self.add(Change(rel, TYPE, f"{_kind_name(old.kind)} -> {_kind_name(new.kind)}"))
            return []
        assert old.record is not None and new.record is not None, "a node that is not a listing is a file record"
        unseen = self._unseen(rel, old.record, new.record)
        for change in record_changes(rel, old.record, new.record):
            self.add(Change(change.path, change.kind, change.detail, unseen))
        return []

    def _unseen(self, rel: str, old: FileRecord, new: FileRecord) -> bool:
        """True when size, mode and link target are unchanged and the mtime is
        older than the last build (so it was put back, or only xattrs changed)."""
        if (old.size, old.mode, old.link_target) != (new.size, new.mode, new.link_target):
            return False
        if old.content == new.content:
            return True  # extended attributes alone
        entry = self.view.entry(rel)
        return entry is not None and key_mtime_ns(entry.key) < self.built_at_ns

    def _compare_children(self, old: Node, new: Node, rel: str, selection: bool) -> list[tuple[bytes, Child, str]]:
        before = {c.name: c for c in old.children}
        after = {c.name: c for c in new.children}
        pairs = []
        for name in sorted(before.keys() | after.keys()):
            child_rel = name if selection else join(rel, name)
            was, now = before.get(name), after.get(name)
            if was is None:
                self.add(Change(child_rel, ADDED))
            elif now is None:
                self.add(Change(child_rel, REMOVED))
            elif was.digest != now.digest:
                pairs.append((was.digest, now, child_rel))
        return pairs[::-1]  # the stack pops them in name order

    def _current(self, rel: str, child: Child) -> bytes | None:
        """The current node (bytes) of an entry of a current listing. A file's
        record comes straight from its tree entry: being listed, it is sent, so
        the ignore patterns need not be walked again (most compared nodes are files)."""
        if child.kind != KIND_DIR:
            entry = self.view.entry(rel)
            return entry.blob if entry is not None and entry.blob else None
        current = self.view.node(rel)
        return current.blob if current is not None else None


def record_changes(rel: str, old: FileRecord, new: FileRecord) -> list[Change]:
    changes = []
    if old.content != new.content or old.size != new.size:
        changes.append(Change(rel, CONTENT, f"size {old.size} -> {new.size}" if old.size != new.size else ""))
    if old.mode != new.mode:
        changes.append(Change(rel, MODE, f"mode {old.mode:04o} -> {new.mode:04o}"))
    if old.link_target != new.link_target:
        changes.append(Change(rel, SYMLINK_TARGET, f"{old.link_target} -> {new.link_target}"))
    if old.xattrs != new.xattrs:
        names = sorted(
            {n for n, _ in old.xattrs} ^ {n for n, _ in new.xattrs}
            | {n for (n, v) in old.xattrs if (n, v) not in new.xattrs}
        )
        changes.append(Change(rel, XATTR, "extended attributes " + ", ".join(names)))
    return changes


def _kind_name(kind: str) -> str:
    return {KIND_DIR: "directory", KIND_SYMLINK: "symlink", "f": "file"}.get(kind, "special file")
