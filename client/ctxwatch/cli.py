"""The `ctxwatch` command line: register contexts, ask ctxwatchd for reports, record builds.

Exit codes: 0 ok, 1 `check` found steps that are not cached, 2 any error
(printed as one "ctxwatch: ..." line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.message import Message

from ctxwatch import render, spawn
from ctxwatch.client import (
    CtxwatchClient,
    CtxwatchError,
    build_options,
    connect,
    context_ref,
    local_client,
    parse_build_args,
)
from ctxwatch_api import paths
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

EXIT_OK = 0
EXIT_NOT_CACHED = 1
EXIT_ERROR = 2
PROGRESS_AFTER_S = 0.5


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
        # The reader went away (e.g. `| head`); don't let the final flush complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ctxwatch",
        description="Predict which Dockerfile steps BuildKit would take from its cache, and why.",
        parents=[_global_options(in_subcommand=False)],
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    common = _global_options(in_subcommand=True)

    add = _command(commands, "add", "register a build context and show its report", _cmd_add, common)
    add.add_argument("path", metavar="PATH", help="the context folder")
    add.add_argument(
        "-f",
        "--file",
        dest="dockerfile",
        metavar="DOCKERFILE",
        help="relative to the current folder (default: PATH/Dockerfile)",
    )
    add.add_argument("--build-arg", action="append", default=[], metavar="K=V", help="repeatable")
    add.add_argument("--target", metavar="T", help="stage to build (default: the last)")
    add.add_argument("--name", metavar="N", help="default: the folder name")

    _command(commands, "ls", "list registered contexts", _cmd_ls, common)

    rm = _command(commands, "rm", "stop watching a context", _cmd_rm, common)
    rm.add_argument("context", metavar="PATH|NAME")

    report_options = _report_options()
    status = _command(
        commands, "status", "show which steps would be cached, and why not", _cmd_status, common, report_options
    )
    status.add_argument("--json", action="store_true", help="print the Report(s) as protobuf JSON")

    check = _command(
        commands, "check", "exit 0 if every step would be cached, else 1", _cmd_check, common, report_options
    )
    check.add_argument("-q", "--quiet", action="store_true", help="print nothing; only the exit code")

    watch = _command(
        commands,
        "watch",
        "show the report live, updated as files change",
        _cmd_watch,
        common,
        _build_options(remote=True),
    )
    watch.add_argument(
        "context", metavar="PATH|NAME", nargs="?", help="default: the context containing the current folder"
    )

    built = _command(
        commands, "built", "record that the context was just built", _cmd_built, common, _build_options(remote=False)
    )
    built.add_argument(
        "context", metavar="PATH|NAME", nargs="?", help="default: the context containing the current folder"
    )

    prune = _command(commands, "prune", "forget recorded builds, like `docker builder prune`", _cmd_prune, common)
    prune.add_argument("contexts", metavar="PATH|NAME", nargs="*", help="default: every context")
    prune.add_argument("--keep", type=int, default=0, metavar="N", help="keep the newest N builds (default 0)")

    _command(commands, "lsp", "run the language server on stdio (for editors)", _cmd_lsp, common)

    daemon = commands.add_parser("daemon", help="the ctxwatchd daemon (only `start` starts it)")
    daemon_commands = daemon.add_subparsers(title="commands", metavar="COMMAND", required=True)
    daemon_status = _command(daemon_commands, "status", "version, memory, watched roots", _cmd_daemon_status, common)
    daemon_status.add_argument("--json", action="store_true", help="print the DaemonStatus as protobuf JSON")
    _command(daemon_commands, "stop", "ask the daemon to exit and wait until it has", _cmd_daemon_stop, common)
    _command(
        daemon_commands, "start", "start the daemon unless one serves; return once it serves", _cmd_daemon_start, common
    )
    _command(
        daemon_commands, "socket", "print the socket path (for clients in any language)", _cmd_daemon_socket, common
    )
    return parser


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
    return options


def _build_options(remote: bool) -> argparse.ArgumentParser:
    """The `docker build` options a report or a recorded build depends on."""
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("build options (as given to docker build)")
    group.add_argument("--build-arg", action="append", default=[], metavar="K=V", help="repeatable")
    group.add_argument("--target", metavar="T")
    group.add_argument("--no-cache", action="store_true")
    group.add_argument(
        "--no-cache-filter", action="append", default=[], metavar="STAGE", help="repeatable or comma-separated"
    )
    if remote:
        group.add_argument(
            "--assume-remote-unchanged",
            action="store_true",
            help="treat unpinned base images and URLs as unchanged instead of unknown",
        )
    return options


def _report_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False, parents=[_build_options(remote=True)])
    options.add_argument(
        "contexts",
        metavar="PATH|NAME",
        nargs="*",
        help="default: the context containing the current folder, else all",
    )
    return options


def _command(commands, name: str, help_: str, run, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=help_, description=help_, parents=parents)
    command.set_defaults(run=run)
    return command


def options_from_args(args: argparse.Namespace) -> pb.BuildOptions:
    """The BuildOptions a status/check/built command line asks for."""
    return build_options(
        build_args=args.build_arg,
        target=args.target,
        no_cache=args.no_cache,
        no_cache_filter=args.no_cache_filter,
        assume_remote_unchanged=getattr(args, "assume_remote_unchanged", False),
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
        from ctxwatchd.local import LocalServer  # the daemon's service, in this process

        with LocalServer(paths.resolve_state_dir(args.state_dir)) as local, local_client(local.socket_path) as client:
            yield client
        return
    with connect(args.socket, spawn=spawn_allowed and not args.no_spawn, state_dir=args.state_dir) as client:
        yield client


def _cmd_add(args: argparse.Namespace) -> int:
    build_args = parse_build_args(args.build_arg)
    # -f is relative to the current folder, as in `docker build -f`, not to PATH.
    dockerfile = os.path.abspath(args.dockerfile) if args.dockerfile else None
    with _connect(args) as client:
        response = client.register(args.path, dockerfile, build_args, args.target, args.name)
        name = response.context.name
        [report] = _with_progress(client, lambda: client.reports([pb.ContextRef(name=name)]))
    print(f"{'updated' if response.updated else 'registered'} context {name!r}")
    print(render.render_report(report, **_style()))
    return EXIT_OK


def _cmd_ls(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        print(render.render_contexts(client.list()))
    return EXIT_OK


def _cmd_rm(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        context = client.unregister(context_ref(args.context))
    print(f"removed context {context.name!r} ({context.path})")
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    with _connect(args) as client:
        refs = _selected_refs(client, args.contexts)
        reports = _with_progress(client, lambda: client.reports(refs, options))
    if args.json:
        print(_reports_json(reports, single=len(refs) == 1))
    elif not reports:
        print(render.render_contexts([]))
    else:
        print("\n\n".join(render.render_report(report, **_style()) for report in reports))
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    with _connect(args) as client:
        refs = _selected_refs(client, args.contexts)
        reports = _with_progress(client, lambda: client.reports(refs, options), quiet=args.quiet)
    if not reports:
        # Nothing to check is a mistake in a script, not a warm cache.
        raise ValueError("no contexts registered (add one with `ctxwatch add PATH`)")
    if not args.quiet:
        print("\n".join(render.render_check(report, **_style()) for report in reports))
    return EXIT_OK if all(_all_cached(report) for report in reports) else EXIT_NOT_CACHED


def _cmd_built(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    with _connect(args) as client:
        ref = context_ref(args.context) if args.context else _cwd_ref(client)
        response = client.mark_built(ref, options)
    print(render.render_mark_built(response))
    return EXIT_OK


def _cmd_watch(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    style = _style()
    with _connect(args) as client:
        ref = context_ref(args.context) if args.context else _cwd_ref(client)
        for report in client.watch(ref, options):
            if sys.stdout.isatty():
                print("\x1b[H\x1b[2J", end="")  # redraw in place
            stamp = time.strftime("%H:%M:%S")
            print(f"{render.render_report(report, **style)}\n\n[{stamp}] watching; Ctrl-C to stop", flush=True)
    return EXIT_OK


def _cmd_prune(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        response = client.prune([context_ref(text) for text in args.contexts], args.keep)
    print(f"forgot {response.builds_removed} recorded build(s); removed {response.nodes_removed} stored node(s)")
    return EXIT_OK


def _cmd_daemon_status(args: argparse.Namespace) -> int:
    with _connect(args, spawn_allowed=False) as client:
        status = client.daemon_status()
    print(_to_json(status) if args.json else render.render_daemon_status(status))
    return EXIT_OK


def _cmd_daemon_start(args: argparse.Namespace) -> int:
    if args.no_daemon:
        raise ValueError("`daemon` commands talk to the daemon: drop --no-daemon")
    socket_path = paths.resolve_socket_path(args.socket)
    already = spawn.probe(socket_path) is not None
    with connect(args.socket, spawn=True, state_dir=args.state_dir) as client:
        status = client.daemon_status()
    verb = "ctxwatchd is already running" if already else "started ctxwatchd"
    print(f"{verb} (pid {status.pid}) on {status.socket_path}")
    return EXIT_OK


def _cmd_daemon_socket(args: argparse.Namespace) -> int:
    print(paths.resolve_socket_path(args.socket))
    return EXIT_OK


def _cmd_daemon_stop(args: argparse.Namespace) -> int:
    socket_path = paths.resolve_socket_path(args.socket)
    if spawn.probe(socket_path) is None:
        print(f"no daemon is running on {socket_path}")
        return EXIT_OK
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
    print(f"stopped ctxwatchd (pid {pid})")
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
    """The contexts named, else the one containing the current folder, else [] (all)."""
    if texts:
        return [context_ref(text) for text in texts]
    containing = _contexts_containing_cwd(client)
    return [pb.ContextRef(name=containing[0].name)] if len(containing) == 1 else []


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


def _reports_json(reports: Sequence[pb.Report], single: bool) -> str:
    """One context asked for: its Report; otherwise a list, so the shape never depends on the data."""
    if single and len(reports) == 1:
        return _to_json(reports[0])
    return json.dumps([_to_dict(report) for report in reports], indent=2)


def _to_json(message: Message) -> str:
    return json.dumps(_to_dict(message), indent=2)


def _to_dict(message: Message) -> dict:
    # Default-valued fields are printed so scripts can read e.g. allCached: false.
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def _style() -> dict:
    """Colour and truncation for this stdout: only on a terminal, and no colour with NO_COLOR."""
    if not sys.stdout.isatty():
        return {"color": False, "width": None}
    return {"color": not os.environ.get("NO_COLOR"), "width": shutil.get_terminal_size().columns}


if __name__ == "__main__":
    sys.exit(main())
