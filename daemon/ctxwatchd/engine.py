"""The engine: registered contexts, their trees, and the answer for each.

One engine serves the daemon (watching, answering many queries) and the
one-shot `--no-daemon` mode (scan, answer, exit): the same code decides
both, so they cannot disagree.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from ctxwatch_api.v1 import ctxwatch_pb2 as pb

from .cache.keys import StepKey, compute_keys
from .cache.readers import readers
from .cache.report import History, QueryOptions, build_steps, printable, range_message, stage_ordinal
from .cache.store import DEFAULT_MAX_BUILDS, BuildStepRow, ContextRow, Store
from .context.ignore import IgnoreFileError, PathMatcher, read_ignore_file
from .context.nodes import decode, digest_of
from .context.records import KIND_DIR
from .context.tree import join
from .context.view import ContextView
from .context.watched_file import WatchedFile
from .context.watcher import FolderWatch, Observer, WatchedRoot
from .dockerfile.parser import DockerfileSyntaxError, ParsedDockerfile, parse
from .dockerfile.plan import PlanError, build_plan
from .errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from .requests import absolute_path, check_name, registrable_dir, validated_args

log = logging.getLogger(__name__)

GC_EVERY_DROPPED_BUILDS = 16  # node garbage collection is a full mark and sweep: batch it
STATUS_WAIT_S = 0.2
WARM_UP_PAUSE_S = 0.005  # between two contexts of the warm-up: long enough for a waiting query to take the lock


@dataclass
class Registered:
    row: ContextRow
    root: WatchedRoot | None
    prefix: str
    dockerfile: WatchedFile
    ignore_files: tuple[WatchedFile, WatchedFile]  # <Dockerfile>.dockerignore, then <context>/.dockerignore
    views: set[tuple] = field(default_factory=set)  # keys of the shared views it reads through
    dockerfile_watch: FolderWatch | None = None  # when the Dockerfile lives outside the tree
    patterns: tuple[str, ...] | None = None
    history: History | None = None
    parsed: tuple[bytes, ParsedDockerfile, list[str]] | None = None  # the Dockerfile's bytes, parse, lines
    draft: tuple[bytes, ParsedDockerfile, list[str]] | None = None  # the same for the last unsaved text asked about
    ignore_source: bytes | None = None  # the ignore file the patterns were read from
    last: tuple[tuple, Evaluation] | None = None  # the last answer and what it depended on


@dataclass
class Evaluation:
    report: pb.Report
    keys: list[StepKey]


class Engine:
    def __init__(
        self,
        store: Store,
        watch: bool = True,
        max_builds: int = DEFAULT_MAX_BUILDS,
        private_folders: tuple[str, ...] = (),
    ) -> None:
        self.store = store
        # The daemon's own folders (state, socket): never a build context.
        self.private_folders = (os.path.realpath(store.path.parent), *map(os.path.realpath, private_folders))
        self.max_builds = max_builds
        self.dropped_since_gc = 0
        self.lock = threading.RLock()
        self.closed = False  # the caches are saved: nothing may change them any more
        self.observer = Observer() if watch else None
        if self.observer is not None:
            self.observer.daemon = True
            self.observer.start()
        self.roots: dict[str, WatchedRoot] = {}
        self.views: dict[tuple, ContextView] = {}  # (root, prefix, patterns, excludes) -> view
        self.folder_watches: dict[str, FolderWatch] = {}  # shared by Dockerfiles in the same folder
        self.busy_with = ""  # what a query is busy with, for the status RPC
        self.tree_sizes: dict[str, tuple[int, int, int]] = {}  # root -> (generation, files, folders)
        # Bumped on every file event; watchers of reports wait on it.
        self.activity = threading.Condition()
        self.generation = 0
        self.contexts: dict[str, Registered] = {}
        # This thread hashes too: one helper thread per extra core.
        self.hash_workers = (os.cpu_count() or 1) - 1
        self.hasher = ThreadPoolExecutor(self.hash_workers, thread_name_prefix="hash") if self.hash_workers else None
        self.store_version = store.written_elsewhere()
        for row in store.contexts():
            self.contexts[row.name] = self._activate(row)

    @property
    def watching(self) -> bool:
        """Whether file events keep the trees current (not so for `--no-daemon`: every query scans)."""
        return self.observer is not None

    def close(self, timeout: float = -1) -> bool:
        """Save the content-hash cache and the folder digests, then stop
        watching (stopping the observer ends every watch at once). False,
        having done nothing, when a query holds the engine past `timeout` s."""
        if not self.lock.acquire(timeout=timeout):
            return False
        try:
            self.closed = True
            for root in self.roots.values():
                root.tree.settle_racy()
                self.store.save_records(root.path, root.tree.saveable_records(), keep=root.tree.untouched_folders())
                self.store.save_folder_digests(
                    root.path,
                    {_view_id(key): view.saveable() for key, view in self.views.items() if key[0] == root.path},
                )
        finally:
            self.lock.release()
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=2)
        if self.hasher is not None:
            self.hasher.shutdown(wait=False)
        return True

    # -- registry ---------------------------------------------------------------------
    def register(self, req: pb.RegisterContextRequest) -> tuple[ContextRow, bool]:
        path = registrable_dir(req.path, self.private_folders)
        if "\0" in req.dockerfile:
            raise InvalidArgument("dockerfile: contains a NUL byte")
        dockerfile = os.path.normpath(os.path.join(path, req.dockerfile or "Dockerfile"))
        if not os.path.exists(dockerfile):
            raise FailedPrecondition(f"dockerfile: {dockerfile} does not exist")
        if not os.path.isfile(dockerfile):
            raise InvalidArgument(f"dockerfile: {dockerfile} is not a file")
        build_args = validated_args(req.build_args, "build_args")
        with self.lock:
            existing = next(
                (
                    c
                    for c in self.contexts.values()
                    if c.row.path == path
                    and c.row.dockerfile == dockerfile
                    and (not req.name or c.row.name == req.name)
                ),
                None,
            )
            name = req.name or (existing.row.name if existing else self._free_name(os.path.basename(path) or "root"))
            check_name(name)
            taken = self.contexts.get(name)
            if taken is not None and taken is not existing:
                raise AlreadyExists(f"name: a context named {name!r} is already registered for {taken.row.path}")
            row = ContextRow(
                name,
                path,
                dockerfile,
                build_args,
                req.target,
                existing.row.created_ms if existing else int(time.time() * 1000),
            )
            self.store.save_context(row)
            if existing is not None:
                existing.row, existing.last = row, None
                self.notify_activity()
                return row, True
            self.contexts[name] = self._activate(row)
            return row, False

    def unregister(self, ref: pb.ContextRef) -> ContextRow:
        with self.lock:
            reg = self.resolve(ref)
            self.store.delete_context(reg.row.name)
            del self.contexts[reg.row.name]
            self._close_unused_views()
            if reg.dockerfile_watch is not None:
                self._unwatch_folder(reg.dockerfile_watch)
            self._release_root(reg.root)
            self.notify_activity()
            return reg.row

    def resolve(self, ref: pb.ContextRef) -> Registered:
        which = ref.WhichOneof("ref")
        if which == "name":
            reg = self.contexts.get(ref.name)
            if reg is None:
                raise NotFound(f"context: no context named {ref.name!r} (see `ctxwatch ls`)")
            return reg
        if which == "path":
            path = os.path.realpath(absolute_path(ref.path, "context.path"))
            found = [c for c in self.contexts.values() if c.row.path == path]
            if not found:
                raise NotFound(f"context: no context is registered for {path}")
            if len(found) > 1:
                names = ", ".join(sorted(c.row.name for c in found))
                raise InvalidArgument(f"context: {path} is registered {len(found)} times ({names}); name one")
            return found[0]
        raise InvalidArgument("context: give a name or a path")

    def _free_name(self, base: str) -> str:
        name, n = base, 2
        while name in self.contexts:
            name, n = f"{base}-{n}", n + 1
        return name

    def _activate(self, row: ContextRow) -> Registered:
        root = self._root_for(row.path)
        prefix = os.path.relpath(row.path, root.path) if root is not None else ""
        dockerfile = WatchedFile(row.dockerfile)
        specific = WatchedFile(row.dockerfile + ".dockerignore")
        reg = Registered(
            row,
            root,
            "" if prefix == "." else prefix,
            dockerfile,
            (specific, WatchedFile(os.path.join(row.path, ".dockerignore"))),
        )
        folder = os.path.dirname(row.dockerfile)
        if self.observer is not None and (root is None or not _inside(folder, root.path)):
            reg.dockerfile_watch = self._watch_folder(folder)
        return reg

    def _watch_folder(self, folder: str) -> FolderWatch:
        assert self.observer is not None, "only a watching engine watches folders"
        watch = self.folder_watches.get(folder)
        if watch is None:
            watch = self.folder_watches[folder] = FolderWatch(
                self.observer,
                folder,
                self.notify_activity,
                lambda path: sum(w.watched == path for w in self.folder_watches.values()),
            )
            watch.retarget()
        watch.users += 1
        return watch

    def _unwatch_folder(self, watch: FolderWatch) -> None:
        watch.users -= 1
        if not watch.users:
            watch.close()
            del self.folder_watches[watch.folder]

    def _root_for(self, path: str) -> WatchedRoot | None:
        for root_path, root in self.roots.items():
            if _inside(path, root_path):
                return root
        try:
            root = WatchedRoot(
                path,
                self.observer,
                self.notify_activity,
                self._events_lost,
                lambda folder: self.store.saved_records(path, folder),
            )
        except OSError:
            return None  # the folder is gone; reports say so
        self.roots[path] = root
        for inner in [r for r in self.roots.values() if r is not root and _inside(r.path, path)]:
            self._merge_root(inner, root)
        return root

    def _merge_root(self, inner: WatchedRoot, outer: WatchedRoot) -> None:
        """Move the contexts of a root into a new root above it: one watch and
        one tree per folder, and what was hashed is not hashed again."""
        prefix = os.path.relpath(inner.path, outer.path)
        # Saved under the outer root before its tree lists those folders (it has listed nothing yet).
        inner.tree.apply_saved()
        self.store.save_records(
            outer.path,
            ((join(prefix, rel), key, hashed) for rel, key, hashed in inner.tree.saveable_records()),
            replace=False,
        )
        for reg in self.contexts.values():
            if reg.root is inner:
                reg.root, reg.prefix = outer, os.path.relpath(reg.row.path, outer.path)
                reg.views.clear()
                reg.last = None
        inner.close()
        del self.roots[inner.path]
        self.store.save_records(inner.path, [])
        self.store.save_folder_digests(inner.path, {})
        self._close_unused_views()

    def _release_root(self, root: WatchedRoot | None) -> None:
        if root is None or any(c.root is root for c in self.contexts.values()):
            return
        root.close()
        self.roots.pop(root.path, None)

    def _events_lost(self) -> None:
        for root in list(self.roots.values()):
            root.events_were_lost()

    # -- activity ----------------------------------------------------------------------------
    def notify_activity(self) -> None:
        with self.activity:
            self.generation += 1
            self.activity.notify_all()

    def wait_for_activity(self, seen: int) -> int:
        """Block until something changed after generation `seen`; no polling."""
        with self.activity:
            self.activity.wait_for(lambda: self.generation != seen)
            return self.generation

    # -- answers ---------------------------------------------------------------------------
    def report(self, reg: Registered, options: pb.BuildOptions) -> pb.Report:
        return self.reports([reg], options)[0]

    def reports(self, regs: list[Registered], options: pb.BuildOptions) -> list[pb.Report]:
        """Reports of several contexts; a root they share is synced once for all."""
        with self.lock:
            synced: set[str] = set()
            return [self._evaluate(reg, options, synced).report for reg in regs]

    def find_readers(self, path: str, refs: list[pb.ContextRef]) -> pb.FindReadersResponse:
        """Every step of the contexts (all when none named) that reads `path`."""
        path = os.path.realpath(absolute_path(path, "path"))
        response = pb.FindReadersResponse()
        with self.lock:
            targets = [self.resolve(ref) for ref in refs] or sorted(self.contexts.values(), key=lambda c: c.row.name)
            synced: set[str] = set()
            for reg in targets:
                if not _inside(path, reg.row.path):
                    continue
                ev = self._evaluate(reg, pb.BuildOptions(), synced)
                if ev.report.error:
                    response.unknown.append(f"{reg.row.name}: {ev.report.error}")
                    continue
                rel = os.path.relpath(path, reg.row.path)
                for read in readers(ev.keys, "" if rel == "." else rel):
                    response.readers.add(
                        context=ev.report.context,
                        step=ev.report.steps[read.index],
                        source=read.source,
                        steps_after=read.steps_after,
                    )
        return response

    def warm_up(self) -> None:
        """Answer every registered context once (the daemon does this as it
        starts): the first query then finds the trees listed and the digests
        known. It still syncs, so what changes meanwhile is seen."""
        with self.lock:
            names = list(self.contexts)
        for name in names:
            with self.lock:
                if self.closed:
                    return
                reg = self.contexts.get(name)  # it may have been removed meanwhile
                if reg is None:
                    continue
                try:
                    self._evaluate(reg, pb.BuildOptions())
                except Exception:  # a query will meet the same problem and report it
                    log.exception("warming up %s failed", name)
            # Step aside: a query waiting for the lock takes it now, so it
            # waits for one context's warm-up at most, not for all of them.
            time.sleep(WARM_UP_PAUSE_S)

    @contextmanager
    def _busy(self, what: str) -> Iterator[None]:
        self.busy_with = what
        try:
            yield
        finally:
            self.busy_with = ""

    def mark_built(self, reg: Registered, options: pb.BuildOptions) -> pb.MarkBuiltResponse:
        """Record the steps a build with these options completes (all of them,
        or those before a failing step, which BuildKit caches as well)."""
        if options.dockerfile_content:
            raise InvalidArgument(
                "options.dockerfile_content: a build reads the saved Dockerfile; save it, then record"
            )
        with self.lock:
            ev = self._evaluate(reg, options)
            if ev.report.error:
                raise FailedPrecondition(f"{reg.row.name}: cannot record a build: {ev.report.error}")
            steps = ev.report.steps
            completed = [k for k, s in zip(ev.keys, steps, strict=True) if not _fails(s, steps)]
            rows = [
                BuildStepRow(
                    k.index,
                    k.step.stage.label,
                    stage_ordinal(k),
                    k.step.line,
                    k.step.instruction,
                    k.key,
                    k.shape,
                    k.step.spec,
                    [[i.source, i.resolved, i.digest.hex()] for i in k.inputs],
                    k.step.values,
                )
                for k in completed
            ]
            nodes = self._new_nodes(completed)  # streamed into the transaction, never all in memory
            build_id = self.store.record_build(reg.row.name, _options_dict(options), rows, nodes)
            self._drop_builds(reg.row.name, self.max_builds)
            reg.history = reg.last = None
            self.notify_activity()
            failed = next(
                (f"line {s.line} ({s.instruction}): {s.error}" for s in steps if s.status == pb.STEP_STATUS_ERROR), ""
            )
            return pb.MarkBuiltResponse(
                report=self._evaluate(reg, options).report, build_id=build_id, steps_recorded=len(rows), failed=failed
            )

    def prune(self, refs: list[pb.ContextRef], keep: int) -> tuple[int, int]:
        """Forget all but the newest `keep` builds of the contexts; (builds, nodes) removed."""
        if keep < 0:
            raise InvalidArgument(f"keep: {keep} is negative")
        with self.lock:
            targets = [self.resolve(ref) for ref in refs] or list(self.contexts.values())
            removed = sum(self._drop_builds(reg.row.name, keep) for reg in targets)
            return removed, self._collect_garbage()

    def _drop_builds(self, name: str, keep: int) -> int:
        removed = self.store.prune(name, keep)
        if removed:
            self.contexts[name].history = self.contexts[name].last = None
            self.dropped_since_gc += removed
            self.notify_activity()
            if self.dropped_since_gc >= GC_EVERY_DROPPED_BUILDS:
                self._collect_garbage()
        return removed

    def _collect_garbage(self) -> int:
        self.dropped_since_gc = 0
        return self.store.collect_garbage()

    def _evaluate(self, reg: Registered, options: pb.BuildOptions, synced: set[str] | None = None) -> Evaluation:
        """The answer for one context. `synced` holds the roots already synced
        by this request (a sync proves every earlier write is seen)."""
        with self._busy(f"answering for {reg.row.name} ({reg.row.path})"):
            return self._answer(reg, options, set() if synced is None else synced)

    def _answer(self, reg: Registered, options: pb.BuildOptions, synced: set[str]) -> Evaluation:
        report = pb.Report(context=context_message(reg.row))
        if reg.dockerfile_watch is not None:
            reg.dockerfile_watch.retarget()  # before reading it: no edit falls between
        if reg.root is None:
            reg.root = self._root_for(reg.row.path)
            if reg.root is None:
                report.error = f"the context folder {reg.row.path} does not exist"
                return Evaluation(report, [])
        try:
            if reg.root.path not in synced:
                reg.root.sync()
                synced.add(reg.root.path)
        except FileNotFoundError:
            report.error = f"the context folder {reg.row.path} does not exist"
            return Evaluation(report, [])
        except OSError as e:
            report.error = f"cannot read the context folder {reg.row.path}: {e.strerror or e}"
            return Evaluation(report, [])
        self._keep_listed(reg.root, reg.row.dockerfile)
        parsed = lines = None
        try:
            parsed, lines = self._dockerfile(reg, options.dockerfile_content)
            self._refresh_views(reg)
            history = self._history(reg)
            # Nothing the answer depends on changed: the last answer stands.
            # (A new Dockerfile, history or registration clears reg.last.)
            depends_on = (reg.root.tree.generation, reg.patterns, options.SerializeToString(deterministic=True))
            if reg.last is not None and reg.last[0] == depends_on:
                return reg.last[1]
            args = {**reg.row.build_args, **validated_args(options.build_args, "options.build_args")}
            plan = build_plan(parsed, lines, args, options.target or reg.row.target)
        except (DockerfileSyntaxError, PlanError, IgnoreFileError) as e:
            report.error, report.error_line = printable(str(e)), getattr(e, "line", 0)
            if report.error_line and not isinstance(e, IgnoreFileError):
                text = lines if lines is not None else self._text_lines(reg, options.dockerfile_content)
                report.error_range.CopyFrom(_error_range(report.error_line, parsed, text))
            return Evaluation(report, [])
        except OSError as e:  # the Dockerfile or ignore file cannot be read (or is a FIFO)
            report.error = printable(str(e))
            return Evaluation(report, [])
        keys = compute_keys(plan, lambda excludes: self._view(reg, excludes))
        report.steps.extend(build_steps(keys, history, _query_options(options)))
        report.all_cached = all(s.status == pb.STEP_STATUS_CACHED for s in report.steps)
        report.builds_recorded = history.count
        if history.last is not None:
            report.last_build_unix_ms = history.last.created_ms
        report.notes.extend(_notes(plan, options))
        whole = self.views.get(self._view_key(reg, ()))
        root = whole.known("") if whole is not None else None
        if root is not None:
            report.context_digest = root.digest.hex()
        reg.last = (depends_on, Evaluation(report, keys))
        return reg.last[1]

    @staticmethod
    def _keep_listed(root: WatchedRoot, dockerfile: str) -> None:
        """A tree watches the folders it lists: list a Dockerfile's folder
        inside the tree even if no context sends it, so that edits there
        wake live watchers. (Answers read the Dockerfile itself anyway.)"""
        rel = _folder_below(root.path, dockerfile)
        if rel is not None:
            try:
                entry = root.tree.get(rel)
                if entry is not None and entry.kind == KIND_DIR:
                    root.tree.children(entry, rel)
            except OSError:
                pass  # unreadable: reading the Dockerfile says what is wrong

    def _dockerfile(self, reg: Registered, draft: str = "") -> tuple[ParsedDockerfile, list[str]]:
        """The parsed Dockerfile: the file, or an editor's unsaved text of it
        (kept apart: answers for the file stay valid while a draft is asked about)."""
        if draft:
            text = draft.encode("utf-8", "surrogateescape")
            if reg.draft is None or reg.draft[0] != text:
                reg.draft = None  # a draft that does not parse leaves nothing behind
                reg.draft = (text, parse(text), text.decode("utf-8", "replace").splitlines())
            return reg.draft[1], reg.draft[2]
        data = reg.dockerfile.read()
        if data is None:
            raise PlanError(0, f"Dockerfile not found: {reg.row.dockerfile}")
        if reg.parsed is None or reg.parsed[0] != data:
            reg.parsed, reg.last = (data, parse(data), data.decode("utf-8", "replace").splitlines()), None
        return reg.parsed[1], reg.parsed[2]

    @staticmethod
    def _text_lines(reg: Registered, draft: str) -> list[str]:
        data = draft.encode("utf-8", "surrogateescape") if draft else reg.dockerfile.read() or b""
        return data.decode("utf-8", "replace").splitlines()

    def _refresh_views(self, reg: Registered) -> None:
        """Rebuild the views when the applicable .dockerignore changed."""
        data = next((d for d in (f.read() for f in reg.ignore_files) if d is not None), b"")
        if data == reg.ignore_source:
            return
        patterns = tuple(read_ignore_file(data))
        reg.ignore_source = data
        if patterns != reg.patterns:
            reg.patterns = patterns
            reg.views.clear()
            self._close_unused_views()

    def _view_key(self, reg: Registered, excludes: tuple[str, ...]) -> tuple:
        assert reg.root is not None and reg.patterns is not None, "asked only once the context is synced"
        return reg.root.path, reg.prefix, reg.patterns, excludes

    def _view(self, reg: Registered, excludes: tuple[str, ...]) -> ContextView:
        """The view of a context with extra excludes. Contexts that send the
        same files (same folder, same ignore patterns: 50 Dockerfiles of one
        monorepo) share it, and so share its digests."""
        key = self._view_key(reg, excludes)
        view = self.views.get(key)
        if view is None:
            assert reg.root is not None and reg.patterns is not None
            view = self.views[key] = ContextView(
                reg.root.tree,
                reg.prefix,
                PathMatcher([*reg.patterns, *excludes]),
                self.hasher,
                self.hash_workers,
                self.store.saved_folder_digests(reg.root.path, _view_id(key)),
            )
        reg.views.add(key)
        return view

    def _close_unused_views(self) -> None:
        used = set().union(*(c.views for c in self.contexts.values()))
        for key in set(self.views) - used:
            self.views.pop(key).close()

    def _history(self, reg: Registered) -> History:
        version = self.store.written_elsewhere()
        if version != self.store_version:  # builds recorded by another process
            self.store_version = version
            for other in self.contexts.values():
                other.history = other.last = None
        if reg.history is None:
            keys, shapes = self.store.recorded_keys(reg.row.name)
            reg.history = History(
                keys,
                shapes,
                self.store.last_build(reg.row.name),
                self.store.build_count(reg.row.name),
                self.store.node_blob,
            )
        return reg.history

    def _new_nodes(self, keys: list[StepKey]) -> Iterator[tuple[bytes, bytes]]:
        """Merkle nodes the recorded inputs reference that the store lacks.
        A stored node implies its whole subtree is stored, so walks stop there.
        The store is asked even about nodes emitted moments ago: the insert
        consumes this generator in the same transaction and sees its own rows
        (no set of every digest of a large tree held in memory meanwhile)."""
        for k in keys:
            if k.view is None:
                continue  # a step that reads no context files
            for source in k.inputs:
                if not source.wildcard:  # the source is the node at its path
                    yield from self._subtree(k.view, source.resolved)
                elif not self.store.has_node(source.digest):  # a wildcard's selection lists its matches
                    yield source.digest, source.blob
                    for rel in source.matches:
                        yield from self._subtree(k.view, rel)

    def _subtree(self, view: ContextView, rel: str) -> Iterator[tuple[bytes, bytes]]:
        stack = [rel]
        while stack:
            current = stack.pop()
            node = view.node(current)
            if node is None or self.store.has_node(node.digest):
                continue
            blob = node.blob  # a folder's listing is made on demand: once here
            yield node.digest, blob
            if node.kind == KIND_DIR:
                stack.extend(join(current, c.name) for c in decode(blob).children)

    # -- status ---------------------------------------------------------------------------
    def status(self) -> list[pb.WatchedRoot]:
        """The watched roots. Never waits long for a busy engine (a first index
        can take a while): then the tree sizes are left out, the hashing
        counters are still there."""
        locked = self.lock.acquire(timeout=STATUS_WAIT_S)
        try:
            return [self._root_status(root, count_tree=locked) for root in list(self.roots.values())]
        finally:
            if locked:
                self.lock.release()

    def _root_status(self, root: WatchedRoot, count_tree: bool) -> pb.WatchedRoot:
        files = dirs = 0
        if count_tree:
            files, dirs = self._tree_size(root.tree)
        message = root.problem
        if root.events_lost:
            pending = "; re-scanning before the next answer" if root.needs_rescan else "; recovered by re-scans"
            message = "; ".join(
                filter(
                    None,
                    [
                        message,
                        f"the kernel dropped file events (inotify queue overflow) {root.events_lost} time(s){pending}",
                    ],
                )
            )
        return pb.WatchedRoot(
            path=root.path,
            files=files,
            directories=dirs,
            healthy=not root.problem and not root.needs_rescan,
            message=message,
            files_hashed=root.tree.files_hashed,
            bytes_hashed=root.tree.bytes_hashed,
        )

    def _tree_size(self, tree) -> tuple[int, int]:
        """(files, folders) known in a tree; counted again only after it changed."""
        counted = self.tree_sizes.get(tree.root)
        if counted is None or counted[0] != tree.generation:
            files = dirs = 0
            for _, entry in tree.walk_loaded():
                if entry.kind == KIND_DIR:  # listed or not (an ignored node_modules)
                    dirs += 1
                else:
                    files += 1
            counted = self.tree_sizes[tree.root] = (tree.generation, files, dirs)
        return counted[1], counted[2]

    def queue_depth(self) -> int:
        return sum(root.queue_depth for root in list(self.roots.values()))


def _error_range(line: int, parsed: ParsedDockerfile | None, lines: list[str]) -> pb.Range:
    """Where a Dockerfile error is: the instruction starting on its line, else
    the line's text (a parse error has no instructions to point at)."""
    for ins in parsed.instructions if parsed is not None else ():
        if ins.start_line == line:
            return range_message(ins.span)
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    body = text.rstrip()
    return pb.Range(start_line=line, start_column=len(body) - len(body.lstrip()), end_line=line, end_column=len(body))


def _view_id(key: tuple) -> bytes:
    """A view's name in the store, the same in every run: its root, folder, patterns and excludes."""
    return digest_of(repr(key).encode("utf-8", "surrogateescape"))


@functools.lru_cache(maxsize=1024)
def _folder_below(root: str, path: str) -> str | None:
    """The folder of `path` relative to `root`, when it lies below it (asked
    on every answer, for each context: remembered)."""
    folder = os.path.dirname(path)
    return os.path.relpath(folder, root) if folder != root and _inside(folder, root) else None


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _fails(step: pb.Step, steps) -> bool:
    """True for a failing step and for the steps that cannot run because of it."""
    if step.status == pb.STEP_STATUS_ERROR:
        return True
    return step.cause == pb.CAUSE_UPSTREAM and steps[step.upstream_step].status == pb.STEP_STATUS_ERROR


def context_message(row: ContextRow) -> pb.Context:
    return pb.Context(
        name=row.name, path=row.path, dockerfile=row.dockerfile, build_args=row.build_args, target=row.target
    )


def _query_options(options: pb.BuildOptions) -> QueryOptions:
    names = frozenset(n.strip().lower() for item in options.no_cache_filter for n in item.split(",") if n.strip())
    return QueryOptions(options.no_cache, names, options.assume_remote_unchanged)


def _options_dict(options: pb.BuildOptions) -> dict:
    return {
        "build_args": dict(options.build_args),
        "target": options.target,
        "no_cache": options.no_cache,
        "no_cache_filter": list(options.no_cache_filter),
    }


def _notes(plan, options: pb.BuildOptions) -> list[str]:
    notes = []
    if plan.unused_build_args:
        notes.append("build args not declared with ARG (they change nothing): " + ", ".join(plan.unused_build_args))
    remotes = sorted({s.remote for s in plan.steps if s.remote})
    if remotes and options.assume_remote_unchanged:
        notes.append("assumed unchanged since the last build: " + ", ".join(remotes))
    return notes
