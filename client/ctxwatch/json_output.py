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

from google.protobuf import json_format
from google.protobuf.message import Message

from ctxwatch_api.v1 import ctxwatch_pb2 as pb


def message(value: Message) -> dict[str, Any]:
    """A protobuf message as a dict; default-valued fields are kept so scripts can read e.g. allCached: false."""
    return json_format.MessageToDict(value, always_print_fields_with_no_presence=True)


def dumps(document: Mapping[str, Any], lines: bool = False) -> str:
    """The text of one document: indented, or on one line for a stream (`watch`)."""
    return json.dumps(document, separators=(",", ":")) if lines else json.dumps(document, indent=2)


def reports(items: Sequence[pb.Report]) -> dict[str, Any]:
    """`status`: {"reports": [Report, ...]} whatever the number of contexts."""
    return {"reports": [message(report) for report in items]}


def check(items: Sequence[pb.Report], exit_code: int) -> dict[str, Any]:
    """`check`: the reports, with the verdict the exit code gives."""
    return {
        "allCached": all(report.all_cached for report in items),
        "exitCode": exit_code,
        "reports": [message(report) for report in items],
    }


def contexts(items: Iterable[pb.Context]) -> dict[str, Any]:
    """`ls`: {"contexts": [Context, ...]}."""
    return {"contexts": [message(context) for context in items]}


def added(
    response: pb.RegisterContextResponse, changes: Sequence[tuple[str, str, str]], report: pb.Report
) -> dict[str, Any]:
    """`add`: the context, whether it existed, what changed ({"option", "was", "now"}) and its report."""
    return {
        "context": message(response.context),
        "updated": response.updated,
        "changes": [{"option": option, "was": was, "now": now} for option, was, now in changes],
        "report": message(report),
    }


def removed(response: pb.UnregisterContextResponse, history_kept: bool) -> dict[str, Any]:
    """`rm`: the context removed, whether its recorded builds were kept, and how many."""
    return {**message(response), "historyKept": history_kept}


def built(response: pb.MarkBuiltResponse) -> dict[str, Any]:
    """`built`: the MarkBuiltResponse (buildId, stepsRecorded, failed, report)."""
    return message(response)


def pruned(response: pb.PruneBuildsResponse, dry_run: bool) -> dict[str, Any]:
    """`prune`: what was (or, with --dry-run, would be) forgotten."""
    return {**message(response), "dryRun": dry_run}


def watched(report: pb.Report) -> dict[str, Any]:
    """`watch`: one line per report sent."""
    return {"report": message(report)}


def daemon_status(status: pb.DaemonStatus) -> dict[str, Any]:
    """`daemon status`: {"running": true, "daemon": DaemonStatus}."""
    return {"running": True, "daemon": message(status)}


def daemon_stopped(socket_path: str) -> dict[str, Any]:
    """`daemon status` when nothing answers: {"running": false, "socketPath": ...}."""
    return {"running": False, "socketPath": socket_path}


def daemon_paths(socket_path: str, log_path: str) -> dict[str, Any]:
    """`daemon socket`: where the CLI looks for the daemon, and where a daemon it starts logs."""
    return {"socketPath": socket_path, "logPath": log_path}
