# PYTHON_ARGCOMPLETE_OK
"""The `ctxwatch` command line: register contexts, ask ctxwatchd for reports, record builds.

Exit codes: 0 ok, 1 `check` found steps that are not cached, 2 any error
(printed as one "ctxwatch: ..." line on stderr, never a traceback). A reader
that goes away (`ctxwatch check | head -3`) ends the output quietly; the
exit code stays the command's.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NoReturn

from ctxwatch import json_output, launch, project_commands, projects, render, spawn
from ctxwatch.client import (
    CtxwatchClient,
    CtxwatchError,
    build_options,
    connect,
    context_ref,
    has_error,
    local_client,
    parse_build_args,
    parse_build_contexts,
)
from ctxwatch.front import command_word
from ctxwatch.projects import Sync
from ctxwatch.terminal import emit, stdout_gone, style, with_progress
from ctxwatch_api import paths
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

EXIT_OK = 0
EXIT_NOT_CACHED = 1
EXIT_ERROR = 2
# How long `watch` waits for a daemon that went away to serve again (a restart takes about a second).
RECONNECT_TIMEOUT_S = 15.0
STOP_NOTICE_AFTER_S = 1.0  # `daemon stop` says why it waits when the daemon takes longer than this to exit
JOURNAL = "journal"  # DaemonStatus.log_file of a daemon whose stderr goes to the systemd journal
REPORT_COMMANDS = ("status", "check", "affected")  # read by a parser of their own first (see _parse_args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: this process's) in this process; its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions: answered from the whole parser, then exit
        import argcomplete

        argcomplete.autocomplete(build_parser())
    try:
        parser, args = _parse_args(argv)
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
        stdout_gone()
        return EXIT_ERROR


def _parse_args(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The parsed command line, and the parser that read it.

    A report command (status, check, affected: what scripts and prompts run most) is first read by a
    parser of those commands alone, since building every command's parser costs more than the rest of
    `ctxwatch check`. That parser prints nothing: help, a usage error or another command goes to the whole
    parser, so what the user sees is the same either way.
    """
    if command_word(argv) in REPORT_COMMANDS:
        trial = _report_parser()
        try:
            return trial, trial.parse_args(argv)
        except _NotParsed:
            pass
    parser = build_parser()
    return parser, parser.parse_args(argv)


@functools.cache
def _report_parser() -> argparse.ArgumentParser:
    """The report commands' parser, built once per process (the runner builds it before it forks: its
    children parse at once)."""
    trial, commands, *shared = _top_parser(_TrialParser)
    _add_report_commands(commands, *shared)
    return trial


class _NotParsed(Exception):
    """The report commands' parser met something only the whole parser answers."""


class _Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for a mistyped command."""

    def error(self, message: str) -> None:  # type: ignore[override]
        match = re.match(r"argument COMMAND: invalid choice: '?([^' ]*)'? \(choose from (.*)\)$", message)
        if match:
            import difflib

            word, choices = match.group(1), [c.strip(" '") for c in match.group(2).split(",")]
            close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"commands: {', '.join(choices)}"
            message = f"unknown command {word!r}; {hint}"
        super().error(message)


class _TrialParser(_Parser):
    """A parser that prints nothing and never exits: `_NotParsed` instead (see `_parse_args`)."""

    def error(self, message: str) -> NoReturn:
        raise _NotParsed(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise _NotParsed(message)

    def _print_message(self, message: str, file: object = None) -> None:
        raise _NotParsed(message)


class _VersionAction(argparse._VersionAction):
    """--version, which looks the version up only when asked (importlib.metadata is slow to import)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        self.version = f"ctxwatch {_version()}"
        super().__call__(parser, namespace, values, option_string)


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("ctxwatch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser, commands, common, as_json, selection = _top_parser(_Parser)
    add = _command(
        commands,
        "add",
        "register a build context, or every build of a compose or bake file, and show the reports",
        _cmd_add,
        common,
        as_json,
        projects.selection_options(add=True),
    )
    add.add_argument("path", metavar="PATH", nargs="?", help="the context folder (or give --compose/--bake)")
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

    rm = _command(
        commands, "rm", "stop watching contexts (their recorded builds are kept)", _cmd_rm, common, as_json, selection
    )
    rm.add_argument("contexts", metavar="PATH|NAME", nargs="*").completer = _complete_contexts  # type: ignore[attr-defined]
    rm.add_argument("--forget", action="store_true", help="also forget their recorded builds")

    _add_report_commands(commands, common, as_json, selection)

    watch = _command(
        commands,
        "watch",
        "show the report live, updated as files change",
        _cmd_watch,
        common,
        _build_options(remote=True),
        _json_option("print each report as one line of JSON"),
        selection,
    )
    watch.add_argument(
        "--reconnect-timeout",
        type=float,
        default=RECONNECT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for a daemon that stopped to serve again (default {RECONNECT_TIMEOUT_S:g})",
    )
    watch.add_argument(
        "contexts", metavar="PATH|NAME", nargs="*", help="default: the context containing the current folder"
    ).completer = _complete_contexts  # type: ignore[attr-defined]

    built = _command(
        commands,
        "built",
        "record that contexts were just built",
        _cmd_built,
        common,
        _build_options(remote=False),
        as_json,
        selection,
    )
    built.add_argument(
        "contexts", metavar="PATH|NAME", nargs="*", help="default: the context containing the current folder"
    ).completer = _complete_contexts  # type: ignore[attr-defined]

    discover = _command(
        commands,
        "discover",
        "list the Dockerfiles under a folder and the context each gets (a compose or bake file's, else its folder)",
        _cmd_discover,
        common,
        as_json,
    )
    discover.add_argument("root", metavar="PATH", nargs="?", default=".", help="default: the current folder")
    discover.add_argument("--add", action="store_true", help="register them")

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


def _top_parser(
    parser_class: type[_Parser],
) -> tuple[argparse.ArgumentParser, Any, argparse.ArgumentParser, argparse.ArgumentParser, argparse.ArgumentParser]:
    """The parser without its commands; with the commands' holder and the option sets they share."""
    parser = parser_class(
        prog="ctxwatch",
        description="Predict which Dockerfile steps BuildKit would take from its cache, and why.",
        epilog="Exit codes: 0 ok; 1 `check` found steps that would run again; 2 any error. "
        "`ctxwatch help COMMAND` shows a command's options.",
        parents=[_global_options(in_subcommand=False)],
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    return parser, commands, _global_options(in_subcommand=True), _json_option(), projects.selection_options()


def _add_report_commands(
    commands: Any,
    common: argparse.ArgumentParser,
    as_json: argparse.ArgumentParser,
    selection: argparse.ArgumentParser,
) -> None:
    """status, check and affected."""
    report_options = _report_options()
    _command(
        commands,
        "status",
        "show which steps would be cached, and why not (exit 2 on any error)",
        _cmd_status,
        common,
        report_options,
        as_json,
        selection,
    )
    check = _command(
        commands,
        "check",
        "exit 0 if every step would be cached, 1 if any would run again, 2 on any error",
        _cmd_check,
        common,
        report_options,
        as_json,
        selection,
    )
    check.add_argument("-q", "--quiet", action="store_true", help="print nothing; only the exit code")
    _command(
        commands,
        "affected",
        "list the contexts (with --compose/--bake: the services or targets) that would not be all cached",
        _cmd_affected,
        common,
        report_options,
        as_json,
        selection,
    )


def _add_daemon_commands(commands, common: argparse.ArgumentParser, as_json: argparse.ArgumentParser) -> None:
    daemon = commands.add_parser(
        "daemon", help="start, stop and inspect the ctxwatchd daemon", description="Manage the ctxwatchd daemon."
    )
    daemon_commands = daemon.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _command(
        daemon_commands,
        "start",
        f"start the daemon in the background (it exits after {launch.IDLE_TIMEOUT_S // 3600} h without a client)",
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
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)  # stdout carries the protocol
    logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message at INFO

    def connect_daemon() -> CtxwatchClient:  # again after a restart of the daemon
        return connect(args.socket, spawn=not args.no_spawn, state_dir=args.state_dir)

    make_server(connect_daemon, args.state_dir).start_io()
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
    if projects.wants_project(args):
        if args.path:
            raise ValueError("give a PATH or --compose/--bake, not both")
        with _connect(args) as client:
            return project_commands.add_project(client, args)
    if not args.path:
        raise ValueError("give the context folder (PATH), or --compose / --bake")
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
        [report] = with_progress(client, lambda: client.reports([pb.ContextRef(name=name)]))
    changes = _option_changes(existing, response.context) if existing else []
    if args.json:
        kind = "registered" if not existing else "updated" if changes else "unchanged"
        sync = Sync(changes=[projects.Change(kind, name, options=changes)])
        emit(json_output.dumps(json_output.added([report], sync)))
        return EXIT_ERROR if has_error(report) else EXIT_OK
    if not existing:
        emit(f"registered context {name!r}")
    elif changes:
        emit(f"updated context {name!r}: " + "; ".join(f"{option} {was} -> {now}" for option, was, now in changes))
    else:
        emit(f"context {name!r} is already registered; nothing changed")
    emit(render.render_report(report, **style(args)))
    return EXIT_ERROR if has_error(report) else EXIT_OK


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
    return projects.option_changes(projects.settings_of(before), projects.settings_of(after))


def _cmd_ls(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        contexts = client.list()
    emit(json_output.dumps(json_output.contexts(contexts)) if args.json else render.render_contexts(contexts))
    return EXIT_OK


def _cmd_rm(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        refs = project_commands.removal_refs(client, args)
        responses = [client.unregister(ref, forget=args.forget) for ref in refs]
    if args.json:
        emit(json_output.dumps(json_output.removed(responses, history_kept=not args.forget)))
        return EXIT_OK
    for response in responses:
        context = response.context
        if args.forget:
            emit(f"removed context {context.name!r} ({context.path}) and forgot its recorded builds")
        else:
            emit(
                f"removed context {context.name!r} ({context.path}); its {response.builds_kept} recorded build(s) "
                f"are kept: `ctxwatch add` it again as {context.name!r} to use them, or `ctxwatch rm --forget` to "
                "drop them"
            )
    if not responses:
        emit("no context is registered; nothing to remove")
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    with _connect(args) as client:
        refs, sync = project_commands.select(client, args, default="cwd-or-all")
        reports = with_progress(client, lambda: client.reports(refs, options))
    code = EXIT_ERROR if sync.failed or any(has_error(report) for report in reports) else EXIT_OK
    if args.json:
        emit(json_output.dumps(json_output.reports(reports, sync)))
        return code
    project_commands.say_changes(sync)
    if not reports:
        emit(render.render_contexts([]))
    else:
        emit("\n\n".join(render.render_report(report, **style(args)) for report in reports))
    return code


def _cmd_check(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    with _connect(args) as client:
        refs, sync = project_commands.select(client, args, default="cwd-or-all")
        reports = with_progress(client, lambda: client.reports(refs, options), quiet=args.quiet)
    if not reports:
        # Nothing to check is a mistake in a script, not a warm cache.
        raise ValueError("no contexts registered (add one with `ctxwatch add PATH`)")
    code = EXIT_ERROR if sync.failed else _check_code(reports)
    if code == EXIT_OK and sync.unknown:  # a build the files define that cannot be answered is not cached
        code = EXIT_NOT_CACHED
    if args.json:
        emit(json_output.dumps(json_output.check(reports, code, sync)))
    elif not args.quiet:
        project_commands.say_changes(sync)
        for report in reports:
            emit(render.render_check(report, **style(args)))
    return code


def _check_code(reports: Sequence[pb.Report]) -> int:
    """2 if any context or step is in error, else 1 if any step is not cached, else 0."""
    if any(has_error(report) for report in reports):
        return EXIT_ERROR
    return EXIT_OK if all(_all_cached(report) for report in reports) else EXIT_NOT_CACHED


def _cmd_affected(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        return project_commands.affected(client, args, options_from_args(args))


def _cmd_discover(args: argparse.Namespace) -> int:
    return project_commands.discover(args, lambda: _connect(args))


def _cmd_built(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    with _connect(args) as client:
        refs, sync = project_commands.select(client, args, default="cwd")
        responses = [client.mark_built(ref, options) for ref in refs]
    if args.json:
        emit(json_output.dumps(json_output.built(responses, sync)))
        return EXIT_ERROR if sync.failed else EXIT_OK
    project_commands.say_changes(sync)
    for response in responses:
        emit(render.render_mark_built(response))
    return EXIT_ERROR if sync.failed else EXIT_OK


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
    with _connect(args) as client:
        socket_path = client.socket_path
        project_commands.watch(client, args, options)
    while True:
        # The streams ended: the daemon stopped or restarted. Wait for one to serve again (never start one).
        print(f"ctxwatch: lost ctxwatchd on {socket_path}; reconnecting...", file=sys.stderr, flush=True)
        if not spawn.wait_until_serving_again(socket_path, args.reconnect_timeout):
            raise CtxwatchError(
                "UNAVAILABLE",
                f"ctxwatchd on {socket_path} did not come back within {args.reconnect_timeout:g} s; "
                "start it with `ctxwatch daemon start` and run watch again",
            )
        with connect(socket_path, spawn=False) as client:
            print(f"ctxwatch: reconnected (ctxwatchd pid {client.daemon_status().pid})", file=sys.stderr, flush=True)
            project_commands.watch(client, args, options)


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
    already = spawn.running(socket_path)
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
    if not spawn.running(socket_path):
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
    # It saves its hash cache before it exits: seconds on a large tree (spawn.STOP_TIMEOUT says how long).
    if spawn.wait_until_stopped(socket_path, pid, timeout=STOP_NOTICE_AFTER_S):
        return pid
    if sys.stderr.isatty():
        print(f"ctxwatchd (pid {pid}) is saving its hash cache before it exits...", file=sys.stderr)
    if not spawn.wait_until_stopped(socket_path, pid, timeout=spawn.STOP_TIMEOUT - STOP_NOTICE_AFTER_S):
        raise CtxwatchError(
            "DEADLINE_EXCEEDED",
            f"ctxwatchd (pid {pid}) still runs {spawn.STOP_TIMEOUT:g} s after it was asked to stop; "
            f"`ctxwatch daemon logs` shows what it last did, and `kill -KILL {pid}` ends it "
            "(what it hashed since it last stopped is then read again at the next start)",
        )
    return pid


def _cmd_daemon_restart(args: argparse.Namespace) -> int:
    socket_path = paths.resolve_socket_path(args.socket)
    if spawn.running(socket_path):
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
    log_path = launch.log_path(args.state_dir)
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
        emit(json_output.dumps(json_output.daemon_paths(str(socket_path), str(launch.log_path(args.state_dir)))))
    else:
        emit(str(socket_path))
    return EXIT_OK


def _cmd_daemon_install_unit(args: argparse.Namespace) -> int:
    from ctxwatch import unit

    written = unit.install(force=args.force)
    emit(f"wrote {written}")
    emit("enable and start it with:")
    for command in unit.ENABLE_COMMANDS:
        emit(f"  {command}")
    return EXIT_OK


def _cmd_completion(args: argparse.Namespace) -> int:
    import argcomplete

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


def _all_cached(report: pb.Report) -> bool:
    return not report.error and all(step.status == pb.STEP_STATUS_CACHED for step in report.steps)


if __name__ == "__main__":
    sys.exit(main())
