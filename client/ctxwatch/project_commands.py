"""Commands over many contexts at once: which contexts a command line selects
(names, `--all`, a compose or bake project), `add --compose/--bake`,
`affected`, `discover`, `rm` of several, and `watch` of several contexts
(following a project's files). cli.py wires the parser and hands these a
connected client; the JSON shapes are json_output.py's.

A project's registrations are kept in line with its files by every command
that answers about them: `--compose`/`--bake` read the files and register,
update or unregister what changed; a command that selects project contexts
otherwise (by name, `--all`, the current folder) reads their files again
and updates or unregisters what changed (adding a new service takes
`--compose`). What changed is said on stderr, and in the JSON's "changes".
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from ctxwatch import json_output, projects, render
from ctxwatch.client import CtxwatchClient, CtxwatchError, context_ref, has_error
from ctxwatch.projects import Sync
from ctxwatch.terminal import emit, style, with_progress
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

RECONNECT_CODES = {"UNAVAILABLE", "CANCELLED"}  # a stream that ends so: the daemon went away
WRITES = {"created", "modified", "moved", "deleted", "closed"}  # watchdog's event types that change a file
SETTLE_S = 0.2  # an editor's save is several events (write, rename): read the files once after them


def select(client: CtxwatchClient, args: argparse.Namespace, default: str) -> tuple[list[pb.ContextRef], Sync]:
    """The contexts a command line names: PATH|NAME arguments, --all, --compose/--bake; without any,
    `default`: "cwd-or-all" (the contexts containing the current folder, else all) or "cwd" (the one
    containing it). Project registrations are brought in line first."""
    sync = Sync()
    texts: list[str] = list(getattr(args, "contexts", None) or [])
    every = bool(getattr(args, "all", False))
    explicit = projects.wants_project(args)
    if every and (texts or explicit):
        raise ValueError("give --all, or contexts and --compose/--bake selections, not both")
    refs: list[pb.ContextRef] = []
    if explicit:
        definition = projects.load_definition(args)
        changes = projects.sync(client, definition, args.state_dir)
        sync.add(definition, changes, selected=True)
        refs = _registered_refs(definition, changes)
    contexts = client.list()
    if texts:
        chosen = [c for c in contexts if any(_names(c, text) for text in texts)]
    elif every:
        chosen = contexts
    elif explicit:
        chosen = []
    else:  # the default: with none containing the current folder, "cwd-or-all" answers about all
        chosen = _containing_cwd(contexts) or (list(contexts) if default == "cwd-or-all" else [])
    skip = {(d.source, d.project) for d in sync.definitions}
    if _refresh(client, chosen, sync, args.state_dir, skip):
        contexts = client.list()
    if texts:
        return refs + [context_ref(text) for text in texts], sync
    if every or explicit:
        return refs or [pb.ContextRef(name=c.name) for c in contexts], sync
    containing = _containing_cwd(contexts)
    if default == "cwd-or-all":
        return [pb.ContextRef(name=c.name) for c in containing], sync  # [] asks for every context
    if len(containing) == 1:
        return [pb.ContextRef(name=containing[0].name)], sync
    if not containing:
        raise ValueError("the current folder is in no registered context; name one (PATH|NAME), or --compose/--bake")
    names = ", ".join(context.name for context in containing)
    raise ValueError(f"the current folder is in several contexts ({names}); name one")


def _registered_refs(definition: projects.Definition, changes: Sequence[projects.Change]) -> list[pb.ContextRef]:
    failed = {c.name for c in changes if c.kind == "failed"}
    refs = [pb.ContextRef(name=reg.name) for reg in definition.registrations if reg.name not in failed]
    if not refs:
        failures = [c.line() for c in changes if c.kind == "failed"]
        if failures:  # what the user must act on, said first and alone
            raise ValueError("; ".join(failures))
        skipped = [f"{member}: {why}" for member, why in sorted(definition.skipped.items())]
        detail = f" ({'; '.join(skipped)})" if skipped else ""
        raise ValueError(f"{definition.label}: {', '.join(definition.files)} define no build to register{detail}")
    return refs


def _names(context: pb.Context, text: str) -> bool:
    return context.name == text or os.path.realpath(context.path) == os.path.realpath(text)


def _containing_cwd(contexts: Sequence[pb.Context]) -> list[pb.Context]:
    cwd = Path(os.path.realpath(os.getcwd()))
    return [context for context in contexts if cwd.is_relative_to(os.path.realpath(context.path))]


def _refresh(
    client: CtxwatchClient, contexts: Sequence[pb.Context], sync: Sync, state_dir: str | None, skip: set
) -> bool:
    """Read again the files of the projects these contexts come from; update and unregister what changed
    there. True when a registration changed."""
    changed = False
    for context in contexts:
        key = projects.member_of(context)[0], context.labels.get(projects.PROJECT, "")
        if not key[0] or key in skip:
            continue
        skip.add(key)
        try:
            definition = projects.reload(context)
        except ValueError as err:
            raise ValueError(f"{key[0]} project {key[1]} (context {context.name!r}): {err}") from err
        changes = projects.sync(client, definition, state_dir, registered_only=True)
        sync.add(definition, changes)
        changed = changed or any(c.kind != "unchanged" for c in changes)
    return changed


def say_changes(sync: Sync) -> None:
    """What the project files changed in the registrations, on stderr (stdout carries the answer)."""
    for definition in sync.definitions:
        for warning in definition.warnings:
            print(f"{definition.label}: warning: {warning}", file=sys.stderr)
    for change in sync.changes:
        if change.kind != "unchanged":
            print(change.line(), file=sys.stderr)
    for definition, member in sync.unknown:
        print(f"{definition.label}: {member} is not answered: {definition.skipped[member]}", file=sys.stderr)


def add_project(client: CtxwatchClient, args: argparse.Namespace) -> int:
    """`ctxwatch add --compose|--bake`: register every build the files define, and show the reports."""
    definition = projects.load_definition(args)
    changes = projects.sync(client, definition, args.state_dir)
    sync = Sync([definition], changes, [definition])
    refs = _registered_refs(definition, changes)
    reports = with_progress(client, lambda: client.reports(refs))
    failed = any(c.kind == "failed" for c in changes)
    code = 2 if failed or any(has_error(report) for report in reports) else 0
    if args.json:
        emit(json_output.dumps(json_output.added(reports, sync)))
        return code
    for warning in definition.warnings:
        print(f"{definition.label}: warning: {warning}", file=sys.stderr)
    for change in changes:
        emit(change.line())
    for member, reason in sorted(definition.skipped.items()):
        emit(f"{definition.label}: skipped {member}: {reason}")
    emit("\n\n".join(render.render_report(report, **style(args)) for report in reports))
    return code


def removal_refs(client: CtxwatchClient, args: argparse.Namespace) -> list[pb.ContextRef]:
    """`rm`: the contexts named, --all, or a project's registered contexts (its files are read to find
    the project, nothing is registered)."""
    if getattr(args, "all", False) and (args.contexts or projects.wants_project(args)):
        raise ValueError("give --all, or contexts and --compose/--bake selections, not both")
    refs = [context_ref(text) for text in args.contexts]
    if projects.wants_project(args):
        definition = projects.load_definition(args)
        project = projects.registered_of(client.list(), definition)
        if not project:
            raise ValueError(f"{definition.label}: no context of it is registered")
        refs += [pb.ContextRef(name=c.name) for c in project]
    elif args.all:
        refs = [pb.ContextRef(name=c.name) for c in client.list()]
    if not refs and not args.all:
        raise ValueError("name the contexts to remove (PATH|NAME ...), or give --all, --compose or --bake")
    return refs


def not_cached(report: pb.Report) -> list[pb.Step]:
    return [step for step in report.steps if step.status != pb.STEP_STATUS_CACHED]


def affected(client: CtxwatchClient, args: argparse.Namespace, options: pb.BuildOptions) -> int:
    """`ctxwatch affected`: the contexts (or, with --compose/--bake, the services or targets) with a step
    not cached or an error: what a build would run again. One name a line, for
    `docker buildx bake $(ctxwatch affected --bake)` or a CI matrix."""
    refs, sync = select(client, args, default="cwd-or-all")
    reports = with_progress(client, lambda: client.reports(refs, options))
    entries = []
    for report in reports:
        steps = not_cached(report)
        if not steps and not report.error:
            continue
        source, member = projects.member_of(report.context)
        first = steps[0] if steps else None
        entries.append(
            {
                "context": report.context.name,
                "source": source,
                "project": report.context.labels.get(projects.PROJECT, ""),
                "member": member,
                "error": report.error,
                "unknown": "",
                "stepsNotCached": len(steps),
                "firstStep": first.instruction if first else "",
                "explanation": first.explanation if first else "",
            }
        )
    for change in sync.failed:  # a build the files define that could not be registered would fail too
        entries.append(
            {
                "context": change.name,
                "source": change.source,
                "project": change.project,
                "member": change.member,
                "error": change.detail,
                "unknown": "",
                "stepsNotCached": 0,
                "firstStep": "",
                "explanation": "",
            }
        )
    for definition, member in sync.unknown:  # not evaluated, or a remote context: it may rebuild
        entries.append(
            {
                "context": f"{definition.project}-{member}",
                "source": definition.source,
                "project": definition.project,
                "member": member,
                "error": "",
                "unknown": definition.skipped[member],
                "stepsNotCached": 0,
                "firstStep": "",
                "explanation": "",
            }
        )
    # With --compose/--bake, the names `docker compose build` and `docker buildx bake` take.
    by_member = projects.wants_project(args)
    names = [entry["member"] if by_member and entry["member"] else entry["context"] for entry in entries]
    code = 2 if sync.failed or any(has_error(report) for report in reports) else 0
    if args.json:
        emit(json_output.dumps(json_output.affected(entries, names, len(reports), sync)))
        return code
    say_changes(sync)
    for name in names:
        emit(name)
    return code


def discover(args: argparse.Namespace, connect: Callable[[], AbstractContextManager[CtxwatchClient]]) -> int:
    """`ctxwatch discover [PATH] [--add]`: the Dockerfiles under PATH with the context each gets."""
    from ctxwatch import discover as discovery

    found = discovery.discover(args.root)
    sync = Sync(list(found.definitions))
    if args.add:
        with connect() as client:
            sync.changes = discovery.register(client, found, args.state_dir)
    if args.json:
        entries = [f.as_json() for f in found.found]
        emit(json_output.dumps(json_output.discovered(found.root, entries, found.problems, sync)))
        return 0
    for problem in found.problems:
        print(f"ctxwatch: warning: {problem}", file=sys.stderr)
    rows = [
        (f.name, os.path.relpath(f.dockerfile, found.root), os.path.relpath(f.context, found.root), f.defined_by)
        for f in found.found
    ]
    name_width = max((len(row[0]) for row in rows), default=0)
    file_width = max((len(row[1]) for row in rows), default=0)
    for name, dockerfile, context, defined_by in rows:
        where = f" ({defined_by})" if defined_by else ""
        emit(f"{name:<{name_width}}  {dockerfile:<{file_width}}  context {context}{where}")
    if not found.found:
        emit(f"no Dockerfile under {found.root}")
    for change in sync.changes:
        if change.kind != "unchanged":
            emit(change.line())
    return 0


def watch(client: CtxwatchClient, args: argparse.Namespace, options: pb.BuildOptions) -> None:
    """Live reports of the selected contexts until the daemon goes away (then return: the caller
    reconnects); other errors are raised. With --compose/--bake, the project's files are watched too:
    when they change, the registrations are brought in line and the streams follow the new set."""
    refs, sync = select(client, args, default="cwd")
    _show_changes(sync.changes, args.json)
    definition = sync.definitions[0] if projects.wants_project(args) else None
    updates: queue.Queue = queue.Queue()
    streams: dict[str, object] = {}  # context name -> its open stream
    reports: dict[str, pb.Report] = {}

    def follow(name: str, call) -> None:
        try:
            for report in call:
                updates.put((call, report))
            updates.put((call, None))  # the daemon ended the stream
        except CtxwatchError as err:
            updates.put((call, err))

    def start(names: Sequence[str]) -> None:
        for name in names:
            call = client.open_watch(pb.ContextRef(name=name), options)
            streams[name] = call
            threading.Thread(target=follow, args=(name, call), daemon=True).start()

    def stop(names: Sequence[str]) -> None:
        for name in names:
            streams.pop(name).cancel()  # type: ignore[attr-defined]
            reports.pop(name, None)

    start([_ref_name(client, ref) for ref in refs])
    stop_files = _watch_files(definition.read_files, lambda: updates.put((None, None))) if definition else None
    try:
        while True:
            call, item = updates.get()
            if call is None:  # the project's files changed
                _settle(updates)
                changes = _reload(client, args, updates)
                if changes is None:
                    continue
                # A stream follows the registration it was opened on: changed ones are opened again.
                stop([c.name for c in changes if c.kind != "unchanged" and c.name in streams])
                start([c.name for c in changes if c.kind in {"registered", "updated"}])
                _show_changes(changes, args.json)
                if not args.json:
                    _redraw(reports, len(streams), args)
                continue
            if call not in streams.values():
                continue  # from a stream cancelled here
            if item is None or (isinstance(item, CtxwatchError) and item.code in RECONNECT_CODES):
                return
            if isinstance(item, Exception):
                raise item
            reports[item.context.name] = item
            if args.json:
                emit(json_output.dumps(json_output.watched(item), lines=True))
            else:
                _redraw(reports, len(streams), args)
    finally:
        for call in streams.values():
            call.cancel()  # type: ignore[attr-defined]
        if stop_files is not None:
            stop_files()


def _ref_name(client: CtxwatchClient, ref: pb.ContextRef) -> str:
    """A context's name (a ref by path is looked up): streams are kept by name."""
    if ref.name:
        return ref.name
    for context in client.list():
        if os.path.realpath(context.path) == os.path.realpath(ref.path):
            return context.name
    raise CtxwatchError("NOT_FOUND", f"no registered context at {ref.path}")


def _settle(updates: queue.Queue) -> None:
    """Wait until the files have been quiet for SETTLE_S, dropping the events that came meanwhile."""
    while True:
        time.sleep(SETTLE_S)
        pending = []
        while not updates.empty():
            pending.append(updates.get())
        reports = [entry for entry in pending if entry[0] is not None]
        for entry in reports:
            updates.put(entry)
        if len(reports) == len(pending):
            return


def _reload(client: CtxwatchClient, args: argparse.Namespace, updates: queue.Queue) -> list[projects.Change] | None:
    """Bring the registrations in line with the project's changed files; a file that does not read
    (saved half-way, a typo) is said and the watch goes on with the registrations as they were."""
    try:
        definition = projects.load_definition(args)
    except (ValueError, OSError) as err:
        print(f"ctxwatch: {err}; the registrations are kept as they were", file=sys.stderr, flush=True)
        return None
    return projects.sync(client, definition, args.state_dir)


def _show_changes(changes: Sequence[projects.Change], as_json: bool) -> None:
    moved = [c for c in changes if c.kind != "unchanged"]
    if as_json and moved:
        emit(json_output.dumps(json_output.watched(None, moved), lines=True))
    elif not as_json:
        for change in moved:
            print(change.line(), file=sys.stderr, flush=True)


def _redraw(reports: dict[str, pb.Report], streams: int, args: argparse.Namespace) -> None:
    if len(reports) < streams:
        return  # a stream has not given its first report yet: one whole screen, not one per context
    if sys.stdout.isatty():
        print("\x1b[H\x1b[2J", end="")  # redraw in place
    shown = "\n\n".join(render.render_report(report, **style(args)) for _, report in sorted(reports.items()))
    what = "watching" if streams == 1 else f"watching {streams} contexts"
    emit(f"{shown}\n\n[{time.strftime('%H:%M:%S')}] {what}; Ctrl-C to stop")


def _watch_files(files: Sequence[str], changed: Callable[[], None]) -> Callable[[], None]:
    """Call `changed` when one of the files is written (watchdog on their folders; no polling)."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    wanted = {os.path.realpath(f) for f in files}

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event) -> None:
            if event.event_type not in WRITES:
                return  # opening or reading them (as a reload does) is not a change
            paths = {os.path.realpath(os.fsdecode(event.src_path))}
            if getattr(event, "dest_path", None):
                paths.add(os.path.realpath(os.fsdecode(event.dest_path)))
            if paths & wanted:
                changed()

    observer = Observer()
    for folder in {os.path.dirname(f) for f in wanted}:
        observer.schedule(Handler(), folder, recursive=False)
    observer.daemon = True
    observer.start()

    def stop() -> None:
        observer.stop()
        observer.join(timeout=2)

    return stop
