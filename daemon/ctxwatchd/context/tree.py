"""The in-memory tree of one watched root: stat keys and file records.

Directories are listed lazily, the first time a context asks for them, so
folders no context reads (an ignored node_modules) cost nothing. Records are
hashed lazily too, and only again when the stat key changes or the record was
racy when it was made. The tree knows nothing of .dockerignore: contexts
apply their own filters on top (see view.py), so overlapping contexts share
one tree.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from .. import collector
from ..budget import DEFAULT_MAX_TREE_ENTRIES, TreeTooLarge
from .nodes import FS_ENCODING, FS_ERRORS, digest_of, encode_file
from .records import (
    KEY_SIZE,
    KIND_DIR,
    KIND_FILE,
    SavedRecord,
    StatKey,
    is_racy,
    key_inode,
    key_mode,
    key_size,
    kind_of,
    list_folder,
    listed_key,
    read_record,
    stat_key,
)

COOKIE_PREFIX = ".ctxwatch-cookie-"
# folder -> the records saved for its files, each by its name in the folder
SavedRecords = Callable[[str], Iterable[SavedRecord]]


class Entry:
    """One path of the tree: its type and stat key (made by new_entry).

    A folder and a file are separate classes, each with only the slots it
    uses: memory per path matters at a million files. Their constructors set
    the slots directly (no super() call): a restart makes 100,000 of them.
    """

    if TYPE_CHECKING:
        # To the type checker an Entry has every attribute of either class:
        # callers test `kind` (cheaper than isinstance), not the class.
        kind: str
        children: dict[str, Entry] | None

        @property
        def key(self) -> StatKey: ...
        @property
        def blob(self) -> bytes: ...
        @property
        def racy(self) -> bool: ...
        @property
        def unread(self) -> bool: ...
    else:
        __slots__ = ("kind",)
        # Defaults for what the other class has: a folder is never hashed, a
        # file has no children.
        blob = b""
        racy = unread = False
        children = None

    @property
    def digest(self) -> bytes:
        """The node digest (of a hashed file): computed when asked, which
        costs less than 32 bytes per file kept in memory."""
        return digest_of(self.blob)


# A file entry's flag byte: whether its record was made too soon after a write.
_FRESH, _RACY = b"\0", b"\1"
_RACY_FLAG = _RACY[0]
_NODE_AT = KEY_SIZE + 1  # where a file entry's node bytes start in `packed`


class FileEntry(Entry):
    """A file, symlink or special file.

    Its stat key, a flag saying whether the record is racy (see
    Tree.read), and the node's bytes (none until hashed) are packed in one
    bytes object: at a million files, one object per file instead of three
    is about 50 MB. A decoded record costs much more memory, and only
    explanations need one (decoded on demand). Files do not depend on a
    context's filter, so this is shared by all views.
    """

    __slots__ = ("packed",)

    def __init__(self, kind: str, packed: bytes) -> None:
        self.kind = kind
        self.packed = packed  # from new_file_key(), or hashed_as()

    @property
    def key(self) -> StatKey:
        return self.packed[:KEY_SIZE]

    @property
    def racy(self) -> bool:
        return self.packed[KEY_SIZE] == _RACY_FLAG

    @property
    def blob(self) -> bytes:
        """The node's bytes; b"" until hashed."""
        return self.packed[_NODE_AT:]

    @property
    def unread(self) -> bool:
        """Not hashed yet, or racy: Tree.digest() would read the file. Asked
        of every file in every walk: no copy of the node bytes made."""
        packed = self.packed
        return len(packed) == _NODE_AT or packed[KEY_SIZE] == _RACY_FLAG

    def hashed_as(self, key: StatKey, blob: bytes, racy: bool) -> None:
        self.packed = b"".join((key, _RACY if racy else _FRESH, blob))

    def forget_record(self) -> None:
        """Drop the node bytes: the file is read again when next needed."""
        self.packed = self.packed[:KEY_SIZE] + _FRESH


class DirEntry(Entry):
    """A folder; its children are None until listed."""

    if TYPE_CHECKING:
        key: StatKey  # a folder's own (a file's is part of its packed bytes)
    else:
        __slots__ = ("children", "key")

    def __init__(self, key: StatKey) -> None:
        self.kind = KIND_DIR
        self.key = key
        self.children = None


def new_entry(st: os.stat_result) -> Entry:
    return entry_of(*listed_key(st))


def entry_of(kind: str, packed: bytes) -> Entry:
    """The entry of a listed path, from its kind and packed stat (records.listed_key)."""
    return DirEntry(packed) if kind == KIND_DIR else FileEntry(kind, packed)


def listing_signature(folder: Entry) -> bytes:
    """What a digest computed from a listed folder rests on: the folder's own
    stat key and the name and stat key of every entry in it. Equal signatures
    mean every file in it would give the same record (the rule by which a
    file is not read again)."""
    children = folder.children
    assert children is not None, "only a listed folder has a signature"
    names = sorted(children)
    # Keys are 44 bytes each and names hold no "\0": with the count in front,
    # no two listings give the same bytes. (One join, no loop per name: a
    # restart signs every folder.)
    return digest_of(
        b"".join(
            [
                folder.key,
                len(names).to_bytes(4, "little"),
                *[children[name].key for name in names],
                "\0".join(names).encode(FS_ENCODING, FS_ERRORS),
            ]
        )
    )


def split(rel: str) -> list[str]:
    return [part for part in rel.split("/") if part] if rel else []


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class Tree:
    """Stat keys and records of every path under `root` that anyone asked about."""

    def __init__(
        self, root: str, saved_in: SavedRecords | None = None, before_listing: Callable[[str], None] | None = None
    ) -> None:
        self.root = root
        self.root_slash = root.rstrip("/") + "/"
        self.listeners: list[Callable[[str], None]] = []
        self.top = new_entry(os.lstat(root))
        self.files_hashed = 0
        self.bytes_hashed = 0
        self.generation = 0  # bumped on every change: answers computed before are stale
        # Records saved by an earlier run, asked for one folder at a time when
        # a file digest there is first needed (apply_saved_records()): a file whose stat key
        # is unchanged is not read again. A restart whose folders kept their
        # listings never needs them (see ContextView's saved digests).
        self.saved_in = saved_in
        # Listed folders whose saved records were not applied yet. No file of
        # theirs was hashed either: a file is read only once its folder's
        # records are applied (read(), and the walk before it sends files to workers).
        self.unapplied: set[str] = set()
        # Called with a folder's path just before it is listed (the watcher
        # starts watching it there: nothing changes unseen in between).
        self.before_listing = before_listing or (lambda path: None)

    # -- reading ---------------------------------------------------------
    def abspath(self, rel: str) -> str:
        # os.path.join's answer for a relative path, at less cost (a restart asks once per folder)
        return self.root_slash + rel if rel else self.root

    def get(self, rel: str) -> Entry | None:
        """The entry at `rel` ("" is the root), or None when it does not exist."""
        entry: Entry | None = self.top
        prefix = ""
        for name in split(rel):
            if entry is None or entry.kind != KIND_DIR:
                return None
            entry = self.children(entry, prefix).get(name)
            prefix = join(prefix, name)
        return entry

    def children(self, entry: Entry, rel: str) -> dict[str, Entry]:
        """The children of the directory entry at `rel`, listed on first use."""
        if entry.children is None:
            self._set_listing(rel, entry, self._list(self.abspath(rel)))
        assert entry.children is not None, "listed just now"
        return entry.children

    def install_listing(self, rel: str, entry: Entry, listed: Iterable[tuple[str, str, bytes]]) -> None:
        """Give the folder entry at `rel`, not listed yet, the listing a
        worker made after before_listing() was called for it: each entry's
        name, kind and packed stat (records.listed_key)."""
        if entry.children is None:
            found = {name: entry_of(kind, packed) for name, kind, packed in listed}
            self._set_listing(rel, entry, self._counted(self.abspath(rel), found))

    def _set_listing(self, rel: str, entry: Entry, found: dict[str, Entry]) -> None:
        assert isinstance(entry, DirEntry), "only a folder is listed"
        entry.children = found
        if self.saved_in is not None:
            self.unapplied.add(rel)

    def apply_saved_records(self, rel: str, entry: Entry | None) -> None:
        """Give the files of the listed folder `rel` the records saved by an
        earlier run, where their stat keys still match (once per listing)."""
        if rel not in self.unapplied:
            return
        self.unapplied.discard(rel)
        if entry is None or entry.children is None or self.saved_in is None:
            return  # no longer a listed folder: its next listing is a new one
        children = entry.children
        for name, key, node in self.saved_in(rel):
            child = children.get(name)
            if child is not None and child.key == key and not child.blob:
                assert isinstance(child, FileEntry), "a folder's key never equals a file's"
                child.hashed_as(key, node, racy=False)

    def read(self, rel: str, entry: Entry) -> None:
        """Make a non-folder entry's record current. The file is read only
        when its stat key changed since it was hashed (or saved), or it was racy."""
        if entry.unread:
            folder = rel.rpartition("/")[0]
            if folder in self.unapplied:
                self.apply_saved_records(folder, self.get(folder))
            if entry.unread:
                self._hash(rel, entry)

    def digest(self, rel: str, entry: Entry) -> bytes:
        """The node digest of a non-folder entry (read first if need be)."""
        self.read(rel, entry)
        return entry.digest

    def _hash(self, rel: str, entry: Entry) -> None:
        hashed_at = time.time_ns()
        record, key = read_record(self.abspath(rel), entry.key)
        if record.kind == KIND_DIR:
            # A folder now, since it was listed: its event is on the way, and
            # until then the answer treats the file as gone.
            raise FileNotFoundError(errno.ENOENT, "replaced by a folder", self.abspath(rel))
        self.install(entry, key, encode_file(record), hashed_at)

    def install(self, entry: Entry, key: StatKey, blob: bytes, hashed_at: int) -> None:
        """Give a non-folder entry the record (node bytes) read for stat key
        `key` at `hashed_at` (ns), here or by a worker process."""
        assert isinstance(entry, FileEntry), "only a file is hashed"
        entry.kind = kind_of(key_mode(key))
        entry.hashed_as(key, blob, is_racy(key, hashed_at))
        self.files_hashed += 1
        self.bytes_hashed += key_size(key) if entry.kind == KIND_FILE else 0

    def saveable_records(self) -> Iterator[tuple[str, list[SavedRecord]]]:
        """Every record that is safe to reuse later, by listed folder (its
        path below the root); folders without one are left out, and so are
        the untouched ones (their saved records are kept: untouched_folders)."""
        for rel, children in self.touched_folders():
            records = [
                SavedRecord(name, child.key, child.blob)
                for name, child in children.items()
                if child.blob and not child.racy
            ]
            if records:
                yield rel, records

    def settle_racy(self) -> None:
        """Read again the files hashed too soon after a write (racy): their
        records, and the folder digests resting on them, can then be saved.
        One that reads differently now is reported as changed."""
        for folder, children in self.touched_folders():  # reads and reports only: the tree keeps its shape
            for name, entry in children.items():
                if entry.racy:
                    assert isinstance(entry, FileEntry), "only a file is racy"
                    rel, read = join(folder, name), entry.blob
                    try:
                        self._hash(rel, entry)
                    except OSError:  # gone, or a folder now: its event is on the way
                        entry.forget_record()
                    if entry.blob != read:
                        self._changed(rel)

    def touched_folders(self) -> Iterator[tuple[str, dict[str, Entry]]]:
        """The listed folders whose saved records were applied, with their
        listings: no file elsewhere was hashed (see `unapplied`)."""
        return ((rel, children) for rel, children in self.listed_folders() if rel not in self.unapplied)

    def untouched_folders(self) -> list[str]:
        """Listed folders whose saved records this run never needed: those
        records are still good, and are kept rather than saved again."""
        return [rel for rel, _ in self.listed_folders() if rel in self.unapplied]

    def apply_saved(self) -> None:
        """Apply every listed folder's saved records (before they move elsewhere)."""
        for rel in list(self.unapplied):
            self.apply_saved_records(rel, self.get(rel))

    def listed_folders(self) -> Iterator[tuple[str, dict[str, Entry]]]:
        """Every listed folder with its listing, parents before children (no
        path made per file: a save walks a million)."""
        stack = [("", self.top.children)] if self.top.children is not None else []
        while stack:
            rel, children = stack.pop()
            yield rel, children
            for name, child in children.items():
                if child.children is not None:
                    stack.append((join(rel, name), child.children))

    def walk_loaded(self) -> Iterator[tuple[str, Entry]]:
        """Every entry already known, parents before children."""
        stack = [("", self.top)]
        while stack:
            rel, entry = stack.pop()
            yield rel, entry
            for name, child in (entry.children or {}).items():
                stack.append((join(rel, name), child))

    # -- updating ----------------------------------------------------------
    def refresh(self, rel: str) -> None:
        """Re-stat `rel` after a file event; notify listeners of what changed.

        A directory keeps its listing: additions and removals inside it come
        as events of their own, and only its mode counts in its digest. A new
        mode is the exception: the folder may have become unreadable (or
        readable again), so it is listed again.
        """
        parts = split(rel)
        siblings = self._loaded_listing(parts) if parts else None
        if parts and siblings is None:
            return  # nobody listed that folder yet: nothing to update
        old = siblings.get(parts[-1]) if siblings is not None else self.top
        try:
            st = os.lstat(self.abspath(rel))
        except (FileNotFoundError, NotADirectoryError):
            if siblings is None:
                raise  # the root itself is gone: no answer can be given
            if old is not None:
                del siblings[parts[-1]]
                self._changed(rel)
            return
        if parts and len(parts) == 1 and parts[0].startswith(COOKIE_PREFIX):
            return
        key = stat_key(st)
        # A folder replaced by another (moved away, recreated) must be listed again.
        if old is not None and old.kind == kind_of(st.st_mode) == KIND_DIR and key_inode(old.key) == key_inode(key):
            assert isinstance(old, DirEntry), "a folder's entry"
            mode_changed = key_mode(old.key) != st.st_mode
            old.key = key
            if mode_changed:
                self._changed(rel)
                if old.children is not None:
                    self._relist(rel, old)
            return
        if old is not None and old.key == key and old.kind == kind_of(st.st_mode):
            if old.racy:
                assert isinstance(old, FileEntry), "only a file is racy"
                old.forget_record()
                self._changed(rel)
            return
        if siblings is None:
            raise NotADirectoryError(f"watched root {self.root} is no longer a directory")
        siblings[parts[-1]] = new_entry(st)
        self._changed(rel)

    def rescan(self) -> None:
        """Re-stat every known path (after lost events); re-read only changed files."""
        self.refresh("")
        for rel, entry in list(self.walk_loaded()):
            if entry.kind == KIND_DIR and entry.children is not None:
                self._relist(rel, entry)

    # -- internals ---------------------------------------------------------
    def _relist(self, rel: str, entry: Entry) -> None:
        """Bring a listed directory's children in line with the disk."""
        try:
            current = self._list(self.abspath(rel))
        except OSError:  # unreadable now: forget the listing; the next walk reports it
            entry.children = None
            self._changed(rel)
            return
        listed = entry.children
        assert listed is not None, "only a listed folder is listed again"
        for name in set(listed) | set(current):
            old, new = listed.get(name), current.get(name)
            if old is not None and new is not None and old.key == new.key and old.kind == new.kind and not old.racy:
                continue
            if (
                old is not None
                and new is not None
                and old.kind == new.kind == KIND_DIR
                and key_inode(old.key) == key_inode(new.key)
            ):
                new.children = old.children  # the same folder: its listing is checked below
            if new is None:
                del listed[name]
            else:
                listed[name] = new
            self._changed(join(rel, name))

    # The most paths the listings may hold together (the watched root sets it
    # from the config: memory), and how many were listed or added, listings
    # dropped or replaced since included: an over-count, made exact when it passes the cap.
    max_entries = DEFAULT_MAX_TREE_ENTRIES
    listed_entries = 0

    def count_listed(self, added: int, listing_of: str | None = None) -> None:
        """Count `added` new paths: a new listing of the folder at the absolute
        path `listing_of` (not in the tree yet), else paths that events added
        (in it already). TreeTooLarge when the tree then holds more than max_entries."""
        self.listed_entries += added
        collector.made(added)
        if self.listed_entries > self.max_entries:
            # Count what is listed now (less the listing the new one replaces).
            listed = sum(len(children) for rel, children in self.listed_folders() if self.abspath(rel) != listing_of)
            self.listed_entries = listed + (added if listing_of is not None else 0)
            if self.listed_entries > self.max_entries:
                raise TreeTooLarge(self.root, self.max_entries)

    def _list(self, path: str) -> dict[str, Entry]:
        """The entries of the folder at `path`; TreeTooLarge when the tree
        would then hold more than max_entries paths."""
        self.before_listing(path)
        try:
            found = {name: new_entry(st) for name, st in list_folder(path)}
        except (FileNotFoundError, NotADirectoryError):
            found = {}
        return self._counted(path, found)

    def _counted(self, path: str, found: dict[str, Entry]) -> dict[str, Entry]:
        """A new listing of the folder at `path`, without the sync cookies,
        counted against max_entries (TreeTooLarge past it)."""
        if path == self.root:
            for name in [name for name in found if name.startswith(COOKIE_PREFIX)]:
                del found[name]
        self.count_listed(len(found), listing_of=path)
        return found

    def _loaded_listing(self, parts: list[str]) -> dict[str, Entry] | None:
        """The listing of the folder holding `parts`, or None if it was not listed."""
        listing = self.top.children
        for name in parts[:-1]:
            entry = listing.get(name) if listing is not None else None
            if entry is None or entry.kind != KIND_DIR:
                return None
            listing = entry.children
        return listing

    def _changed(self, rel: str) -> None:
        self.generation += 1
        for listener in self.listeners:
            listener(rel)
