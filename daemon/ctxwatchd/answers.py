"""One query, start to end: sync the context's root, plan its Dockerfile,
compute the step keys, and report against the recorded builds.

The caller holds the lock of the context's root (registry.Registry.answering):
nothing here locks, and nothing here waits for another root.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .budget import DEFAULT_TIME_LIMIT_S, OutOfTime, TreeTooLarge, time_limit
from .cache.keys import StepKey, compute_keys
from .cache.report import Cause, QueryOptions, StepReport, StepStatus, build_steps, printable, stage_ordinal
from .cache.store import BuildStepRow, ContextRow, Store
from .caches import HistoryCache, ViewCache, ViewKey
from .context.ignore import IgnoreFileError, read_ignore_file
from .context.nodes import decode
from .context.records import KIND_DIR
from .context.tree import join
from .context.view import ContextReadError, ContextView
from .context.watched_file import WatchedFile
from .context.watcher import Syncs, WatchedRoot
from .dockerfile.parser import DockerfileSyntaxError, ParsedDockerfile, Span, parse
from .dockerfile.plan import PlanError, build_plan, is_remote_context
from .limits import MAX_IGNORE_FILE_BYTES
from .registry import LastAnswer, ParsedFile, Registered, Registry, inside
from .requests import BuildOptions, validated_args, validated_build_contexts
from .results import Report

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """An answer: the report, and the keys it was computed from (a build records those)."""

    report: Report
    keys: list[StepKey]


class Answers:
    """Answers queries from the trees, the view cache and the history cache."""

    def __init__(
        self,
        registry: Registry,
        views: ViewCache,
        histories: HistoryCache,
        strict_remote: bool = False,
        unread_build: Callable[[str], int] = lambda name: 0,
        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    ) -> None:
        self._registry = registry
        self._views = views
        self._histories = histories
        self._strict_remote = strict_remote  # the config file's default, for contexts that do not say
        self._unread_build = unread_build  # when a build of the context ran that could not be read (ms), or 0
        self._time_limit_s = time_limit_s  # how long one answer may take (0: no limit)

    def evaluate(self, reg: Registered, root: WatchedRoot | None, options: BuildOptions, syncs: Syncs) -> Evaluation:
        """The answer for one context whose root (None: its folder is missing)
        the caller holds the lock of. `syncs` is what this request synced
        (a sync proves every write made before the request is seen). Past the
        time limit, the answer is an error saying so (budget.py)."""
        try:
            with time_limit(self._time_limit_s):
                return self._evaluate(reg, root, options, syncs)
        except OutOfTime as e:
            log.warning("%s: %s", reg.row.name, e)
            return Evaluation(Report(reg.row, error=str(e)), [])
        except TreeTooLarge as e:
            self._drop_tree(e)
            error = (
                f"context {reg.row.name!r}: its watched folder {e} (max_tree_entries in the config file, "
                "each costing about 0.4 KB of the daemon's memory), so its listings were dropped; the daemon "
                "serves the other contexts. Leave out what the build does not need with .dockerignore "
                "(node_modules, build output, .git), or raise max_tree_entries and restart the daemon"
            )
            log.warning("%s", error)
            return Evaluation(Report(reg.row, error=printable(error)), [])

    def _drop_tree(self, too_large: TreeTooLarge) -> None:
        """Give back the memory of a root whose tree grew past its cap: its
        listings, its views and the answers resting on them (the caller
        holds its lock). Asking again lists it again."""
        root = self._registry.root_holding(too_large.root)
        if root is None or root.path != too_large.root:
            return
        root.drop_listings(
            f"more than {too_large.cap:,} files and folders (max_tree_entries): its listings were dropped, "
            "and its contexts get an error until it holds fewer"
        )
        self._views.drop_root(root.path)
        for reg in self._registry.using(root):
            reg.last = None

    def _evaluate(self, reg: Registered, root: WatchedRoot | None, options: BuildOptions, syncs: Syncs) -> Evaluation:
        report = Report(reg.row)
        self._registry.retarget_dockerfile_watch(reg)  # before reading it: no edit falls between
        if root is None:
            report.error = f"the context folder {reg.row.path} does not exist"
            return Evaluation(report, [])
        try:
            syncs.sync(root)
        except FileNotFoundError:
            report.error = f"the context folder {reg.row.path} does not exist"
            return Evaluation(report, [])
        except OSError as e:
            report.error = f"cannot read the context folder {reg.row.path}: {e.strerror or e}"
            return Evaluation(report, [])
        _keep_listed(root, reg.row.dockerfile)
        parsed = lines = None
        try:
            parsed, lines = self._dockerfile(reg, options.dockerfile_content)
            self._refresh_views(reg, root)
            serial, history = self._histories.get(reg.row.name)
            named = named_contexts(reg, options)
            named_state = self._sync_named(reg, named, syncs)
            # Nothing the answer depends on changed: the last answer stands.
            # (A new Dockerfile or registration clears reg.last.)
            depends_on = (
                root.tree.generation,
                serial,
                reg.patterns,
                named_state,
                options,
            )
            if reg.last is not None and reg.last.depends_on == depends_on:
                return reg.last.evaluation
            args = {**reg.row.build_args, **validated_args(options.build_args, "options.build_args")}
            plan = build_plan(parsed, lines, args, options.target or reg.row.target, named)
        except (DockerfileSyntaxError, PlanError, IgnoreFileError) as e:
            report.error, report.error_line = printable(str(e)), getattr(e, "line", 0)
            if report.error_line and not isinstance(e, IgnoreFileError):
                text = lines if lines is not None else self._text_lines(reg, options.dockerfile_content)
                report.error_range = _error_range(report.error_line, parsed, text)
            return Evaluation(report, [])
        except OSError as e:  # the Dockerfile or ignore file cannot be read (or is a FIFO)
            report.error = printable(str(e))
            return Evaluation(report, [])
        keys = compute_keys(
            plan, lambda excludes: self._view(reg, root, excludes), lambda name: self._named_view(reg, named[name])
        )
        strict = self._strict(reg, options)
        steps = build_steps(keys, history, _query_options(options, reg.row, strict))
        report.steps = steps
        report.all_cached = all(s.status == StepStatus.CACHED or s.cause == Cause.RUNS_ANYWAY for s in steps)
        report.builds_recorded = history.count
        if history.last is not None:
            report.last_build_unix_ms = history.last.created_ms
        report.notes.extend(_notes(plan))
        if not history.count:
            report.notes.append(
                f"no build of {reg.row.name} is recorded yet: build it with `ctxwatch build -- <your build command>` "
                "(builds run with buildx are learned too), or record the one you just ran: `ctxwatch built "
                f"{reg.row.name}`"
            )
        if not strict:
            _assume_remote(report, plan)
        _say_unread_build(report, self._unread_build(reg.row.name))
        whole = self._views.known(_view_key(reg, root, ()))
        top = whole.known("") if whole is not None else None
        if top is not None:
            report.context_digest = top.digest.hex()
        reg.last = LastAnswer(depends_on, Evaluation(report, keys))
        return reg.last.evaluation

    def _strict(self, reg: Registered, options: BuildOptions) -> bool:
        """Whether steps on unpinned remote inputs are unknown: the query says,
        else the context's setting, else the config file."""
        if options.strict_remote is not None:
            return options.strict_remote
        if options.assume_remote_unchanged:
            return False
        return bool(reg.row.options.get("strict_remote", self._strict_remote))

    def _dockerfile(self, reg: Registered, draft: str = "") -> tuple[ParsedDockerfile, list[str]]:
        """The parsed Dockerfile: the file, or an editor's unsaved text of it
        (kept apart: answers for the file stay valid while a draft is asked about)."""
        if draft:
            text = draft.encode("utf-8", "surrogateescape")
            if reg.draft is None or reg.draft.data != text:
                reg.draft = None  # a draft that does not parse leaves nothing behind
                reg.draft = ParsedFile(text, parse(text), display_lines(text))
            return reg.draft.parsed, reg.draft.lines
        data = reg.dockerfile.read()
        if data is None:
            raise PlanError(0, f"Dockerfile not found: {reg.row.dockerfile}")
        if reg.parsed is None or reg.parsed.data != data:
            reg.parsed, reg.last = ParsedFile(data, parse(data), display_lines(data)), None
        return reg.parsed.parsed, reg.parsed.lines

    @staticmethod
    def _text_lines(reg: Registered, draft: str) -> list[str]:
        data = draft.encode("utf-8", "surrogateescape") if draft else reg.dockerfile.read() or b""
        return display_lines(data)

    def _sync_named(self, reg: Registered, named: dict[str, str], syncs: Syncs) -> tuple:
        """Sync the roots of the context's local named contexts (the caller holds
        their locks: see Registry.answering) and read their .dockerignore files;
        what an answer from them depends on."""
        state = []
        for name, folder in sorted(_local(named).items()):
            root = self._registry.root_holding(folder)
            if root is None:
                raise PlanError(0, f"named context {name!r}: the folder {folder} does not exist")
            syncs.sync(root)
            ignore = reg.named_ignores.setdefault(
                folder, WatchedFile(os.path.join(folder, ".dockerignore"), MAX_IGNORE_FILE_BYTES)
            )
            state.append((name, root.path, root.tree.generation, ignore.read()))
        return tuple(state)

    def _named_view(self, reg: Registered, folder: str) -> ContextView:
        """The view of a local named context: its folder, less its own .dockerignore."""
        root = self._registry.root_holding(folder)
        if root is None:
            raise ContextReadError(folder, "the folder does not exist")
        prefix = "" if folder == root.path else os.path.relpath(folder, root.path)
        patterns = tuple(read_ignore_file(reg.named_ignores[folder].data or b""))
        return self._views.get(ViewKey(root.path, prefix, patterns, ()), root.tree)

    def _refresh_views(self, reg: Registered, root: WatchedRoot) -> None:
        """Rebuild the views when the applicable .dockerignore changed."""
        data = next((d for d in (f.read() for f in reg.ignore_files) if d is not None), b"")
        if data == reg.ignore_source:
            return
        patterns = tuple(read_ignore_file(data))
        reg.ignore_source = data
        if patterns != reg.patterns:
            reg.patterns = patterns
            reg.views.clear()
            self._views.keep_only(root.path, self._used_views(root))

    def _view(self, reg: Registered, root: WatchedRoot, excludes: tuple[str, ...]) -> ContextView:
        """The view of a context with extra excludes. Contexts that send the
        same files (same folder, same ignore patterns: 50 Dockerfiles of one
        monorepo) share it, and so share its digests."""
        key = _view_key(reg, root, excludes)
        reg.views.add(key)
        return self._views.get(key, root.tree)

    def _used_views(self, root: WatchedRoot) -> set[ViewKey]:
        return set().union(*(c.views for c in self._registry.using(root)))


def build_rows(ev: Evaluation, done: set[int] | None = None) -> tuple[list[StepKey], list[BuildStepRow]]:
    """The steps a build with the evaluated options completes (all of them, or
    those before a failing step, which BuildKit caches as well; with `done`,
    only the steps on those lines: what a failed real build completed), as stored."""
    steps = ev.report.steps
    completed = [k for k, s in zip(ev.keys, steps, strict=True) if not _fails(s, steps)]
    if done is not None:
        completed = [k for k in completed if k.step.line in done]
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
            k.step.expanded,
        )
        for k in completed
    ]
    return completed, rows


def _view_key(reg: Registered, root: WatchedRoot, excludes: tuple[str, ...]) -> ViewKey:
    assert reg.patterns is not None, "asked only once the ignore file is read"
    return ViewKey(root.path, reg.prefix, reg.patterns, excludes)


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


def new_nodes(store: Store, keys: list[StepKey]) -> Iterator[tuple[bytes, bytes]]:
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
                yield from _subtree(store, k.view, source.resolved)
            elif not store.has_node(source.digest):  # a wildcard's selection lists its matches
                yield source.digest, source.blob
                for rel in source.matches:
                    yield from _subtree(store, k.view, rel)


def _subtree(store: Store, view: ContextView, rel: str) -> Iterator[tuple[bytes, bytes]]:
    stack = [rel]
    while stack:
        current = stack.pop()
        node = view.node(current)
        if node is None or store.has_node(node.digest):
            continue
        blob = node.blob  # a folder's listing is made on demand: once here
        yield node.digest, blob
        if node.kind == KIND_DIR:
            stack.extend(join(current, c.name) for c in decode(blob).children)


def _error_range(line: int, parsed: ParsedDockerfile | None, lines: list[str]) -> Span:
    """Where a Dockerfile error is: the instruction starting on its line, else
    the line's text (a parse error has no instructions to point at)."""
    for ins in parsed.instructions if parsed is not None else ():
        if ins.start_line == line:
            return ins.span
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    body = text.rstrip()
    return Span(line, len(body) - len(body.lstrip()), line, len(body))


@functools.lru_cache(maxsize=1024)
def _folder_below(root: str, path: str) -> str | None:
    """The folder of `path` relative to `root`, when it lies below it (asked
    on every answer, for each context: remembered)."""
    folder = os.path.dirname(path)
    return os.path.relpath(folder, root) if folder != root and inside(folder, root) else None


def _fails(step: StepReport, steps: list[StepReport]) -> bool:
    """True for a failing step and for the steps that cannot run because of it."""
    if step.status == StepStatus.ERROR:
        return True
    return (
        step.cause == Cause.UPSTREAM
        and step.upstream_step is not None
        and steps[step.upstream_step].status == StepStatus.ERROR
    )


def named_contexts(reg: Registered, options: BuildOptions) -> dict[str, str]:
    """The named contexts of a query: the registered ones, and the query's over them."""
    extra = validated_build_contexts(options.build_contexts, reg.row.path, "options.build_contexts")
    return {**reg.row.build_contexts, **extra}


def named_folders(named: dict[str, str]) -> list[str]:
    return sorted(_local(named).values())


def _local(named: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in named.items() if not is_remote_context(value)}


def _query_options(options: BuildOptions, row: ContextRow, strict_remote: bool) -> QueryOptions:
    """The query's no-cache options, and those the context is always built with."""
    filters = [*options.no_cache_filter, *row.no_cache_filter]
    names = frozenset(n.strip().lower() for item in filters for n in item.split(",") if n.strip())
    return QueryOptions(options.no_cache or row.no_cache, names, strict_remote)


def options_dict(options: BuildOptions) -> dict:
    return {
        "build_args": dict(options.build_args),
        "target": options.target,
        "no_cache": options.no_cache,
        "no_cache_filter": list(options.no_cache_filter),
    }


def _notes(plan) -> list[str]:
    notes = []
    if plan.unused_build_args:
        notes.append("build args not declared with ARG (they change nothing): " + ", ".join(plan.unused_build_args))
    return notes


def _assume_remote(report: Report, plan) -> None:
    """Name, once, the unpinned images and URLs taken to be what the last recorded build used."""
    remotes = sorted({s.remote for s in plan.steps if s.remote})
    if remotes:
        report.assumed_remote.extend(remotes)
        report.notes.append(
            "assumed to be what the last recorded build used (pin with @sha256: or --checksum, "
            "or ask with --strict-remote): " + ", ".join(remotes)
        )


def _say_unread_build(report: Report, unread_ms: int) -> None:
    """Once per report: a build ran after the last recorded one that ctxwatch could not read."""
    if not unread_ms or unread_ms <= report.last_build_unix_ms:
        return
    report.unread_build_unix_ms = unread_ms
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unread_ms / 1000))
    report.notes.append(
        f"a build of this context ran at {when} that ctxwatch could not read (the builder's history did not "
        "answer; see the daemon's log): these answers may be older than that build. Record builds with "
        "`ctxwatch built` and the same options, or run them through `ctxwatch build -- ...`"
    )


def display_lines(data: bytes) -> list[str]:
    """The Dockerfile's lines as reports show them: a byte that is not UTF-8 as \\xNN."""
    return data.decode("utf-8", "backslashreplace").splitlines()
