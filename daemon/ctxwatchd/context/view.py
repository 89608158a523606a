"""A context's view of a shared tree: only what would be sent to the builder.

The view applies the context's .dockerignore patterns the way BuildKit's file
walker does (an excluded folder is skipped unless an exception pattern may
re-include something below it, and then it is sent as the parent of what is
re-included) and keeps the Merkle digest of every folder it computed (a
file's record lives on the tree entry, shared by all views). A file event
drops the memo of that path and its ancestors only; entries whose tree entry
was replaced are recomputed because the memo remembers which entry it was
made from. Folder digests are saved when the daemon stops, with a signature
of the listing each was computed from; after a restart a folder listed the
same keeps its digest if its sub-folders keep theirs.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Generator, Iterator
from itertools import accumulate
from typing import Any, NamedTuple, TypeVar, cast

from .. import collector
from ..budget import check
from .hashing import READING_FILES, FileHasher, HashWorkers
from .ignore import MatchState, PathMatcher
from .nodes import (
    DIR_HEADER_SIZE,
    Child,
    Node,
    decode,
    decode_children,
    digest_of,
    dir_header,
    dir_mode,
    encode_child,
    encode_dir,
    is_dir_blob,
)
from .records import KIND_DIR, KIND_FILE, key_mode
from .tree import Entry, Tree, join, listing_signature

ROOT_STATE = MatchState(excluded=False, hits=0)  # the context root is always sent
# From this many entries a folder keeps its entries encoded (about 100 bytes
# each), so that a change in it encodes that entry again, not the folder. At
# 2,048, a write in a folder of 727 entries (the 1,000,000-file bench tree) cost
# 11 ms a query, against 5 ms at 512, for 4 MB more at a million files.
WIDE_FOLDER = 512


class ContextReadError(Exception):
    """A file the builder must be sent cannot be read (BuildKit fails the build)."""

    def __init__(self, rel: str, reason: str) -> None:
        super().__init__(f"cannot read {rel!r}: {reason}")
        self.rel = rel
        self.reason = reason


class ViewNode:
    """A folder as this view sends it. Only the digest is kept: the listing is
    made again when someone needs it (a diff, a recorded build), which keeps
    a large tree's memory low. The tree does not change between a sync and
    the answer that follows it, so the listing made again is the one the
    digest was computed from."""

    __slots__ = ("digest", "entry", "kind", "rel", "signature", "state", "view")

    def __init__(
        self, digest: bytes, view: ContextView, rel: str, entry: Entry, state: MatchState, signature: bytes | None
    ) -> None:
        self.kind = KIND_DIR
        self.digest = digest
        self.view = view
        self.rel = rel
        self.entry = entry
        self.state = state
        # A restored digest's listing signature (checked when restored): a stop
        # saves it again without signing the listing again. None: computed here.
        self.signature = signature

    @property
    def node(self) -> Node:
        children = self.view._children_now(self.rel, self.entry, self.state)
        return Node(kind=KIND_DIR, mode=_folder_mode(self.entry), children=children)

    @property
    def blob(self) -> bytes:
        """The node's canonical bytes."""
        wide = self.view.wide.get(self.rel)
        if wide is not None and wide.current(self.entry):
            return wide.blob()
        node = self.node
        return encode_dir(node.mode, node.children)


class _Block:
    """A run of consecutive entries of a wide folder, and their bytes joined."""

    __slots__ = ("joined", "names", "parts")

    def __init__(self, names: list[str], parts: list[bytes]) -> None:
        self.names = names
        self.parts = parts
        self.joined: bytes | None = None

    def bytes(self) -> bytes:
        if self.joined is None:
            self.joined = b"".join(self.parts)
        return self.joined


BLOCK = 512  # entries a wide folder's block holds when made; split in two past twice that


class WideListing:
    """A wide folder's entries as sent, encoded, in name order (b"" for an
    entry not sent), in blocks of about BLOCK entries. A file event marks its
    name stale; the next digest encodes the stale entries again and joins the
    blocks, only the changed ones being joined again."""

    __slots__ = ("block_offsets", "blocks", "entry", "firsts", "joined", "listing", "racy", "stale", "state")

    def __init__(self, entry: Entry, state: MatchState) -> None:
        self.entry = entry  # the tree's folder entry, and the listing, it was made from
        self.listing = entry.children
        self.state = state
        self.blocks = [_Block([], [])]
        self.firsts = [""]  # a bound below every name of each block (names are never "")
        self.stale: set[str] = set()  # changed since encoded
        self.racy: set[str] = set()  # files hashed too soon after a write: encoded again each time (see Tree.read)
        self.joined: bytes | None = None  # blob(), once asked
        self.block_offsets: list[int] | None = None  # where each block starts in blob(), once asked

    def holds(self, entry: Entry, state: MatchState) -> bool:
        """Whether it was made from this folder's current listing."""
        return self.entry is entry and self.listing is entry.children and self.state == state

    def current(self, entry: Entry) -> bool:
        """Whether blob() is the folder's node as last computed."""
        return self.entry is entry and self.listing is entry.children and not self.stale

    def put(self, name: str, part: bytes | None) -> None:
        """Set an entry's encoding (None: no longer listed)."""
        k = bisect_right(self.firsts, name) - 1
        block = self.blocks[k]
        i = bisect_left(block.names, name)
        found = i < len(block.names) and block.names[i] == name
        if part is None:
            if not found:
                return
            del block.names[i], block.parts[i]
            if not block.names and len(self.blocks) > 1:
                del self.blocks[k], self.firsts[k]
                self.firsts[0] = ""
        elif found:
            block.parts[i] = part
        else:
            block.names.insert(i, name)
            block.parts.insert(i, part)
            if len(block.names) > 2 * BLOCK:
                half = _Block(block.names[BLOCK:], block.parts[BLOCK:])
                del block.names[BLOCK:], block.parts[BLOCK:]
                self.blocks.insert(k + 1, half)
                self.firsts.insert(k + 1, half.names[0])
        block.joined = self.joined = self.block_offsets = None

    def blob(self) -> bytes:
        """The folder's node (made once per change: it is megabytes)."""
        if self.joined is None:
            self.joined = b"".join([dir_header(_folder_mode(self.entry)), *(block.bytes() for block in self.blocks)])
        return self.joined

    def sends_any(self) -> bool:
        return len(self.blob()) > DIR_HEADER_SIZE

    def boundary(self, pos: int, after: bool) -> int:
        """The start of an entry in blob() (or its end) nearest to `pos`: at or
        before it, or at or after it."""
        if self.block_offsets is None:
            sizes = (len(block.bytes()) for block in self.blocks)
            self.block_offsets = list(accumulate(sizes, initial=DIR_HEADER_SIZE))
        k = min(bisect_right(self.block_offsets, pos) - 1, len(self.blocks) - 1)
        inside = list(accumulate(map(len, self.blocks[k].parts), initial=self.block_offsets[k]))
        if after:
            return inside[min(bisect_left(inside, pos), len(inside) - 1)]
        return inside[bisect_right(inside, pos) - 1]


class FileViewNode:
    """A file (symlink, special file) as sent: its digest and record exactly
    as they were hashed, even if the file is read again meanwhile."""

    __slots__ = ("blob", "digest", "kind")

    def __init__(self, kind: str, blob: bytes, digest: bytes) -> None:
        self.kind = kind
        self.blob = blob  # the node bytes, as the tree entry holds them
        self.digest = digest

    @property
    def node(self) -> Node:
        return decode(self.blob)


SentNode = ViewNode | FileViewNode  # a path as the view sends it


class SavedFolder(NamedTuple):
    """A folder digest as saved: the listing signature it rests on, and the digest."""

    signature: bytes
    digest: bytes


class ContextView:
    """Filtered Merkle digests of one context root inside a tree."""

    def __init__(
        self,
        tree: Tree,
        prefix: str,
        matcher: PathMatcher,
        hash_workers: HashWorkers | None = None,
        saved: dict[str, SavedFolder] | None = None,
    ) -> None:
        self.tree = tree
        self.hash_workers = hash_workers  # processes that hash many files before a walk needs them
        self.prefix = prefix  # the context folder, relative to the tree's root
        self.matcher = matcher
        # Folders only (a file's record lives on its tree entry, shared by all
        # views): the folder's node, or its entry when the folder sends nothing.
        # Either way the memo holds only while the tree entry is the same.
        self.memo: dict[str, ViewNode | Entry] = {}
        # Folder digests saved by an earlier run, with the listing signature
        # each rests on: a folder whose listing is unchanged keeps its digest
        # if its sub-folders keep theirs, and no file record is needed for it.
        self.saved = saved or {}
        self.unchanged: set[str] = set()  # folders found with their saved listing (not visited yet)
        self.folders_hashed = 0  # folder digests computed (not restored)
        self.wide: dict[str, WideListing] = {}  # folders of WIDE_FOLDER entries or more
        tree.listeners.append(self.invalidate)

    def close(self) -> None:
        self.tree.listeners.remove(self.invalidate)
        collector.something_closed()  # its folder nodes refer back to it

    def invalidate(self, tree_rel: str) -> None:
        """Forget the digests of a changed path and of every folder above it."""
        rel = self._context_rel(tree_rel)
        if rel is None:
            return
        self.memo.pop(rel, None)
        self.unchanged.discard(rel)
        self.wide.pop(rel, None)  # a folder itself changed (replaced, unreadable): encoded again in full
        while rel:
            parent = rel[: max(rel.rfind("/"), 0)]
            wide = self.wide.get(parent)
            if wide is not None:
                wide.stale.add(rel[len(parent) + 1 :] if parent else rel)
            rel = parent
            self.memo.pop(rel, None)
            self.unchanged.discard(rel)

    def node(self, rel: str) -> SentNode | None:
        """The node at context path `rel` ("" is the root), or None when it is
        missing or not sent (excluded by .dockerignore)."""
        entry = self.entry(rel)
        if entry is None:
            return None
        return self._node(rel, entry, self._state(rel))

    def prefetch(self, rel: str) -> None:
        """Hash the files under `rel` that the next walk will need, as they are
        found (see hashing.py: in worker processes, off the interpreter lock).
        Folders whose digest is still known are not entered."""
        entry = self.entry(rel)
        if entry is None or entry.kind != KIND_DIR:
            return
        state = self._state(rel)
        if not self._may_send_under(rel, state):
            return  # nothing below it is sent (sub-folders are pushed only when they may be)
        # Only folders are matched against the ignore patterns here: the walk
        # matches every path anyway, and a file excluded on its own (a rare
        # pattern like *.log) costs a needless hash, not a wrong answer.
        # Breadth first: a folder is entered long after it was found, so a
        # worker has listed it by then (FileHasher.list_ahead).
        todo = deque([(rel, entry, state)])
        with FileHasher(self.tree, self.hash_workers) as hasher:
            while todo:
                check(READING_FILES)
                hasher.poll()
                path, item, state = todo.popleft()
                if self._memo_holds(path, item):
                    continue  # its digest is known: nothing below needs hashing
                shared = self.matcher.entries_state(path, state)  # None: match each
                hasher.await_listing(self._tree_rel(path))
                listing = self._listing(path, item)
                # Files of a folder whose saved digest may stand are not even looked at.
                look_at_files = not state.excluded and not self._listing_unchanged(path, item)
                if look_at_files:
                    self.tree.apply_saved_records(self._tree_rel(path), item)
                wide = self.wide.get(path)
                if wide is not None and wide.holds(item, state):  # only its changed entries need looking at
                    listing = {name: listing[name] for name in wide.stale | wide.racy if name in listing}
                for name, child in listing.items():
                    if child.kind == KIND_DIR:
                        child_rel = join(path, name)
                        child_state = self._match(child_rel, state) if shared is None else shared
                        if self._may_send_under(child_rel, child_state):
                            todo.append((child_rel, child, child_state))
                            hasher.list_ahead(self._tree_rel(child_rel), child)
                    elif look_at_files and child.kind == KIND_FILE and child.unread:
                        hasher.add((self._tree_rel(join(path, name)), child))

    def entry(self, rel: str) -> Entry | None:
        return self.tree.get(self._tree_rel(rel))

    def _state(self, rel: str) -> MatchState:
        """The .dockerignore answer for `rel` as BuildKit's walk reaches it."""
        return _checked(rel, lambda: self.matcher.walk_state(rel)) if rel else ROOT_STATE

    def _match(self, rel: str, parent: MatchState) -> MatchState:
        return _checked(rel, lambda: self.matcher.match(rel, parent))

    def _node(self, rel: str, entry: Entry, state: MatchState) -> SentNode | None:
        return _run(self._visit(rel, entry, state), self._visit)

    def _children_now(self, rel: str, entry: Entry, state: MatchState) -> tuple[Child, ...]:
        """A folder's listing as sent, from the digests known (or computed) now."""
        return tuple(_run(self._children(rel, entry, state), self._visit))

    def _visit(self, rel: str, entry: Entry, state: MatchState) -> Generator[tuple, SentNode | None, SentNode | None]:
        if entry.kind != KIND_DIR:
            return self._file(rel, entry, state)
        if self._memo_holds(rel, entry):
            return self.known(rel)
        result = None
        if self._may_send_under(rel, state):
            digest = signature = None
            if self._listing_unchanged(rel, entry):
                self.unchanged.discard(rel)
                restored = yield from self._restored(rel, entry, state)
                if restored is not None:
                    signature, digest = restored
            if digest is None:
                if len(self._listing(rel, entry)) < WIDE_FOLDER:
                    self.wide.pop(rel, None)
                    children = yield from self._children(rel, entry, state)
                    blob = encode_dir(_folder_mode(entry), children) if children else b""
                else:
                    blob = yield from self._wide_blob(rel, entry, state)
                if blob or not state.excluded:  # an excluded folder is sent only to hold what is re-included
                    digest = digest_of(blob or encode_dir(_folder_mode(entry), ()))
                    self.folders_hashed += 1
            if digest is not None:
                result = ViewNode(digest, self, rel, entry, state, signature)
                collector.made(1)
        self.memo[rel] = entry if result is None else result
        return result

    def _listing_unchanged(self, rel: str, entry: Entry) -> bool:
        """Whether the folder is listed as it was when its digest was saved."""
        if rel in self.unchanged:
            return True
        saved = self.saved.get(rel)
        if saved is None:
            return False
        self._listing(rel, entry)
        if saved.signature != listing_signature(entry):
            return False
        self.unchanged.add(rel)
        return True

    def _restored(
        self, rel: str, entry: Entry, state: MatchState
    ) -> Generator[tuple, SentNode | None, SavedFolder | None]:
        """The saved digest (and signature) of a folder whose listing is unchanged,
        if every sub-folder it sends still has its saved digest (None: compute it)."""
        same = True
        shared = self.matcher.entries_state(rel, state)  # None: match each
        for name, child_entry in (entry.children or {}).items():
            if child_entry.kind == KIND_DIR:
                child_rel = join(rel, name)
                child = yield child_rel, child_entry, self._match(child_rel, state) if shared is None else shared
                saved = self.saved.pop(child_rel, None)
                same = same and (child.digest if child else None) == (saved.digest if saved else None)
        return self.saved.get(rel) if same else None

    def known(self, rel: str) -> ViewNode | None:
        """The folder's node as last computed, if it is still known (and sent)."""
        hit = self.memo.get(rel)
        return hit if isinstance(hit, ViewNode) else None

    def _may_send_under(self, rel: str, state: MatchState) -> bool:
        """Whether the folder is sent, or an exception pattern may re-include something below it."""
        return not state.excluded or self.matcher.may_include_under(rel)

    def _memo_holds(self, rel: str, entry: Entry) -> bool:
        hit = self.memo.get(rel)
        return hit is not None and (hit.entry if isinstance(hit, ViewNode) else hit) is entry

    def _children(self, rel: str, entry: Entry, state: MatchState) -> Generator[tuple, SentNode | None, list[Child]]:
        """The sent entries of a folder; yields each sub-folder to be visited."""
        children = []
        listing = self._listing(rel, entry)
        self.tree.apply_saved_records(self._tree_rel(rel), entry)
        shared = self.matcher.entries_state(rel, state)  # None: match each
        for name in sorted(listing):
            child_entry = listing[name]
            child_state = self._match(join(rel, name), state) if shared is None else shared
            if child_entry.kind == KIND_DIR:
                child = yield join(rel, name), child_entry, child_state
                if child is not None:
                    children.append(Child(name, KIND_DIR, child.digest))
            elif not child_state.excluded:  # files need no stack frame, nor a ViewNode
                # A file hashed before needs no path (this runs for every file of every folder digest).
                digest = self._file_digest(join(rel, name), child_entry) if child_entry.unread else child_entry.digest
                if digest is not None:
                    children.append(Child(name, child_entry.kind, digest))
        return children

    def _wide_blob(self, rel: str, entry: Entry, state: MatchState) -> Generator[tuple, SentNode | None, bytes]:
        """A wide folder's node (b"" when it sends nothing): only the entries
        changed since it was last encoded are encoded again."""
        listing = self._listing(rel, entry)
        wide = self.wide.get(rel)
        if wide is None or not wide.holds(entry, state):
            wide = self.wide[rel] = WideListing(entry, state)
            wide.stale = set(listing)
        # An entry leaves `stale` once encoded: a walk stopped half-way (an
        # unreadable file, the time limit) leaves the rest to the next one.
        names = sorted(wide.stale | wide.racy)
        self.tree.apply_saved_records(self._tree_rel(rel), entry)
        shared = self.matcher.entries_state(rel, state)  # None: match each
        for name in names:
            child_entry = listing.get(name)
            part = None if child_entry is None else b""
            if child_entry is not None:
                child_rel = join(rel, name)
                child_state = self._match(child_rel, state) if shared is None else shared
                if child_entry.kind == KIND_DIR:
                    child = yield child_rel, child_entry, child_state
                    if child is not None:
                        part = encode_child(name, KIND_DIR, child.digest)
                elif not child_state.excluded:
                    digest = self._file_digest(child_rel, child_entry)
                    if digest is not None:
                        part = encode_child(name, child_entry.kind, digest)
            if child_entry is not None and child_entry.racy:
                wide.racy.add(name)
            else:
                wide.racy.discard(name)
            wide.put(name, part)
            wide.stale.discard(name)
        return wide.blob() if wide.sends_any() else b""

    def changed_window(self, rel: str, old_blob: bytes, new_blob: bytes) -> tuple[Node, Node] | None:
        """For a wide folder: its recorded node and its current one (new_blob),
        each cut down to the entries between the first and the last that
        differ, found by comparing bytes, not by decoding every entry.
        None when rel is not a wide folder as last computed."""
        node = self.known(rel)
        wide = self.wide.get(rel)
        if node is None or wide is None or not wide.current(node.entry) or not is_dir_blob(old_blob):
            return None
        if new_blob != wide.blob():
            return None
        # The entries before `start` are the same on both sides, and so are those from new_end on.
        start = wide.boundary(_first_difference(old_blob, new_blob, DIR_HEADER_SIZE), after=False)
        new_end = wide.boundary(len(new_blob) - _common_tail(old_blob, new_blob, start), after=True)
        old_end = len(old_blob) - (len(new_blob) - new_end)
        old = decode_children(old_blob, start, old_end)
        if old is None:  # the recorded entries do not end where the same tail starts: take all after start
            old, new_end = decode_children(old_blob, start, len(old_blob)), len(new_blob)
        new = decode_children(new_blob, start, new_end)
        if old is None or new is None:
            raise ValueError(f"a node of {rel or '.'} ends inside an entry")
        return (
            Node(kind=KIND_DIR, mode=dir_mode(old_blob), children=old),
            Node(kind=KIND_DIR, mode=dir_mode(new_blob), children=new),
        )

    def saveable(self) -> Iterator[tuple[str, SavedFolder]]:
        """(rel, signature and digest) of every folder digest a later run may
        restore: those whose files were all hashed and none racy."""
        for rel, node in list(self.memo.items()):
            if isinstance(node, ViewNode) and self.entry(rel) is node.entry and self._all_hashed(node):
                yield rel, SavedFolder(node.signature or listing_signature(node.entry), node.digest)

    def _all_hashed(self, node: ViewNode) -> bool:
        if self._tree_rel(node.rel) in self.tree.unapplied:
            return True  # restored, and untouched since: its files are as saved
        shared = self.matcher.entries_state(node.rel, node.state)
        for name, child in (node.entry.children or {}).items():
            if child.kind != KIND_DIR and child.unread:
                state = shared if shared is not None else self._match(join(node.rel, name), node.state)
                if not state.excluded:
                    return False
        return True

    def _listing(self, rel: str, entry: Entry) -> dict[str, Entry]:
        try:
            return self.tree.children(entry, self._tree_rel(rel))
        except OSError as e:  # e.g. a folder without read permission: BuildKit fails the build too
            raise ContextReadError(rel or ".", e.strerror or str(e)) from e

    def _file(self, rel: str, entry: Entry, state: MatchState) -> FileViewNode | None:
        digest = None if state.excluded else self._file_digest(rel, entry)
        return None if digest is None else FileViewNode(entry.kind, entry.blob, digest)

    def _file_digest(self, rel: str, entry: Entry) -> bytes | None:
        try:
            return self.tree.digest(self._tree_rel(rel), entry)
        except FileNotFoundError:
            # Deleted since it was listed: its event is on the way, and the
            # answer already treats it as gone (as the builder would).
            return None
        except OSError as e:
            raise ContextReadError(rel, e.strerror or str(e)) from e

    def _tree_rel(self, rel: str) -> str:
        return join(self.prefix, rel) if rel else self.prefix

    def _context_rel(self, tree_rel: str) -> str | None:
        if not self.prefix:
            return tree_rel
        if tree_rel == self.prefix:
            return ""
        if tree_rel.startswith(self.prefix + "/"):
            return tree_rel[len(self.prefix) + 1 :]
        if self.prefix.startswith(tree_rel + "/") or not tree_rel:
            return ""  # a folder above the context changed: drop the root's digest
        return None


_Result = TypeVar("_Result")


def _run(walk: Generator[Any, Any, _Result], visit: Callable[..., Generator[Any, Any, Any]]) -> _Result:
    """Drive a post-order walk with an explicit stack, not recursion: folders
    may nest deeper than Python's recursion limit. A walk yields the
    (rel, entry, state) of each sub-folder it needs and is sent its node."""
    stack = [walk]
    result = None
    while stack:
        check(READING_FILES)
        try:
            child = stack[-1].send(result)
        except StopIteration as done:
            stack.pop()
            result = done.value
            continue
        result = None
        stack.append(visit(*child))
    return cast(_Result, result)  # the value of `walk`, the last generator to finish


_COMPARED = 1 << 16  # bytes compared at a time: a wide folder's node is megabytes


def _first_difference(a: bytes, b: bytes, start: int) -> int:
    """The first index from `start` at which a and b differ (the shorter
    length when one begins the other)."""
    end = min(len(a), len(b))
    while start < end:
        stop = min(start + _COMPARED, end)
        if a[start:stop] != b[start:stop]:
            # The first differing byte is the highest one of the XOR, read big-endian.
            diff = int.from_bytes(a[start:stop], "big") ^ int.from_bytes(b[start:stop], "big")
            return stop - (diff.bit_length() + 7) // 8
        start = stop
    return end


def _common_tail(a: bytes, b: bytes, start: int) -> int:
    """How many bytes a and b end with in common, neither counting before `start`."""
    limit, same = min(len(a), len(b)) - start, 0
    while same < limit:
        count = min(_COMPARED, limit - same)
        end_a, end_b = len(a) - same, len(b) - same
        if a[end_a - count : end_a] != b[end_b - count : end_b]:
            # Read little-endian, the XOR's highest byte is the last one that differs.
            diff = int.from_bytes(a[end_a - count : end_a], "little") ^ int.from_bytes(
                b[end_b - count : end_b], "little"
            )
            return same + count - (diff.bit_length() + 7) // 8
        same += count
    return limit


def _folder_mode(entry: Entry) -> int:
    return key_mode(entry.key) & 0o7777


def _checked(rel: str, match: Callable[[], MatchState]) -> MatchState:
    try:
        return match()
    except ValueError as e:  # a pattern Go's regexp rejects fails the build there too
        raise ContextReadError(rel, f"bad .dockerignore or --exclude pattern: {e}") from e
