"""The one place the `--json` output of every command is shaped.

Each command prints exactly one JSON object (never a bare array, never a
shape that depends on how many contexts there were); `watch --json` prints
one such object per line. Messages inside follow protobuf's JSON mapping
(lowerCamelCase names, every field present even when it has its default
value), and the keys added around them use the same style. The shapes are
listed in the README ("Output for scripts").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf.message import Message

from ctxwatch.projects import Change, Definition, Sync
from ctxwatch_api.v1 import ctxwatch_pb2 as pb


def message(value: Message) -> dict[str, Any]:
    """A protobuf message as a dict; default-valued fields are kept so scripts can read e.g. allCached: false."""
    from google.protobuf import json_format  # slow to import; only --json needs it

    return json_format.MessageToDict(value, always_print_fields_with_no_presence=True)


def dumps(document: Mapping[str, Any], lines: bool = False) -> str:
    """The text of one document: indented, or on one line for a stream (`watch`)."""
    return json.dumps(document, separators=(",", ":")) if lines else json.dumps(document, indent=2)


def reports(items: Sequence[pb.Report], sync: Sync) -> dict[str, Any]:
    """`status`: {"reports": [Report, ...]} whatever the number of contexts, and what the project files changed."""
    return {"reports": [message(report) for report in items], **synced(sync)}


def check(items: Sequence[pb.Report], exit_code: int, sync: Sync) -> dict[str, Any]:
    """`check`: the reports, with the verdict the exit code gives."""
    return {
        "allCached": all(report.all_cached for report in items) and not sync.unknown,
        "exitCode": exit_code,
        "reports": [message(report) for report in items],
        **synced(sync),
    }


def contexts(items: Iterable[pb.Context]) -> dict[str, Any]:
    """`ls`: {"contexts": [Context, ...]}."""
    return {"contexts": [message(context) for context in items]}


def added(items: Sequence[pb.Report], sync: Sync) -> dict[str, Any]:
    """`add` (a folder or a project): what changed in the registrations, and each context's report."""
    return {"reports": [message(report) for report in items], **synced(sync)}


def removed(responses: Sequence[pb.UnregisterContextResponse], history_kept: bool) -> dict[str, Any]:
    """`rm`: each context removed with the count of recorded builds kept, and whether they were kept."""
    return {"removed": [message(response) for response in responses], "historyKept": history_kept}


def built(responses: Sequence[pb.MarkBuiltResponse], sync: Sync) -> dict[str, Any]:
    """`built`: one MarkBuiltResponse (buildId, stepsRecorded, failed, report) per context."""
    return {"builds": [message(response) for response in responses], **synced(sync)}


def affected(entries: Sequence[Mapping[str, Any]], names: Sequence[str], checked: int, sync: Sync) -> dict[str, Any]:
    """`affected`: the contexts with a step not cached, the names the text output prints, how many were asked."""
    return {"affected": list(entries), "names": list(names), "checked": checked, **synced(sync)}


def discovered(root: str, found: Sequence[Mapping[str, Any]], problems: Sequence[str], sync: Sync) -> dict[str, Any]:
    """`discover`: the Dockerfiles found with the context each gets, files that could not be read, and with
    --add what was registered."""
    return {"root": root, "dockerfiles": list(found), "problems": list(problems), **synced(sync)}


def synced(sync: Sync) -> dict[str, Any]:
    """The keys every command that reads project files adds: {"changes": [...], "projects": [...]}."""
    return {"changes": [change(c) for c in sync.changes], "projects": [project(d) for d in sync.definitions]}


def change(item: Change) -> dict[str, Any]:
    """A registration brought in line: {"change": registered|updated|unchanged|removed|failed, "context",
    "source", "project", "member", "detail", "options": [{"option", "was", "now"}]}."""
    return {
        "change": item.kind,
        "context": item.name,
        "source": item.source,
        "project": item.project,
        "member": item.member,
        "detail": item.detail,
        "options": [{"option": option, "was": was, "now": now} for option, was, now in item.options],
    }


def project(definition: Definition) -> dict[str, Any]:
    """A compose or bake project as read: its files, and the members left out and why ("unknown": one the
    tool would build, whose answer ctxwatch cannot give)."""
    return {
        "source": definition.source,
        "project": definition.project,
        "files": definition.files,
        "included": definition.included,
        "skipped": [
            {"member": member, "reason": why, "unknown": member in definition.unknown}
            for member, why in sorted(definition.skipped.items())
        ],
        "warnings": definition.warnings,
    }


def pruned(response: pb.PruneBuildsResponse, dry_run: bool) -> dict[str, Any]:
    """`prune`: what was (or, with --dry-run, would be) forgotten."""
    return {**message(response), "dryRun": dry_run}


def watched(report: pb.Report | None, changes: Sequence[Change] = ()) -> dict[str, Any]:
    """`watch`: one line per report sent; with --compose/--bake, a line with "report": null and the
    registrations that changed when the project's files did."""
    return {"report": message(report) if report is not None else None, "changes": [change(c) for c in changes]}


def daemon_status(status: pb.DaemonStatus) -> dict[str, Any]:
    """`daemon status`: {"running": true, "daemon": DaemonStatus}."""
    return {"running": True, "daemon": message(status)}


def daemon_stopped(socket_path: str) -> dict[str, Any]:
    """`daemon status` when nothing answers: {"running": false, "socketPath": ...}."""
    return {"running": False, "socketPath": socket_path}


def daemon_paths(socket_path: str, log_path: str) -> dict[str, Any]:
    """`daemon socket`: where the CLI looks for the daemon, and where a daemon it starts logs."""
    return {"socketPath": socket_path, "logPath": log_path}
