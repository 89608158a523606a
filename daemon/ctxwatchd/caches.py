"""What answers keep between queries: the views of each root, and the
recorded builds of each context as read from the store."""

from __future__ import annotations

import functools
import threading
from typing import NamedTuple

from .cache.report import History
from .cache.store import Store
from .context.hashing import HashWorkers
from .context.ignore import PathMatcher
from .context.nodes import digest_of
from .context.tree import Tree
from .context.view import ContextView

RECORDED_NODES_KEPT = 16  # per context, until its history changes

# How ViewKey.persisted_id encodes a key. Version 1 is SHA-256 of repr() of
# the plain tuple (root, prefix, patterns, excludes), the encoding the first
# state files used: the saved folder digests stay readable. A key of another
# shape needs a new version (the old digests are then recomputed, never misread).
VIEW_ID_VERSION = 1


class ViewKey(NamedTuple):
    """What makes two contexts send the same files: they share one view."""

    root: str
    prefix: str  # the context folder below the root
    patterns: tuple[str, ...]  # .dockerignore patterns
    excludes: tuple[str, ...]  # COPY --exclude patterns on top

    def persisted_id(self) -> bytes:
        """The view's name in the store, the same in every run (see VIEW_ID_VERSION)."""
        return digest_of(repr(tuple(self)).encode("utf-8", "surrogateescape"))


class ViewCache:
    """The views of every root. Each root's views are read and changed only
    under that root's lock (see registry.py): this class adds no lock."""

    def __init__(self, store: Store, hash_workers: HashWorkers | None) -> None:
        self._store = store
        self._hash_workers = hash_workers
        self._by_root: dict[str, dict[ViewKey, ContextView]] = {}

    def get(self, key: ViewKey, tree: Tree) -> ContextView:
        views = self._by_root.setdefault(key.root, {})
        view = views.get(key)
        if view is None:
            view = views[key] = ContextView(
                tree,
                key.prefix,
                PathMatcher([*key.patterns, *key.excludes]),
                self._hash_workers,
                self._store.saved_folder_digests(key.root, key.persisted_id()),
            )
        return view

    def known(self, key: ViewKey) -> ContextView | None:
        return self._by_root.get(key.root, {}).get(key)

    def keep_only(self, root: str, used: set[ViewKey]) -> None:
        """Close the views of a root that no context reads through any more."""
        views = self._by_root.get(root, {})
        for key in set(views) - used:
            views.pop(key).close()

    def drop_root(self, root: str) -> None:
        for view in self._by_root.pop(root, {}).values():
            view.close()

    def save(self, root: str) -> None:
        """Save the folder digests of a root's views (under the root's lock)."""
        views = self._by_root.get(root, {})
        self._store.save_folder_digests(root, {key.persisted_id(): view.saveable() for key, view in views.items()})


class HistoryCache:
    """Each context's recorded builds as the store has them, read once and
    kept until a build is recorded or pruned, here or by another process."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._histories: dict[str, tuple[int, History]] = {}
        self._store_version = store.data_version()
        self._serial = 0

    def get(self, name: str) -> tuple[int, History]:
        """(serial, history): the serial changes whenever the history may have."""
        with self._lock:
            version = self._store.data_version()
            if version != self._store_version:  # builds recorded by another process
                self._store_version = version
                self._histories.clear()
            cached = self._histories.get(name)
            if cached is None:
                keys, shapes = self._store.recorded_keys(name)
                history = History(
                    keys,
                    shapes,
                    self._store.last_build(name),
                    self._store.build_count(name),
                    # Nodes are named by their digest, so a node read stays right: kept for
                    # the next answers (a wide folder's recorded node is megabytes).
                    functools.lru_cache(maxsize=RECORDED_NODES_KEPT)(self._store.node_blob),
                )
                self._serial += 1
                cached = self._histories[name] = (self._serial, history)
            return cached

    def forget(self, name: str) -> None:
        with self._lock:
            self._histories.pop(name, None)
