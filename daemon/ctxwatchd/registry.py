"""The registry: registered contexts, the watched roots their trees live in,
and the locks that keep one root's work from blocking another's.

Locks, in the order they are taken:
  1. a root's lock (`answering`): held while its tree is synced, read or
     hashed and while the caches of its contexts change. A cold index of one
     root holds only that root's lock: answers for other roots go on.
  2. the registry lock: held briefly while contexts, roots and folder watches
     are looked up or changed; never while a tree is read.
A change that needs several roots (a new root above existing ones takes them
over) takes their locks first, then the registry lock, and checks that the
roots did not change in between.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from . import collector
from .budget import DEFAULT_MAX_TREE_ENTRIES
from .cache.store import ContextRow, Store
from .context.tree import SavedRecords, join
from .context.watched_file import WatchedFile
from .context.watcher import FolderWatch, Observer, WatchedRoot
from .errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from .limits import MAX_CONTEXTS, MAX_DOCKERFILE_BYTES, MAX_IGNORE_FILE_BYTES
from .requests import absolute_path, check_name, registrable_dir, validated_args, validated_build_contexts

if TYPE_CHECKING:
    from .answers import Evaluation
    from .caches import ViewKey
    from .dockerfile.parser import ParsedDockerfile


@dataclass(frozen=True)
class ContextRef:
    """A context named by its name, or by its folder (then it must be the only one there)."""

    name: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class Registration:
    """What a client asks to register (paths as the client gave them)."""

    path: str
    dockerfile: str = ""
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    name: str = ""
    build_contexts: dict[str, str] = field(default_factory=dict)  # named contexts (relative to path)
    no_cache: bool = False
    no_cache_filter: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    watch_root: str = ""
    strict_remote: bool | None = None  # None: the config file decides


@dataclass(frozen=True)
class ParsedFile:
    """A Dockerfile's bytes, their parse and their lines (for error ranges)."""

    data: bytes
    parsed: ParsedDockerfile
    lines: list[str]


class LastAnswer(NamedTuple):
    """A context's last answer, good for as long as what it depended on is unchanged."""

    depends_on: tuple  # (tree generation, history serial, ignore patterns, query options)
    evaluation: Evaluation


@dataclass
class Registered:
    """One registered context. Its fields below `ignore_files` are caches of
    the answer, read and changed only under its root's lock."""

    row: ContextRow
    root: WatchedRoot | None
    prefix: str  # the context folder below the root ("" when it is the root)
    dockerfile: WatchedFile
    ignore_files: tuple[WatchedFile, WatchedFile]  # <Dockerfile>.dockerignore, then <context>/.dockerignore
    dockerfile_watch: FolderWatch | None = None  # when the Dockerfile lives outside the tree
    views: set[ViewKey] = field(default_factory=set)  # the shared views it reads through
    patterns: tuple[str, ...] | None = None
    parsed: ParsedFile | None = None
    draft: ParsedFile | None = None  # the last unsaved text an editor asked about
    ignore_source: bytes | None = None  # the ignore file the patterns were read from
    last: LastAnswer | None = None
    named_ignores: dict[str, WatchedFile] = field(default_factory=dict)  # a named folder -> its .dockerignore


class Registry:
    """Contexts by name, watched roots by path, and the folder watches of
    Dockerfiles that live outside their context."""

    def __init__(
        self,
        store: Store,
        observer: Observer | None,
        on_activity: Callable[[], None],
        on_root_closed: Callable[[WatchedRoot], None],
        private_folders: tuple[str, ...] = (),
        max_tree_entries: int = DEFAULT_MAX_TREE_ENTRIES,
    ) -> None:
        self._store = store
        self._private_folders = private_folders
        self._max_tree_entries = max_tree_entries  # paths one root's tree may list (budget.TreeTooLarge)
        self._observer = observer
        self._on_activity = on_activity
        self._on_root_closed = on_root_closed  # the root's views are dropped there
        self._lock = threading.RLock()
        self._contexts: dict[str, Registered] = {}
        self._roots: dict[str, WatchedRoot] = {}
        self._root_locks: dict[str, threading.RLock] = {}
        self._folder_watches: dict[str, FolderWatch] = {}  # shared by Dockerfiles in the same folder
        for row in store.contexts():
            self._contexts[row.name] = self._activate(row)

    # -- reading -----------------------------------------------------------------------
    def contexts(self) -> list[Registered]:
        """Every registered context, by name."""
        with self._lock:
            return sorted(self._contexts.values(), key=lambda c: c.row.name)

    def count(self) -> int:
        return len(self._contexts)

    def roots(self) -> list[WatchedRoot]:
        return list(self._roots.values())  # a copy made atomically: never waits for a registration

    def is_registered(self, reg: Registered) -> bool:
        return self._contexts.get(reg.row.name) is reg

    def resolve(self, ref: ContextRef) -> Registered:
        if ref.name is not None:
            reg = self._contexts.get(ref.name)
            if reg is None:
                raise NotFound(f"context: no context named {ref.name!r} (see `ctxwatch ls`)")
            return reg
        if ref.path is not None:
            path = os.path.realpath(absolute_path(ref.path, "context.path"))
            with self._lock:
                found = [c for c in self._contexts.values() if c.row.path == path]
            if not found:
                raise NotFound(
                    f"context: no context is registered for {path} (register it: ctxwatch add {shlex.quote(path)})"
                )
            if len(found) > 1:
                names = ", ".join(sorted(c.row.name for c in found))
                raise InvalidArgument(f"context: {path} is registered {len(found)} times ({names}); name one")
            return found[0]
        raise InvalidArgument("context: give a name or a path")

    def resolve_all(self, refs: list[ContextRef]) -> list[Registered]:
        """The contexts named (every one, by name, when none is)."""
        return [self.resolve(ref) for ref in refs] or self.contexts()

    def using(self, root: WatchedRoot) -> list[Registered]:
        """The contexts whose files live in `root`."""
        with self._lock:
            return [c for c in self._contexts.values() if c.root is root]

    # -- locks ---------------------------------------------------------------------------
    @contextmanager
    def answering(self, reg: Registered, named_folders: Sequence[str] = ()) -> Iterator[WatchedRoot | None]:
        """Hold the lock of the context's root (giving it a root first, if its
        folder exists now): the tree and the context's caches are the caller's
        until the block ends. None: the context folder does not exist.
        The roots holding `named_folders` (its local named contexts; given
        roots as needed) are locked too, all in path order."""
        while True:
            root = reg.root
            if root is None:
                root = self._root_for_missing(reg)
                if root is None:
                    yield None
                    return
            others = [r for r in (self.root_for_folder(f) for f in named_folders) if r is not None]
            paths = sorted({root.path, *(r.path for r in others)})
            locks = [lock for path in paths if (lock := self._root_locks.get(path)) is not None]
            if len(locks) == len(paths):
                with ExitStack() as held:
                    for lock in locks:
                        held.enter_context(lock)
                    alive = all(self._roots.get(r.path) is r for r in [root, *others])
                    if reg.root is root and alive:
                        yield root
                        return
            if reg.root is root and self._roots.get(root.path) is not root:
                # its root closed and it did not move to another: it was removed
                raise NotFound(f"context: {reg.row.name!r} is no longer registered")

    def root_for_folder(self, folder: str) -> WatchedRoot | None:
        """The root holding a named context's folder, made if need be (None: it does not exist)."""
        while True:
            inner = self._roots_below(folder)
            with self._roots_locked(inner):
                if self._roots_below(folder) != inner:
                    continue
                return self._root_for(folder)

    def root_holding(self, folder: str) -> WatchedRoot | None:
        """The existing root that holds `folder`."""
        with self._lock:
            return next((r for p, r in self._roots.items() if inside(folder, p)), None)

    def try_root_lock(self, root: WatchedRoot, timeout: float) -> threading.RLock | None:
        """The root's lock, acquired, or None when it stays busy for `timeout` seconds."""
        lock = self._root_locks.get(root.path)
        return lock if lock is not None and lock.acquire(timeout=timeout) else None

    @contextmanager
    def all_roots_locked(self, timeout: float) -> Iterator[list[WatchedRoot] | None]:
        """Every root, each one's lock held (None, holding none, when one stays
        busy past `timeout` seconds; -1 waits as long as it takes)."""
        deadline = time.monotonic() + timeout
        held = []
        try:
            with self._lock:  # a snapshot: root locks are taken before the registry's, never inside it
                roots = sorted(self._roots.values(), key=lambda r: r.path)
                locks = [self._root_locks[root.path] for root in roots]
            for lock in locks:
                left = -1 if timeout < 0 else max(0.0, deadline - time.monotonic())
                if not lock.acquire(timeout=left):
                    yield None
                    return
                held.append(lock)
            yield roots
        finally:
            for lock in reversed(held):
                lock.release()

    @contextmanager
    def _roots_locked(self, paths: list[str]) -> Iterator[None]:
        """The locks of these roots (in path order, so two callers cannot deadlock), then the registry's."""
        locks = [self._root_locks[p] for p in sorted(paths) if p in self._root_locks]
        for lock in locks:
            lock.acquire()
        try:
            with self._lock:
                yield
        finally:
            for lock in reversed(locks):
                lock.release()

    # -- changes ---------------------------------------------------------------------------
    def register(self, req: Registration) -> tuple[ContextRow, bool]:
        """Add a context, or update the one registered for the same folder and
        Dockerfile (or name); True when it was an update."""
        path = registrable_dir(req.path, self._private_folders)
        if "\0" in req.dockerfile:
            raise InvalidArgument("dockerfile: contains a NUL byte")
        dockerfile = os.path.normpath(os.path.join(path, req.dockerfile or "Dockerfile"))
        if not os.path.exists(dockerfile):
            raise FailedPrecondition(f"dockerfile: {dockerfile} does not exist")
        if not os.path.isfile(dockerfile):
            raise InvalidArgument(f"dockerfile: {dockerfile} is not a file")
        build_args = validated_args(req.build_args, "build_args")
        build_contexts = validated_build_contexts(req.build_contexts, path, "build_contexts")
        watch_root = registrable_dir(req.watch_root, self._private_folders) if req.watch_root else ""
        if watch_root and not inside(path, watch_root):
            raise InvalidArgument(f"watch_root: {watch_root} does not hold the context folder {path}")
        while True:
            inner = self._roots_below(watch_root or path)
            with self._roots_locked(inner):
                if self._roots_below(watch_root or path) != inner:
                    continue  # roots changed while their locks were taken: take the right ones
                return self._register_locked(req, path, dockerfile, build_args, build_contexts, watch_root)

    def _register_locked(
        self,
        req: Registration,
        path: str,
        dockerfile: str,
        build_args: dict[str, str],
        build_contexts: dict[str, str],
        watch_root: str,
    ) -> tuple[ContextRow, bool]:
        existing = next(
            (
                c
                for c in self._contexts.values()
                if c.row.path == path and c.row.dockerfile == dockerfile and (not req.name or c.row.name == req.name)
            ),
            None,
        )
        name = req.name or (existing.row.name if existing else self._free_name(os.path.basename(path) or "root"))
        check_name(name)
        taken = self._contexts.get(name)
        if taken is not None and taken is not existing:
            raise AlreadyExists(f"name: a context named {name!r} is already registered for {taken.row.path}")
        row = ContextRow(
            name,
            path,
            dockerfile,
            build_args,
            req.target,
            existing.row.created_ms if existing else int(time.time() * 1000),
            build_contexts,
            req.no_cache,
            list(req.no_cache_filter),
            dict(req.labels),
            watch_root if watch_root != path else "",
            {} if req.strict_remote is None else {"strict_remote": req.strict_remote},
        )
        if existing is None and len(self._contexts) >= MAX_CONTEXTS:
            raise FailedPrecondition(f"{MAX_CONTEXTS} contexts are registered, the most ctxwatch watches")
        self._store.save_context(row)
        if existing is not None and existing.row.watched_from != row.watched_from:
            # Watched from another folder now: activated again below, its old root closed if unused.
            del self._contexts[existing.row.name]
            if existing.dockerfile_watch is not None:
                self._unwatch_folder(existing.dockerfile_watch)
            self._contexts[name] = self._activate(row)
            old = existing.root
            if old is not None and self._roots.get(old.path) is old and not self._in_use(old):
                self._close_root(old)
            self._on_activity()
            return row, True
        if existing is not None:
            existing.row, existing.last = row, None
            self._on_activity()
            return row, True
        self._contexts[name] = self._activate(row)
        return row, False

    def unregister(self, ref: ContextRef, forget: bool = False) -> tuple[Registered, WatchedRoot | None]:
        """Remove a context (its recorded builds are kept unless `forget`); its root, if no other
        context uses it, is closed. (The caller drops the context's views, under the root's lock.)"""
        while True:
            reg = self.resolve(ref)
            root = reg.root
            named = [r.path for f in _named_folders(reg.row) if (r := self.root_holding(f)) is not None]
            with self._roots_locked(sorted({*named, *([root.path] if root is not None else [])})):
                if reg.root is not root or not self.is_registered(reg):
                    continue
                if forget:
                    self._store.delete_context(reg.row.name)
                else:
                    self._store.unwatch_context(reg.row.name)
                del self._contexts[reg.row.name]
                if reg.dockerfile_watch is not None:
                    self._unwatch_folder(reg.dockerfile_watch)
                for path in {*named, *([root.path] if root is not None else [])}:
                    unused = self._roots.get(path)
                    if unused is not None and not self._in_use(unused):
                        self._close_root(unused)
                self._on_activity()
                return reg, root

    def _in_use(self, root: WatchedRoot) -> bool:
        """A context lives in the root, or reads a named context folder in it."""
        return any(
            c.root is root or any(inside(f, root.path) for f in _named_folders(c.row)) for c in self._contexts.values()
        )

    def retarget_dockerfile_watch(self, reg: Registered) -> None:
        """Point the watch of a Dockerfile outside the tree at its current folder."""
        if reg.dockerfile_watch is not None:
            with self._lock:
                reg.dockerfile_watch.retarget()

    def close(self) -> None:
        with self._lock:
            for root in self._roots.values():
                root.close()

    # -- internals -------------------------------------------------------------------------
    def _free_name(self, base: str) -> str:
        name, n = base, 2
        while name in self._contexts:
            name, n = f"{base}-{n}", n + 1
        return name

    def _activate(self, row: ContextRow) -> Registered:
        root = self._root_for(row.watched_from)
        prefix = os.path.relpath(row.path, root.path) if root is not None else ""
        reg = Registered(
            row,
            root,
            "" if prefix == "." else prefix,
            WatchedFile(row.dockerfile, MAX_DOCKERFILE_BYTES),
            (
                WatchedFile(row.dockerfile + ".dockerignore", MAX_IGNORE_FILE_BYTES),
                WatchedFile(os.path.join(row.path, ".dockerignore"), MAX_IGNORE_FILE_BYTES),
            ),
        )
        folder = os.path.dirname(row.dockerfile)
        if self._observer is not None and (root is None or not inside(folder, root.path)):
            reg.dockerfile_watch = self._watch_folder(self._observer, folder)
        return reg

    def _roots_below(self, path: str) -> list[str]:
        """Roots a new root at `path` would take over (or the root holding it)."""
        with self._lock:
            return [p for p in self._roots if inside(p, path) or inside(path, p)]

    def _root_for_missing(self, reg: Registered) -> WatchedRoot | None:
        """A root for a context whose folder did not exist when it was registered."""
        while True:
            inner = self._roots_below(reg.row.watched_from)
            with self._roots_locked(inner):
                if self._roots_below(reg.row.watched_from) != inner:
                    continue
                if reg.root is None:
                    reg.root = self._root_for(reg.row.watched_from)
                return reg.root

    def _root_for(self, path: str) -> WatchedRoot | None:
        """The root holding `path`, made if need be (taking over the roots
        below it). Called with the locks of those roots and the registry's."""
        for root_path, root in self._roots.items():
            if inside(path, root_path):
                return root
        try:
            root = WatchedRoot(
                path,
                self._observer,
                self._on_activity,
                self._events_lost,
                self._saved_in(path),
            )
        except OSError:
            return None  # the folder is gone; reports say so
        root.tree.max_entries = self._max_tree_entries
        self._roots[path] = root
        self._root_locks[path] = threading.RLock()
        for inner in [r for r in self._roots.values() if r is not root and inside(r.path, path)]:
            self._merge_root(inner, root)
        return root

    def _saved_in(self, root: str) -> SavedRecords | None:
        """Where a tree of `root` finds the records saved for it (by an
        earlier run, or a root merged into it); None when there are none, so
        that a cold index asks the state file nothing per folder."""
        if not self._store.holds_records(root):
            return None
        return lambda folder: self._store.saved_records(root, folder)

    def _merge_root(self, inner: WatchedRoot, outer: WatchedRoot) -> None:
        """Move the contexts of a root into a new root above it: one watch and
        one tree per folder, and what was hashed is not hashed again."""
        prefix = os.path.relpath(inner.path, outer.path)
        # Saved under the outer root before its tree lists those folders (it has listed nothing yet).
        inner.tree.apply_saved()
        self._store.save_records(
            outer.path,
            (
                (join(prefix, folder) if folder else prefix, records)
                for folder, records in inner.tree.saveable_records()
            ),
            replace=False,
        )
        outer.tree.saved_in = self._saved_in(outer.path)
        for reg in self._contexts.values():
            if reg.root is inner:
                reg.root, reg.prefix = outer, os.path.relpath(reg.row.path, outer.path)
                reg.views.clear()
                reg.last = None
        self._close_root(inner)
        self._store.save_records(inner.path, [])
        self._store.save_folder_digests(inner.path, {})

    def _close_root(self, root: WatchedRoot) -> None:
        root.close()
        collector.something_closed()  # its tree refers back to it
        self._roots.pop(root.path, None)
        self._root_locks.pop(root.path, None)  # its holder, if any, sees the root is gone
        self._on_root_closed(root)

    def _watch_folder(self, observer: Observer, folder: str) -> FolderWatch:
        watch = self._folder_watches.get(folder)
        if watch is None:
            watch = self._folder_watches[folder] = FolderWatch(
                observer,
                folder,
                self._on_activity,
                lambda path: sum(w.watched == path for w in self._folder_watches.values()),
            )
            watch.retarget()
        watch.users += 1
        return watch

    def _unwatch_folder(self, watch: FolderWatch) -> None:
        watch.users -= 1
        if not watch.users:
            watch.close()
            del self._folder_watches[watch.folder]

    def _events_lost(self) -> None:
        # The kernel queue is shared by every watch: a loss concerns every root.
        for root in self.roots():
            root.events_were_lost()


def _named_folders(row: ContextRow) -> list[str]:
    """The local folders among a context's named contexts (values made absolute when registered)."""
    return [value for value in row.build_contexts.values() if os.path.isabs(value)]


def inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")
