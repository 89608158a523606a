"""The engine: the face the gRPC service (and so `--no-daemon`) talks to.

It puts together the registry (contexts, roots, their locks), the caches
(views, histories) and the answers (one query), and adds what spans them:
recording builds, pruning, file activity for live watchers, and status.
One engine serves the daemon (watching, answering many queries) and the
one-shot `--no-daemon` mode (scan, answer, exit): the same code decides
both, so they cannot disagree.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ctxwatch_api.progress import StepResult, observed_steps

from .answers import Answers, Evaluation, build_rows, named_contexts, named_folders, new_nodes, options_dict
from .budget import DEFAULT_MAX_TREE_ENTRIES, DEFAULT_TIME_LIMIT_S
from .builders.compare import check_row, compare, stored_check
from .cache.readers import readers
from .cache.report import StepStatus, printable
from .cache.store import DEFAULT_MAX_BUILDS, ContextRow, Store
from .caches import HistoryCache, ViewCache, ViewKey
from .context.hashing import HashWorkers, worker_count
from .context.records import KIND_DIR
from .context.tree import Tree
from .context.view import ContextView
from .context.watcher import Observer, Syncs, WatchedRoot
from .errors import ApiError, FailedPrecondition, InvalidArgument
from .registry import ContextRef, Registered, Registration, Registry, inside
from .requests import BuildOptions, BuildRun, ObservedStep, absolute_path
from .results import BuildRecorded, PredictionStats, Reader, Readers, Report, RootStatus

log = logging.getLogger(__name__)

GC_EVERY_DROPPED_BUILDS = 16  # node garbage collection is a full mark and sweep: batch it
STATUS_WAIT_S = 0.05  # how long status waits for a busy root before leaving its sizes out
RECENT_DISAGREEMENTS = 10  # shown by GetDaemonStatus and `ctxwatch stats`
WARM_UP_PAUSE_S = 0.005  # between two contexts of the warm-up: a waiting query takes the root's lock then


class Engine:
    def __init__(
        self,
        store: Store,
        watch: bool = True,
        max_builds: int = DEFAULT_MAX_BUILDS,
        private_folders: tuple[str, ...] = (),
        strict_remote: bool = False,
        answer_time_limit: float = DEFAULT_TIME_LIMIT_S,
        max_tree_entries: int = DEFAULT_MAX_TREE_ENTRIES,
    ) -> None:
        self._store = store
        self._max_builds = max_builds
        self._dropped_since_gc = 0
        self._gc_lock = threading.Lock()
        self._closed = False  # the caches are saved: nothing may change them any more
        self._observer = Observer() if watch else None
        if self._observer is not None:
            self._observer.daemon = True
            self._observer.start()
        self._hash_workers = HashWorkers(worker_count())
        self._views = ViewCache(store, self._hash_workers)
        self._histories = HistoryCache(store)
        # Bumped on every file event; watchers of reports wait on it.
        self._activity = threading.Condition()
        self._generation = 0
        self._listeners: set[Callable[[], None]] = set()  # called on every change (watch streams)
        self._busy: dict[int, str] = {}  # thread -> what it answers, for the status RPC
        self._tree_sizes: dict[str, tuple[int, int, int]] = {}  # root -> (generation, files, folders)
        # The daemon's own folders (state, socket): never a build context.
        private = (os.path.realpath(store.path.parent), *map(os.path.realpath, private_folders))
        self._registry = Registry(
            store, self._observer, self.notify_activity, self._root_closed, private, max_tree_entries
        )
        self._answers = Answers(
            self._registry,
            self._views,
            self._histories,
            strict_remote,
            self._store.last_unread_build,
            answer_time_limit,
        )

    @property
    def watching(self) -> bool:
        """Whether file events keep the trees current (not so for `--no-daemon`: every query scans)."""
        return self._observer is not None

    def close(self, timeout: float = -1) -> bool:
        """Save the content-hash cache and the folder digests, then stop
        watching (stopping the observer ends every watch at once). False,
        having done nothing, when a query holds a root past `timeout` s."""
        with self._registry.all_roots_locked(timeout) as roots:
            if roots is None:
                return False
            self._closed = True
            for root in roots:
                root.tree.settle_racy()
                self._store.save_records(root.path, root.tree.saveable_records(), keep=root.tree.untouched_folders())
                self._views.save(root.path)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
        self._hash_workers.close()
        return True

    # -- contexts -----------------------------------------------------------------------
    def register(self, registration: Registration) -> tuple[ContextRow, bool]:
        """Register a context, or update the one of that name; (its row, whether it was updated)."""
        return self._registry.register(registration)

    def unregister(self, ref: ContextRef, forget: bool = False) -> tuple[ContextRow, int]:
        """Stop watching a context; keep its recorded builds unless `forget`. Returns the row and
        how many builds were kept."""
        reg, root = self._registry.unregister(ref, forget)
        self._histories.forget(reg.row.name)  # read again if the name is registered again
        if root is not None:
            with self._root_locked(root) as locked:
                if locked:  # the root lives on for other contexts: drop the views only this one read
                    used = set().union(*(c.views for c in self._registry.using(root)))
                    self._views.keep_only(root.path, used)
        return reg.row, 0 if forget else self._store.build_count(reg.row.name)

    def resolve(self, ref: ContextRef) -> Registered:
        return self._registry.resolve(ref)

    def resolve_all(self, refs: list[ContextRef]) -> list[Registered]:
        """The contexts named (every one, by name, when none is)."""
        return self._registry.resolve_all(refs)

    def contexts(self) -> list[ContextRow]:
        return [reg.row for reg in self._registry.contexts()]

    def is_registered(self, reg: Registered) -> bool:
        return self._registry.is_registered(reg)

    def views(self, reg: Registered) -> dict[ViewKey, ContextView]:
        """The views a context reads through (what its answers computed)."""
        return {key: view for key in reg.views if (view := self._views.known(key)) is not None}

    # -- activity ----------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """Bumped by every file event and every change of a context or its builds."""
        return self._generation

    def notify_activity(self) -> None:
        with self._activity:
            self._generation += 1
            self._activity.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def on_activity(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after every change, on the thread that made it (so
        it must be short: hand the news over); returns what stops the calls."""
        with self._activity:
            self._listeners.add(listener)

        def stop() -> None:
            with self._activity:
                self._listeners.discard(listener)

        return stop

    def wait_for_activity(self, seen: int) -> int:
        """Block until something changed after generation `seen`; no polling."""
        with self._activity:
            self._activity.wait_for(lambda: self._generation != seen)
            return self._generation

    # -- answers ---------------------------------------------------------------------------
    def report(self, reg: Registered, options: BuildOptions) -> Report:
        return self.reports([reg], options)[0]

    def reports(self, regs: list[Registered], options: BuildOptions) -> list[Report]:
        """Reports of several contexts; a root they share is synced once for all."""
        syncs = Syncs()
        return [self._answer(reg, options, syncs).report for reg in regs]

    def find_readers(self, path: str, refs: list[ContextRef]) -> Readers:
        """Every step of the contexts (all when none named) that reads `path`."""
        path = os.path.realpath(absolute_path(path, "path"))
        response = Readers()
        syncs = Syncs()
        for reg in self.resolve_all(refs):
            if not inside(path, reg.row.path):
                continue
            ev = self._answer(reg, BuildOptions(), syncs)
            if ev.report.error:
                response.unknown.append(f"{reg.row.name}: {ev.report.error}")
                continue
            rel = os.path.relpath(path, reg.row.path)
            for read in readers(ev.keys, "" if rel == "." else rel):
                response.readers.append(
                    Reader(ev.report.context, ev.report.steps[read.index], read.source, read.steps_after)
                )
        return response

    def warm_up(self, marker: str | None = None) -> None:
        """Answer every registered context once (the daemon does this as it
        starts): the first query then finds the trees listed and the digests
        known. It still syncs, so what changes meanwhile is seen.

        `marker` names a file that holds the context being warmed up: a
        context whose warm-up never finished (the daemon was killed during
        it) is skipped at the next start, and only answered when asked."""
        unfinished = _read_marker(marker)
        for reg in self._registry.contexts():
            if self._closed:
                return
            if not self._registry.is_registered(reg):
                continue  # removed meanwhile
            if reg.row.name == unfinished:
                log.warning("not warming up %s: the last start was stopped while warming it up", reg.row.name)
                continue
            _write_marker(marker, reg.row.name)
            try:
                self._answer(reg, BuildOptions(), Syncs())
            except Exception:  # a query will meet the same problem and report it
                log.exception("warming up %s failed", reg.row.name)
            # Step aside: a query waiting for the root's lock takes it now, so
            # it waits for one context's warm-up at most, not for all of them.
            time.sleep(WARM_UP_PAUSE_S)
        _write_marker(marker, "")

    def mark_built(self, reg: Registered, options: BuildOptions, run: BuildRun | None = None) -> BuildRecorded:
        """Record the steps a build with these options completes (all of them,
        or those before a failing step, which BuildKit caches as well). With
        the `run` ctxwatch watched: a failed run records the steps BuildKit
        completed, and its prediction is compared with what BuildKit did."""
        if options.dockerfile_content:
            raise InvalidArgument(
                "options.dockerfile_content: a build reads the saved Dockerfile; save it, then record"
            )
        with self._registry.answering(reg, named_folders(named_contexts(reg, options))) as root:
            ev = self._answer_held(reg, root, options, Syncs())
            if ev.report.error:
                raise FailedPrecondition(f"{reg.row.name}: cannot record a build: {ev.report.error}")
            check = None
            if run is not None and run.builder_ref:
                self._store.save_builder_ref(run.builder_ref, reg.row.name, int(time.time() * 1000), "wrapped")
            if run is not None and run.prediction is not None:
                check = compare(run.prediction, run, reg.row.name, reg.row.dockerfile)
                if check.steps:  # it compared no step (none reported, or none built before): it says nothing
                    self._store.save_prediction_check(check_row(check))
            done = None
            if run is not None and run.failed:
                # A step stopped because another failed is in BuildKit's cache only if it came from there.
                done = {o.line for o in run.steps if o.cached or (o.completed and not o.error)}
            completed, rows = build_rows(ev, done)
            if run is not None and run.failed and not completed:  # it failed before any step: nothing was built
                return BuildRecorded(ev.report, failed=_run_failure(run), check=check)
            nodes = new_nodes(self._store, completed)  # streamed into the transaction, never all in memory
            build_id = self._store.record_build(reg.row.name, options_dict(options), rows, nodes)
            self._histories.forget(reg.row.name)
            self._drop_builds(reg.row.name, self._max_builds)
            self.notify_activity()
            steps = ev.report.steps
            failed = next(
                (
                    f"line {s.line} ({printable(s.instruction)}): {printable(s.error)}"
                    for s in steps
                    if s.status == StepStatus.ERROR
                ),
                "",
            )
            if run is not None and run.failed:
                failed = _run_failure(run)
            report = self._answer_held(reg, root, options, Syncs()).report
        return BuildRecorded(report, build_id, len(rows), failed, check)

    def prediction_stats(self, recent: int = RECENT_DISAGREEMENTS) -> PredictionStats:
        """How the predictions of watched builds compared with BuildKit."""
        checked, steps, agreed, unknown = self._store.prediction_totals()
        return PredictionStats(
            checked=checked,
            steps=steps,
            agreed=agreed,
            unknown=unknown,
            recent_disagreements=[stored_check(row) for row in self._store.recent_disagreements(recent)],
            builds_learned=self._store.builds_learned(),
        )

    # -- builds learned from the builder ------------------------------------------------
    def learn_build(self, name: str, options: BuildOptions, steps: list[StepResult], failed: bool) -> None:
        """Record a build learned from the builder (for a failed one, the steps BuildKit completed)."""
        try:
            reg = self.resolve(ContextRef(name=name))
            report = self.report(reg, options)
            observed = tuple(
                ObservedStep(line, r.cached, r.completed, r.error) for line, r in observed_steps(steps, report.steps)
            )
            run = BuildRun(steps=observed, failed=failed, source="buildx history")
            self.mark_built(reg, options, run)
        except ApiError as e:  # removed meanwhile, or the Dockerfile no longer parses: nothing to record
            log.warning("could not record the build of %s learned from the builder: %s", name, e.message)

    def mark_builder_ref(self, ref: str, context: str, started_ms: int, outcome: str) -> None:
        """Remember a build buildx recorded (learned, unread, or recorded by the wrapper)."""
        self._store.save_builder_ref(ref, context, started_ms, outcome)
        self._histories.forget(context)  # the answers say whether a build went unread
        self.notify_activity()

    def prune(
        self, refs: list[ContextRef], keep: int, older_than_s: float = 0.0, dry_run: bool = False
    ) -> tuple[int, int]:
        """Forget all but the newest `keep` builds of the contexts (only those at least `older_than_s`
        old when given); (builds, nodes) removed. With `dry_run`, (builds that would go, 0)."""
        if keep < 0:
            raise InvalidArgument(f"keep: {keep} is negative")
        if older_than_s < 0:
            raise InvalidArgument(f"older_than_seconds: {older_than_s:g} is negative")
        before_ms = int((time.time() - older_than_s) * 1000) if older_than_s else None
        targets = self.resolve_all(refs)
        if dry_run:
            return sum(self._store.prune(reg.row.name, keep, before_ms, dry_run=True) for reg in targets), 0
        removed = sum(self._drop_builds(reg.row.name, keep, before_ms) for reg in targets)
        return removed, self._collect_garbage()

    def _drop_builds(self, name: str, keep: int, before_ms: int | None = None) -> int:
        removed = self._store.prune(name, keep, before_ms)
        if removed:
            self._histories.forget(name)
            self.notify_activity()
            with self._gc_lock:
                self._dropped_since_gc += removed
                due = self._dropped_since_gc >= GC_EVERY_DROPPED_BUILDS
            if due:
                self._collect_garbage()
        return removed

    def _collect_garbage(self) -> int:
        with self._gc_lock:
            self._dropped_since_gc = 0
        return self._store.collect_garbage()

    def _answer(self, reg: Registered, options: BuildOptions, syncs: Syncs) -> Evaluation:
        root = reg.root
        if root is not None:
            # Before the lock: requests for one root wait for their writes' events
            # together, and the sync under the lock finds them there.
            root.wait_for_writes(syncs.ticket)
        # The roots of its local named contexts are locked with its own (in one order: no deadlock).
        with self._registry.answering(reg, named_folders(named_contexts(reg, options))) as root:
            return self._answer_held(reg, root, options, syncs)

    def _answer_held(
        self, reg: Registered, root: WatchedRoot | None, options: BuildOptions, syncs: Syncs
    ) -> Evaluation:
        """The answer for one context, its root's lock held."""
        thread = threading.get_ident()
        self._busy[thread] = f"answering for {reg.row.name} ({reg.row.path})"
        try:
            return self._answers.evaluate(reg, root, options, syncs)
        finally:
            del self._busy[thread]

    def _root_closed(self, root: WatchedRoot) -> None:
        self._views.drop_root(root.path)
        self._tree_sizes.pop(root.path, None)

    @contextmanager
    def _root_locked(self, root: WatchedRoot, timeout: float = -1) -> Iterator[bool]:
        """Hold a root's lock; False when it was closed (or stayed busy past `timeout`)."""
        lock = self._registry.try_root_lock(root, timeout)
        try:
            yield lock is not None
        finally:
            if lock is not None:
                lock.release()

    # -- status ---------------------------------------------------------------------------
    def activity(self) -> str:
        """What the engine is busy with (empty when idle)."""
        return "; ".join(sorted(self._busy.copy().values()))

    def context_count(self) -> int:
        return self._registry.count()

    def status(self) -> list[RootStatus]:
        """The watched roots. Never waits long for a busy root (a first index
        can take a while): then its tree sizes are left out, the hashing
        counters are still there."""
        answer = []
        for root in self._registry.roots():
            with self._root_locked(root, STATUS_WAIT_S) as locked:
                answer.append(self._root_status(root, count_tree=locked))
        return answer

    def _root_status(self, root: WatchedRoot, count_tree: bool) -> RootStatus:
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
        return RootStatus(
            path=root.path,
            files=files,
            directories=dirs,
            healthy=not root.problem and not root.needs_rescan,
            message=message,
            files_hashed=root.tree.files_hashed,
            bytes_hashed=root.tree.bytes_hashed,
        )

    def _tree_size(self, tree: Tree) -> tuple[int, int]:
        """(files, folders) known in a tree; counted again only after it changed."""
        counted = self._tree_sizes.get(tree.root)
        if counted is None or counted[0] != tree.generation:
            files = dirs = 0
            for _, entry in tree.walk_loaded():
                if entry.kind == KIND_DIR:  # listed or not (an ignored node_modules)
                    dirs += 1
                else:
                    files += 1
            counted = self._tree_sizes[tree.root] = (tree.generation, files, dirs)
        return counted[1], counted[2]

    def queue_depth(self) -> int:
        return sum(root.queue_depth for root in self._registry.roots())


def _run_failure(run: BuildRun) -> str:
    failing = next((o for o in run.steps if o.error and "canceled" not in o.error), None)
    if failing is None:
        return "outside the Dockerfile's steps, in loading an image or the context or in the export (see its output)"
    return f"line {failing.line}: {failing.error}"


def _read_marker(marker: str | None) -> str:
    if not marker:
        return ""
    try:
        with open(marker, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError:
        return ""


def _write_marker(marker: str | None, name: str) -> None:
    if marker:
        try:
            with open(marker, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(name)
        except OSError as e:  # a full disk, say: the warm-up goes on
            log.warning("cannot write %s: %s", marker, e)
