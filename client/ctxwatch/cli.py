# PYTHON_ARGCOMPLETE_OK
"""The `ctxwatch` command line: register contexts, ask ctxwatchd for reports, record builds.

Exit codes: 0 ok, 1 `check` found steps that are not cached, 2 any error
(printed as one "ctxwatch: ..." line on stderr, never a traceback). A reader
that goes away (`ctxwatch check | head -3`) ends the output quietly; the
exit code stays the command's.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import difflib
import importlib.metadata
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import argcomplete

from ctxwatch import json_output, render, spawn, unit
from ctxwatch.client import (
    CtxwatchClient,
    CtxwatchError,
    build_options,
    connect,
    context_ref,
    local_client,
    parse_build_args,
    parse_build_contexts,
)
from ctxwatch_api import paths
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

EXIT_OK = 0
EXIT_NOT_CACHED = 1
EXIT_ERROR = 2
PROGRESS_AFTER_S = 0.5
# How long `watch` waits for a daemon that went away to serve again (a restart takes about a second).
RECONNECT_TIMEOUT_S = 15.0
RECONNECT_CODES = {"UNAVAILABLE", "CANCELLED"}
JOURNAL = "journal"  # DaemonStatus.log_file of a daemon whose stderr goes to the systemd journal


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argcomplete.autocomplete(parser)  # answers the shell's completion request and exits; else does nothing
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on --help (0) and usage errors (2)
        return int(exit_.code or 0)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return args.run(args)
    except (CtxwatchError, ValueError) as err:
        print(f"ctxwatch: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _stdout_gone()
        return EXIT_ERROR


def emit(text: str) -> None:
    """Print a line of output; a reader that went away (`| head`) ends the output quietly."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        _stdout_gone()


def _stdout_gone() -> None:
    # Later prints and the interpreter's final flush write to /dev/null instead of failing.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class _Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for a mistyped command."""

    def error(self, message: str) -> None:  # type: ignore[override]
        match = re.match(r"argument COMMAND: invalid choice: '?([^' ]*)'? \(choose from (.*)\)$", message)
        if match:
            word, choices = match.group(1), [c.strip(" '") for c in match.group(2).split(",")]
            close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"commands: {', '.join(choices)}"
            message = f"unknown command {word!r}; {hint}"
        super().error(message)


def _version() -> str:
    try:
        return importlib.metadata.version("ctxwatch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ctxwatch",
        description="Predict which Dockerfile steps BuildKit would take from its cache, and why.",
        epilog="Exit codes: 0 ok; 1 `check` found steps that would run again; 2 any error. "
        "`ctxwatch help COMMAND` shows a command's options.",
        parents=[_global_options(in_subcommand=False)],
    )
    parser.add_argument("--version", action="version", version=f"ctxwatch {_version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    common = _global_options(in_subcommand=True)
    as_json = _json_option()

    add = _command(commands, "add", "register a build context and show its report", _cmd_add, common, as_json)
    add.add_argument("path", metavar="PATH", help="the context folder")
    add.add_argument(
        "-f",
        "--file",
        dest="dockerfile",
        metavar="DOCKERFILE",
        help="relative to the current folder (default: PATH/Dockerfile)",
    )
    add.add_argument(
        "--build-arg",
        action="append",
        metavar="K=V",
        help="repeatable; on a registered context, replaces its build args (default: keep them)",
    )
    add.add_argument(
        "--target", metavar="T", help="stage to build (default: the last; on a registered context, keep its target)"
    )
    add.add_argument("--name", metavar="N", help="default: the folder name; needed to register a folder a second time")
    add.add_argument(
        "--build-context", action="append", default=[], metavar="NAME=PATH", help="a named context; repeatable"
    )
    add.add_argument(
        "--strict-remote",
        action=argparse.BooleanOptionalAction,
        help="steps on unpinned images and URLs are unknown for this context (default: the config file's)",
    )

    _command(commands, "ls", "list registered contexts", _cmd_ls, common, as_json)

    rm = _command(commands, "rm", "stop watching a context (its recorded builds are kept)", _cmd_rm, common, as_json)
    rm.add_argument("context", metavar="PATH|NAME").completer = _complete_contexts  # type: ignore[attr-defined]
    rm.add_argument("--forget", action="store_true", help="also forget its recorded builds")

    report_options = _report_options()
    _command(
        commands,
        "status",
        "show which steps would be cached, and why not (exit 2 on any error)",
        _cmd_status,
        common,
        report_options,
        as_json,
    )
    check = _command(
        commands,
        "check",
        "exit 0 if every step would be cached, 1 if any would run again, 2 on any error",
        _cmd_check,
        common,
        report_options,
        as_json,
    )
    check.add_argument("-q", "--quiet", action="store_true", help="print nothing; only the exit code")

    watch = _command(
        commands,
        "watch",
        "show the report live, updated as files change",
        _cmd_watch,
        common,
        _build_options(remote=True),
        _json_option("print each report as one line of JSON"),
    )
    watch.add_argument(
        "--reconnect-timeout",
        type=float,
        default=RECONNECT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for a daemon that stopped to serve again (default {RECONNECT_TIMEOUT_S:g})",
    )
    watch.add_argument(
        "context", metavar="PATH|NAME", nargs="?", help="default: the context containing the current folder"
    ).completer = _complete_contexts  # type: ignore[attr-defined]

    built = _command(
        commands,
        "built",
        "record that the context was just built",
        _cmd_built,
        common,
        _build_options(remote=False),
        as_json,
    )
    built.add_argument(
        "context", metavar="PATH|NAME", nargs="?", help="default: the context containing the current folder"
    ).completer = _complete_contexts  # type: ignore[attr-defined]

    build = _command(
        commands,
        "build",
        "run a build command: predict it, run it, record it, and check the prediction against BuildKit",
        _cmd_build,
        common,
    )
    build.add_argument("--name", metavar="N", help="name of the context if it gets registered (default: the folder)")
    build.add_argument(
        "build_command",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND...",
        help="docker build ..., docker buildx build ..., buildx build ... or buildctl build ...",
    )

    stats = _command(
        commands, "stats", "how the predictions of checked builds compared with BuildKit", _cmd_stats, common
    )
    stats.add_argument("--json", action="store_true", help="print the PredictionStats as protobuf JSON")

    prune = _command(
        commands, "prune", "forget recorded builds, like `docker builder prune`", _cmd_prune, common, as_json
    )
    prune.add_argument(
        "contexts", metavar="PATH|NAME", nargs="*", help="the contexts whose builds to forget (or --all)"
    ).completer = _complete_contexts  # type: ignore[attr-defined]
    prune.add_argument("--all", action="store_true", help="every registered context")
    prune.add_argument("--keep", type=int, default=0, metavar="N", help="keep the newest N builds (default 0)")
    prune.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="until=DURATION",
        help="only builds recorded more than DURATION ago (e.g. 24h, 7d, 90m; as in docker builder prune)",
    )
    prune.add_argument("--dry-run", action="store_true", help="say what would be forgotten; forget nothing")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")

    _add_daemon_commands(commands, common, as_json)

    completion = _command(
        commands, "completion", "print the shell completion script (bash, zsh or fish)", _cmd_completion
    )
    completion.add_argument("shell", choices=["bash", "zsh", "fish"])
    completion.epilog = (
        'bash: eval "$(ctxwatch completion bash)" in ~/.bashrc; zsh: the same in ~/.zshrc; '
        "fish: ctxwatch completion fish | source, in ~/.config/fish/config.fish"
    )

    _command(commands, "lsp", "run the language server on stdio (for editors)", _cmd_lsp, common)

    help_ = _command(commands, "help", "show the help of a command", _cmd_help)
    help_.add_argument("topic", metavar="COMMAND", nargs="*", help="e.g. `help prune` or `help daemon logs`")
    help_.set_defaults(parser=parser)
    return parser


def _add_daemon_commands(commands, common: argparse.ArgumentParser, as_json: argparse.ArgumentParser) -> None:
    daemon = commands.add_parser(
        "daemon", help="start, stop and inspect the ctxwatchd daemon", description="Manage the ctxwatchd daemon."
    )
    daemon_commands = daemon.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _command(
        daemon_commands,
        "start",
        f"start the daemon in the background (it exits after {spawn.IDLE_TIMEOUT_S // 3600} h without a client)",
        _cmd_daemon_start,
        common,
        as_json,
    )
    _command(daemon_commands, "stop", "ask the daemon to exit and wait until it has", _cmd_daemon_stop, common)
    _command(daemon_commands, "restart", "stop the daemon, then start it again", _cmd_daemon_restart, common, as_json)
    _command(
        daemon_commands,
        "status",
        "version, memory, log, watched roots (exit 2 when none runs)",
        _cmd_daemon_status,
        common,
        as_json,
    )
    logs = _command(daemon_commands, "logs", "show the daemon's log", _cmd_daemon_logs, common)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=50, metavar="N", help="the last N lines (default 50)")
    _command(
        daemon_commands,
        "socket",
        "print the socket path the CLI uses (for grpcurl and other clients)",
        _cmd_daemon_socket,
        common,
        as_json,
    )
    install = _command(
        daemon_commands,
        "install-unit",
        "write the systemd user unit for this installation and say how to enable it",
        _cmd_daemon_install_unit,
        common,
    )
    install.add_argument("--force", action="store_true", help="replace a unit that differs")


def _global_options(in_subcommand: bool) -> argparse.ArgumentParser:
    """--socket/--state-dir/--no-spawn, accepted before and after the command.

    In subcommands the defaults are SUPPRESS so that an option given before
    the command is not reset by the subparser.
    """
    unset = argparse.SUPPRESS if in_subcommand else None
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("global options")
    group.add_argument("--socket", metavar="PATH", default=unset, help=f"daemon socket (${paths.SOCKET_ENV})")
    group.add_argument("--state-dir", metavar="DIR", default=unset, help=f"daemon state (${paths.STATE_DIR_ENV})")
    group.add_argument(
        "--no-spawn",
        action="store_true",
        default=argparse.SUPPRESS if in_subcommand else False,
        help="fail instead of starting the daemon",
    )
    group.add_argument(
        "--no-daemon",
        action="store_true",
        default=argparse.SUPPRESS if in_subcommand else False,
        help="answer in this process (scan, answer, exit) from the same state; no daemon needed",
    )
    group.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default=unset or "auto",
        help="colour the output: auto (on a terminal, unless $NO_COLOR is set), always, never",
    )
    return options


def _json_option(help_: str = "print one JSON object (see README: Output for scripts)") -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--json", action="store_true", help=help_)
    return options


def _build_options(remote: bool) -> argparse.ArgumentParser:
    """The `docker build` options a report or a recorded build depends on."""
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("build options (as given to docker build)")
    group.add_argument("--build-arg", action="append", default=[], metavar="K=V", help="repeatable")
    group.add_argument(
        "--build-context", action="append", default=[], metavar="NAME=PATH", help="a named context; repeatable"
    )
    group.add_argument("--target", metavar="T")
    group.add_argument("--no-cache", action="store_true")
    group.add_argument(
        "--no-cache-filter", action="append", default=[], metavar="STAGE", help="repeatable or comma-separated"
    )
    if remote:
        which = group.add_mutually_exclusive_group()
        which.add_argument(
            "--strict-remote",
            action="store_const",
            const=True,
            help="steps on unpinned base images and URLs are unknown (default: taken as last built)",
        )
        which.add_argument(
            "--assume-remote-unchanged",
            dest="strict_remote",
            action="store_const",
            const=False,
            help="take unpinned base images and URLs as last built, even for a strict context (the default)",
        )
    return options


def _report_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False, parents=[_build_options(remote=True)])
    options.add_argument(
        "contexts",
        metavar="PATH|NAME",
        nargs="*",
        help="default: the contexts containing the current folder, else all",
    ).completer = _complete_contexts  # type: ignore[attr-defined]
    return options


def _command(commands, name: str, help_: str, run, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=help_, description=help_, parents=parents)
    command.set_defaults(run=run)
    return command


def _complete_contexts(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """Context names for shell completion, from a running daemon only (completion never starts one)."""
    try:
        with connect(getattr(parsed_args, "socket", None), spawn=False) as client:
            return [context.name for context in client.list() if context.name.startswith(prefix)]
    except (CtxwatchError, ValueError):
        return []


def options_from_args(args: argparse.Namespace) -> pb.BuildOptions:
    """The BuildOptions a status/check/built command line asks for."""
    return build_options(
        build_args=args.build_arg,
        target=args.target,
        no_cache=args.no_cache,
        no_cache_filter=args.no_cache_filter,
        strict_remote=getattr(args, "strict_remote", None),
        build_contexts=args.build_context,
    )


def _cmd_lsp(args: argparse.Namespace) -> int:
    from ctxwatch.lsp.server import make_server  # pygls loads only for editors

    if args.no_daemon:
        raise ValueError("the language server follows live changes: it needs the daemon (drop --no-daemon)")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)  # stdout carries the protocol
    logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message at INFO
    make_server(lambda: connect(args.socket, spawn=not args.no_spawn, state_dir=args.state_dir)).start_io()
    return EXIT_OK


@contextmanager
def _connect(args: argparse.Namespace, spawn_allowed: bool = True) -> Iterator[CtxwatchClient]:
    if args.no_daemon:
        if not spawn_allowed:
            raise ValueError("`daemon` commands talk to the daemon: drop --no-daemon")
        from ctxwatchd.local import LocalServer  # the daemon's service and config file, in this process

        state_dir = paths.resolve_state_dir(args.state_dir)
        with LocalServer(state_dir) as local, local_client(local.socket_path) as client:
            yield client
        return
    with connect(args.socket, spawn=spawn_allowed and not args.no_spawn, state_dir=args.state_dir) as client:
        yield client


def _cmd_add(args: argparse.Namespace) -> int:
    # -f is relative to the current folder, as in `docker build -f`, not to PATH.
    dockerfile = os.path.abspath(args.dockerfile) if args.dockerfile else None
    given_build_args = parse_build_args(args.build_arg) if args.build_arg is not None else None
    with _connect(args) as client:
        existing = _registered_match(client.list(), args.path, dockerfile, args.name)
        kept_build_args = dict(existing.build_args) if existing else {}
        build_args = given_build_args if given_build_args is not None else kept_build_args
        target = args.target if args.target is not None else existing.target if existing else None
        name = args.name or (existing.name if existing else None)
        build_contexts = parse_build_contexts(args.build_context) if args.build_context else None
        settings = {"build_contexts": build_contexts} if build_contexts is not None else {}
        if existing is not None and build_contexts is None:
            settings = {"build_contexts": dict(existing.build_contexts)}  # kept, as build args are
        response = client.register(
            args.path, dockerfile, build_args, target, name, **settings, strict_remote=args.strict_remote
        )
        name = response.context.name
        [report] = _with_progress(client, lambda: client.reports([pb.ContextRef(name=name)]))
    changes = _option_changes(existing, response.context) if existing else []
    if args.json:
        emit(json_output.dumps(json_output.added(response, changes, report)))
        return EXIT_ERROR if _has_error(report) else EXIT_OK
    if not existing:
        emit(f"registered context {name!r}")
    elif changes:
        emit(f"updated context {name!r}: " + "; ".join(f"{option} {was} -> {now}" for option, was, now in changes))
    else:
        emit(f"context {name!r} is already registered; nothing changed")
    emit(render.render_report(report, **_style(args)))
    return EXIT_ERROR if _has_error(report) else EXIT_OK


def _registered_match(
    contexts: Sequence[pb.Context], path: str, dockerfile: str | None, name: str | None
) -> pb.Context | None:
    """The context `add` updates: the one named, else the one with this folder and Dockerfile.

    A folder registered already (under another name, or with another Dockerfile) is refused
    unless --name says this is meant: a second name for one folder makes every command run
    in that folder ambiguous.
    """
    folder = os.path.realpath(path)
    wanted_dockerfile = os.path.realpath(dockerfile or os.path.join(folder, "Dockerfile"))
    if name:
        return next((context for context in contexts if context.name == name), None)
    same_folder = [context for context in contexts if os.path.realpath(context.path) == folder]
    for context in same_folder:
        if os.path.realpath(context.dockerfile) == wanted_dockerfile:
            return context
    if same_folder:
        names = ", ".join(repr(context.name) for context in same_folder)
        raise ValueError(
            f"{folder} is already registered as {names}; to watch it under a second name "
            "(e.g. with another Dockerfile), give --name, and name the context in commands run there"
        )
    return None


def _option_changes(before: pb.Context, after: pb.Context) -> list[tuple[str, str, str]]:
    """(option, was, now) for each registered option `add` changed."""
    changes = []
    if before.target != after.target:
        changes.append(("target", before.target or "(last stage)", after.target or "(last stage)"))
    for key in sorted(set(before.build_args) | set(after.build_args)):
        was, now = before.build_args.get(key), after.build_args.get(key)
        if was != now:
            changes.append((f"build arg {key}", "(unset)" if was is None else was, "(unset)" if now is None else now))
    return changes


def _cmd_ls(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        contexts = client.list()
    emit(json_output.dumps(json_output.contexts(contexts)) if args.json else render.render_contexts(contexts))
    return EXIT_OK


def _cmd_rm(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        response = client.unregister(context_ref(args.context), forget=args.forget)
    context = response.context
    if args.json:
        emit(json_output.dumps(json_output.removed(response, history_kept=not args.forget)))
    elif args.forget:
        emit(f"removed context {context.name!r} ({context.path}) and forgot its recorded builds")
    else:
        emit(
            f"removed context {context.name!r} ({context.path}); its {response.builds_kept} recorded build(s) are "
            f"kept: `ctxwatch add` it again as {context.name!r} to use them, or `ctxwatch rm --forget` to drop them"
        )
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    with _connect(args) as client:
        refs = _selected_refs(client, args.contexts)
        reports = _with_progress(client, lambda: client.reports(refs, options))
    if args.json:
        emit(json_output.dumps(json_output.reports(reports)))
    elif not reports:
        emit(render.render_contexts([]))
    else:
        emit("\n\n".join(render.render_report(report, **_style(args)) for report in reports))
    return EXIT_ERROR if any(_has_error(report) for report in reports) else EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    with _connect(args) as client:
        refs = _selected_refs(client, args.contexts)
        reports = _with_progress(client, lambda: client.reports(refs, options), quiet=args.quiet)
    if not reports:
        # Nothing to check is a mistake in a script, not a warm cache.
        raise ValueError("no contexts registered (add one with `ctxwatch add PATH`)")
    code = _check_code(reports)
    if args.json:
        emit(json_output.dumps(json_output.check(reports, code)))
    elif not args.quiet:
        for report in reports:
            emit(render.render_check(report, **_style(args)))
    return code


def _check_code(reports: Sequence[pb.Report]) -> int:
    """2 if any context or step is in error, else 1 if any step is not cached, else 0."""
    if any(_has_error(report) for report in reports):
        return EXIT_ERROR
    return EXIT_OK if all(_all_cached(report) for report in reports) else EXIT_NOT_CACHED


def _cmd_built(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    with _connect(args) as client:
        ref = context_ref(args.context) if args.context else _cwd_ref(client)
        response = client.mark_built(ref, options)
    emit(json_output.dumps(json_output.built(response)) if args.json else render.render_mark_built(response))
    return EXIT_OK


def _cmd_build(args: argparse.Namespace) -> int:
    from ctxwatch.build import command, run, summary  # only this command needs them

    argv = args.build_command[1:] if args.build_command[:1] == ["--"] else args.build_command
    parsed = command.parse(argv)
    with ExitStack() as stack:
        try:
            client = stack.enter_context(_connect(args))
        except CtxwatchError as err:  # the build runs all the same
            print(f"ctxwatch: {err}; running the build unwatched", file=sys.stderr)
            return run.run_unwatched(parsed.argv)
        wrapped = run.wrap(client, parsed, args.name)
    if wrapped.recorded is not None:
        print(f"ctxwatch: {render.render_mark_built(wrapped.recorded)}", file=sys.stderr)
        print(summary.render_check(wrapped.recorded.check), file=sys.stderr)
    return wrapped.returncode


def _cmd_stats(args: argparse.Namespace) -> int:
    from ctxwatch.build import summary

    with _connect(args) as client:
        stats = client.prediction_stats()
    print(json_output.dumps(json_output.message(stats)) if args.json else summary.render_stats(stats))
    return EXIT_OK


def _cmd_watch(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    style = _style(args)
    with _connect(args) as client:
        ref = context_ref(args.context) if args.context else _cwd_ref(client)
        socket_path = client.socket_path
        _stream_reports(client, ref, options, args.json, style)
    while True:
        # The stream ended: the daemon stopped or restarted. Wait for one to serve again (never start one).
        print(f"ctxwatch: lost ctxwatchd on {socket_path}; reconnecting...", file=sys.stderr, flush=True)
        if not spawn.wait_until_serving_again(socket_path, args.reconnect_timeout):
            raise CtxwatchError(
                "UNAVAILABLE",
                f"ctxwatchd on {socket_path} did not come back within {args.reconnect_timeout:g} s; "
                "start it with `ctxwatch daemon start` and run watch again",
            )
        with connect(socket_path, spawn=False) as client:
            print(f"ctxwatch: reconnected (ctxwatchd pid {client.daemon_status().pid})", file=sys.stderr, flush=True)
            _stream_reports(client, ref, options, args.json, style)


def _stream_reports(
    client: CtxwatchClient, ref: pb.ContextRef, options: pb.BuildOptions, as_json: bool, style: dict
) -> None:
    """Show each report until the stream ends because the daemon went away; other errors are raised."""
    try:
        for report in client.watch(ref, options):
            _show_watched(report, as_json, style)
    except CtxwatchError as err:
        if err.code not in RECONNECT_CODES:
            raise


def _show_watched(report: pb.Report, as_json: bool, style: dict) -> None:
    if as_json:
        emit(json_output.dumps(json_output.watched(report), lines=True))
        return
    if sys.stdout.isatty():
        print("\x1b[H\x1b[2J", end="")  # redraw in place
    stamp = time.strftime("%H:%M:%S")
    emit(f"{render.render_report(report, **style)}\n\n[{stamp}] watching; Ctrl-C to stop")


def _cmd_prune(args: argparse.Namespace) -> int:
    if not args.contexts and not args.all:
        raise ValueError("name the contexts whose builds to forget, or give --all")
    if args.contexts and args.all:
        raise ValueError("give contexts or --all, not both")
    older_than_s = _until_filter(args.filter)
    with _connect(args) as client:
        refs = [context_ref(text) for text in args.contexts]
        preview = client.prune(refs, args.keep, older_than_s=older_than_s, dry_run=True)
        if args.dry_run or preview.builds_removed == 0:
            return _show_pruned(args, preview, dry_run=args.dry_run)
        if not args.force:
            _confirm(f"forget {preview.builds_removed} recorded build(s) of {_which_contexts(args)}?")
        response = client.prune(refs, args.keep, older_than_s=older_than_s)
    return _show_pruned(args, response, dry_run=False)


def _show_pruned(args: argparse.Namespace, response: pb.PruneBuildsResponse, dry_run: bool) -> int:
    if args.json:
        emit(json_output.dumps(json_output.pruned(response, dry_run)))
    elif dry_run:
        emit(f"would forget {response.builds_removed} recorded build(s); nothing was changed")
    elif response.builds_removed == 0:
        emit("no recorded build matches; nothing to forget")
    else:
        emit(f"forgot {response.builds_removed} recorded build(s); removed {response.nodes_removed} stored node(s)")
    return EXIT_OK


def _which_contexts(args: argparse.Namespace) -> str:
    return "every context" if args.all else ", ".join(args.contexts)


def _confirm(question: str) -> None:
    """Ask on a terminal; without one, refuse (a script says -f)."""
    if not sys.stdin.isatty():
        raise ValueError(f"{question.rstrip('?')}: not confirmed (no terminal to ask on); give -f to confirm")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in {"y", "yes"}:
        raise ValueError("nothing was forgotten")


def _until_filter(filters: Sequence[str]) -> float:
    """The --filter until=DURATION value in seconds (0: no filter)."""
    seconds = 0.0
    for item in filters:
        key, sep, value = item.partition("=")
        if key != "until" or not sep:
            raise ValueError(f"--filter {item!r}: only until=DURATION is supported (e.g. until=24h)")
        seconds = parse_duration(value)
    return seconds


def parse_duration(text: str) -> float:
    """ "90m", "24h", "7d", "1h30m", "45s" in seconds, as docker's --filter until takes them (plus days)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"duration {text!r}: expected e.g. 90m, 24h, 7d or 1h30m")
    return sum(float(number) * units[unit] for number, unit in parts)


def _cmd_daemon_start(args: argparse.Namespace) -> int:
    if args.no_daemon:
        raise ValueError("`daemon` commands talk to the daemon: drop --no-daemon")
    socket_path = paths.resolve_socket_path(args.socket)
    already = spawn.probe(socket_path) is not None
    with _connect(args) as client:
        status = client.daemon_status()
    if args.json:
        emit(json_output.dumps(json_output.daemon_status(status)))
    else:
        verb = "ctxwatchd is already running" if already else "started ctxwatchd"
        emit(f"{verb} (pid {status.pid}) on {status.socket_path}; log: {render.log_destination(status.log_file)}")
    return EXIT_OK


def _cmd_daemon_stop(args: argparse.Namespace) -> int:
    socket_path = paths.resolve_socket_path(args.socket)
    if spawn.probe(socket_path) is None:
        emit(f"no daemon is running on {socket_path}")
        return EXIT_OK
    pid = _stop_daemon(args, socket_path)
    emit(f"stopped ctxwatchd (pid {pid})")
    return EXIT_OK


def _stop_daemon(args: argparse.Namespace, socket_path: Path) -> int:
    with _connect(args, spawn_allowed=False) as client:
        pid = client.daemon_status().pid
        try:
            client.shutdown()
        except CtxwatchError as err:
            # The daemon may close the socket before its reply gets out.
            if err.code != "UNAVAILABLE":
                raise
    if not spawn.wait_until_stopped(socket_path, pid):
        raise CtxwatchError("DEADLINE_EXCEEDED", f"ctxwatchd (pid {pid}) still answers on {socket_path}")
    return pid


def _cmd_daemon_restart(args: argparse.Namespace) -> int:
    socket_path = paths.resolve_socket_path(args.socket)
    if spawn.probe(socket_path) is not None:
        with _connect(args, spawn_allowed=False) as client:
            status = client.daemon_status()
        if status.log_file == JOURNAL:
            raise ValueError("this ctxwatchd runs under systemd: `systemctl --user restart ctxwatchd`")
        emit(f"stopped ctxwatchd (pid {_stop_daemon(args, socket_path)})")
    return _cmd_daemon_start(args)


def _cmd_daemon_status(args: argparse.Namespace) -> int:
    with _connect(args, spawn_allowed=False) as client:
        status = client.daemon_status()
    if args.json:
        emit(json_output.dumps(json_output.daemon_status(status)))
    else:
        emit(render.render_daemon_status(status))
    return EXIT_OK


def _cmd_daemon_logs(args: argparse.Namespace) -> int:
    socket_path = paths.resolve_socket_path(args.socket)
    log_path = spawn.log_path(args.state_dir)
    if spawn.probe(socket_path) is not None:
        with _connect(args, spawn_allowed=False) as client:
            destination = client.daemon_status().log_file
        if destination == JOURNAL:
            journalctl = ["journalctl", "--user", "-u", "ctxwatchd", "-n", str(args.lines)]
            os.execvp("journalctl", journalctl + (["-f"] if args.follow else []))
        if destination:
            log_path = Path(destination)
    for line in spawn.log_lines(log_path, args.lines, follow=args.follow):
        emit(line)
    return EXIT_OK


def _cmd_daemon_socket(args: argparse.Namespace) -> int:
    socket_path = paths.resolve_socket_path(args.socket)
    if args.json:
        emit(json_output.dumps(json_output.daemon_paths(str(socket_path), str(spawn.log_path(args.state_dir)))))
    else:
        emit(str(socket_path))
    return EXIT_OK


def _cmd_daemon_install_unit(args: argparse.Namespace) -> int:
    written = unit.install(force=args.force)
    emit(f"wrote {written}")
    emit("enable and start it with:")
    for command in unit.ENABLE_COMMANDS:
        emit(f"  {command}")
    return EXIT_OK


def _cmd_completion(args: argparse.Namespace) -> int:
    emit(argcomplete.shellcode(["ctxwatch"], shell=args.shell))
    return EXIT_OK


def _cmd_help(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    for word in args.topic:
        [commands] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
        if word not in commands.choices:
            try:
                parser.error(f"argument COMMAND: invalid choice: {word!r} (choose from {', '.join(commands.choices)})")
            except SystemExit as exit_:  # argparse's usage error: printed, exit 2
                return int(exit_.code or EXIT_ERROR)
        parser = commands.choices[word]
        if not any(isinstance(action, argparse._SubParsersAction) for action in parser._actions):
            break
    emit(parser.format_help().rstrip())
    return EXIT_OK


def _with_progress(client, call, quiet: bool = False):
    """Run `call`; while it takes long (a first index of a big context), show
    the daemon's hashing progress on stderr when that is a terminal."""
    if quiet or not sys.stderr.isatty() or not hasattr(client, "daemon_status"):
        return call()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(call)
        shown = False
        while True:
            try:
                result = pending.result(timeout=PROGRESS_AFTER_S)
                break
            except concurrent.futures.TimeoutError:
                roots = client.daemon_status().roots
                files, size = sum(r.files_hashed for r in roots), sum(r.bytes_hashed for r in roots)
                print(f"\rindexing: {files:,} files hashed ({size / 1e6:,.0f} MB)", end="", file=sys.stderr)
                shown = True
        if shown:
            print(file=sys.stderr)
        return result


def _selected_refs(client: CtxwatchClient, texts: Sequence[str]) -> list[pb.ContextRef]:
    """The contexts named, else those containing the current folder, else [] (all)."""
    if texts:
        return [context_ref(text) for text in texts]
    return [pb.ContextRef(name=context.name) for context in _contexts_containing_cwd(client)]


def _cwd_ref(client: CtxwatchClient) -> pb.ContextRef:
    containing = _contexts_containing_cwd(client)
    if len(containing) == 1:
        return pb.ContextRef(name=containing[0].name)
    if not containing:
        raise ValueError("the current folder is in no registered context; name one (PATH|NAME)")
    names = ", ".join(context.name for context in containing)
    raise ValueError(f"the current folder is in several contexts ({names}); name one")


def _contexts_containing_cwd(client: CtxwatchClient) -> list[pb.Context]:
    cwd = Path(os.path.realpath(os.getcwd()))
    return [context for context in client.list() if cwd.is_relative_to(os.path.realpath(context.path))]


def _all_cached(report: pb.Report) -> bool:
    return not report.error and all(step.status == pb.STEP_STATUS_CACHED for step in report.steps)


def _has_error(report: pb.Report) -> bool:
    """The context failed (e.g. its Dockerfile does not parse) or a step would fail (e.g. an unreadable source)."""
    return bool(report.error) or any(step.status == pb.STEP_STATUS_ERROR for step in report.steps)


def _style(args: argparse.Namespace) -> dict:
    """Colour and truncation for this stdout: --color, else colour on a terminal unless $NO_COLOR is set
    (https://no-color.org); lines are cut to the terminal's width only on a terminal."""
    terminal = sys.stdout.isatty()
    color = {"always": True, "never": False}.get(args.color, terminal and not os.environ.get("NO_COLOR"))
    return {"color": color, "width": shutil.get_terminal_size().columns if terminal else None}


if __name__ == "__main__":
    sys.exit(main())
