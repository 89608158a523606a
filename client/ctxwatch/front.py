# PYTHON_ARGCOMPLETE_OK
"""The `ctxwatch` program: runs the command in a warm runner (ctxwatch.runner) when one serves, else here.

Importing gRPC and the stubs costs several times what a command does with a warm daemon, so the commands
scripts and prompts run most (RUNNER_COMMANDS) are handed to a long-lived runner that has imported them
once, the way Mercurial's chg and Nailgun do: this front sends the runner its arguments, current folder,
environment, umask and its stdin, stdout and stderr themselves (SCM_RIGHTS); the runner forks a child that
runs `ctxwatch.cli.main` on them, unchanged, and the front exits with the child's exit code. Output,
colour, terminal width, closed pipes and errors are therefore those of a run in this process.

Without a runner (none started yet, a stale socket, a runner of other code, $CTXWATCH_NO_RUNNER) the
command runs here, as it always did, and a runner is started in the background for the next one.

Imports only what it needs from the standard library (no pathlib, grpc or protobuf): its own start-up is
what every command pays (tests/test_cli_runner.py checks which modules it loads; bench/cli.py the time).
"""

from __future__ import annotations

# _socket, not socket: the socket module imports selectors and builds its enums (about 4 ms) for nothing used here.
import _socket
import os
import signal
import sys

from ctxwatch_api import paths

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# They never read stdin or ask, never run until interrupted (watch), never start or stop the daemon: what a child
# of the runner does for them is what this process would.
RUNNER_COMMANDS = ("check", "status", "affected", "ls")
# They start the daemon when none answers (not `daemon start`, which says whether it did; nor lsp or discover,
# which connect later if at all): a command run here starts it before importing gRPC (see launch.start_early).
DAEMON_COMMANDS = ("add", "ls", "rm", "status", "check", "affected", "built", "build", "stats", "watch", "prune")
# The daemon started early is the default one (or $CTXWATCH_SOCKET's): a command line naming its own socket or
# state folder, or asking for no daemon or for help, is left to the command's parser.
NOT_STARTED_EARLY_FOR = ("--socket", "--state-dir", "--no-spawn", "--no-daemon", "-h", "--help")
NO_RUNNER_ENV = "CTXWATCH_NO_RUNNER"  # set (to anything but 0): every command runs in the ctxwatch process
GLOBAL_OPTIONS_WITH_VALUE = ("--socket", "--state-dir", "--color")  # skipped with their value to find the command
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, a closed terminal
# The environment variables the interpreter reads at start-up besides PYTHON*, and those the runner's parser
# was translated under (gettext): a runner started under others would not run the command as this process would.
STARTUP_ENV = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES")

# The runner's answers, one line each: the child's pid, then its exit code; or "stale" (it runs other code).
CHILD_PID = b"P"
EXIT_CODE = b"X"
STALE = b"S"
EXIT_ERROR = 2
# Linux's: the peer's user (SO_PEERCRED) and a descriptor of the current folder that needs no read access (O_PATH).
RUNNER_SUPPORTED = hasattr(_socket, "SO_PEERCRED") and hasattr(os, "O_PATH")
# How the runner is started: in the root folder first, so that its imports never look in the folder it was
# started from (`python -m` would put that folder first on its import path).
RUNNER_MAIN = "import os; os.chdir('/'); from ctxwatch import runner; raise SystemExit(runner.main())"


def main() -> int:
    argv = sys.argv[1:]
    if not runner_wanted(argv, os.environ):
        return _run_here(argv)
    code = _run_in_runner(argv)
    if code is not None:
        # The command ran in another process: nothing here needs the interpreter's finalization (about 4 ms).
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)
    try:
        return _run_here(argv)
    finally:
        start_runner()


def runner_wanted(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether this command line goes to the runner."""
    if not RUNNER_SUPPORTED or runner_turned_off(environ) or "_ARGCOMPLETE" in environ:
        return False  # (argcomplete answers on descriptors of its own)
    return command_word(argv) in RUNNER_COMMANDS


def runner_turned_off(environ: Mapping[str, str]) -> bool:
    return environ.get(NO_RUNNER_ENV, "0") not in ("", "0")


def command_word(argv: Sequence[str]) -> str | None:
    """The command the arguments seem to name: the first word that is not a global option or its value (a guess:
    the parser checks it)."""
    words = iter(argv)
    for word in words:
        if word in GLOBAL_OPTIONS_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def daemon_started_early(argv: Sequence[str]) -> bool:
    """Whether a command run here starts the daemon before importing gRPC, should none answer."""
    if command_word(argv) not in DAEMON_COMMANDS:
        return False
    return not any(word.split("=", 1)[0] in NOT_STARTED_EARLY_FOR for word in argv)


def code_fingerprint() -> str:
    """What decides which code a command runs: the interpreter (bin/python or bin/python3 alike), its flags and
    start-up variables, its import path (sys.path[0] is the script's folder, which differs between the front and
    the runner), and the newest change of that path's folders and of the command line's packages (the runner
    never imports the daemon's: `--no-daemon` loads them in the child). The runner takes it before importing
    them; about 0.5 ms."""
    import ctxwatch
    import ctxwatch_api

    newest = 0
    for entry in sys.path[1:]:
        try:
            newest = max(newest, os.stat(entry).st_mtime_ns)
        except OSError:
            pass
    for package in (ctxwatch, ctxwatch_api):
        newest = max(newest, _newest_change(os.path.dirname(package.__file__ or "")))
    startup = sorted(f"{key}={value}" for key, value in os.environ.items() if key.startswith("PYTHON"))
    startup += [f"{key}={os.environ.get(key, '')}" for key in STARTUP_ENV]
    return "\n".join([os.path.realpath(sys.executable), str(sys.flags), *sys.path[1:], *startup, str(newest)])


def _newest_change(folder: str) -> int:
    """The newest mtime (ns) of the .py files and folders under `folder` (a removed file changes its folder's)."""
    newest = os.stat(folder).st_mtime_ns
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".py"):
                newest = max(newest, entry.stat().st_mtime_ns)
            elif entry.is_dir() and entry.name != "__pycache__":
                newest = max(newest, _newest_change(entry.path))
    return newest


def encode_request(argv: Sequence[str], fingerprint: str) -> bytes:
    """The request after its length: NUL-separated fields (no argument or variable can hold a NUL)."""
    umask = os.umask(0)
    os.umask(umask)
    streams = [sys.stdin, sys.stdout, sys.stderr]
    stdio = [f"{s.encoding}:{s.errors}:{int(s.line_buffering)}:{int(getattr(s, 'write_through', 0))}" for s in streams]
    # sys.path[0] (the script's folder) too: where the command's later imports look first, as they would here.
    fields = [fingerprint, str(umask), *stdio, sys.path[0], sys.argv[0], str(len(argv)), *argv]
    body = b"\0".join([*map(os.fsencode, fields), *(key + b"=" + value for key, value in os.environb.items())])
    return len(body).to_bytes(4, "big") + body


def _run_here(argv: Sequence[str]) -> int:
    if daemon_started_early(argv):
        from ctxwatch import launch

        launch.start_early()
    from ctxwatch import cli

    return cli.main(argv)


def _run_in_runner(argv: Sequence[str]) -> int | None:
    """The command's exit code from the runner, or None when no runner took it (nothing ran)."""
    if sys.stdin is None or sys.stdout is None or sys.stderr is None:
        return None  # a closed stdio descriptor: nothing to hand over
    connection = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        with _SignalForwarder() as forwarder:
            connection.connect(paths.runner_socket_path())
            if not _ours(connection):
                return None  # someone else's process: it gets neither the environment nor the terminal
            if forwarder.pending:  # interrupted before the command was sent: it never runs
                return 128 + forwarder.pending[0]
            _send_request(connection, argv)
            return _await_exit(connection, forwarder)
    except OSError:
        return None  # no runner (a missing or stale socket), or it went away before it ran anything
    finally:
        connection.close()


def _ours(connection: _socket.socket) -> bool:
    """Whether the process listening on `connection` runs as this user."""
    return peer_uid(connection) == os.getuid()


def peer_uid(connection: _socket.socket) -> int:
    """The user id of the process at the other end (SO_PEERCRED: pid, uid, gid, native ints)."""
    credentials = connection.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return int.from_bytes(credentials[4:8], sys.byteorder, signed=True)


def _send_request(connection: _socket.socket, argv: Sequence[str]) -> None:
    request = encode_request(argv, code_fingerprint())
    folder = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # the child's current folder, even a removed one
    try:
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, folder))  # as socket.send_fds packs them
        sent = connection.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        connection.sendall(request[sent:])
    finally:
        os.close(folder)


def _await_exit(connection: _socket.socket, forwarder: _SignalForwarder) -> int | None:
    """Read the runner's answers until the child's exit code."""
    answers = b""
    while True:
        try:
            chunk = connection.recv(256)
        except OSError:  # as the end of the answers: past the pid, the command may have run, and is not run here
            chunk = b""
        answers += chunk
        lines = answers.split(b"\n")
        for line in lines[:-1]:
            if line.startswith(CHILD_PID):
                forwarder.forward_to(int(line[1:]))
            elif line.startswith(EXIT_CODE):
                return int(line[1:])
            elif line == STALE:  # the runner runs other code than this front would, and exits
                return 128 + forwarder.pending[0] if forwarder.pending else None
        if not chunk:
            break
    if forwarder.child is None:
        return 128 + forwarder.pending[0] if forwarder.pending else None  # nothing ran
    if forwarder.sent:  # the child ended on the signal forwarded, as this process would have
        return 128 + forwarder.sent[-1]
    print(
        f"ctxwatch: the command's process (pid {forwarder.child}, started by the ctxwatch runner) ended "
        f"without an exit code; it is not run again (set {NO_RUNNER_ENV}=1 to run commands in this process)",
        file=sys.stderr,
    )
    return EXIT_ERROR


class _SignalForwarder:
    """Sends the signals this process gets (Ctrl-C, kill) to the command's process once its pid is known."""

    def __init__(self) -> None:
        self.child: int | None = None
        self.pending: list[int] = []
        self.sent: list[int] = []
        self._before: dict[int, object] = {}

    def __enter__(self) -> _SignalForwarder:
        for number in FORWARDED_SIGNALS:
            self._before[number] = signal.signal(number, self._got)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._before.items():
            signal.signal(number, handler)  # type: ignore[arg-type]

    def forward_to(self, pid: int) -> None:
        self.child = pid
        for number in self.pending:
            self._send(pid, number)

    def _got(self, number: int, frame: object) -> None:
        if self.child is None:
            self.pending.append(number)
        else:
            self._send(self.child, number)

    def _send(self, pid: int, number: int) -> None:
        try:
            os.kill(pid, number)
            self.sent.append(number)
        except ProcessLookupError:
            pass  # it has just ended


def start_runner() -> None:
    """Start a runner in the background for the next command (a second one started at once gives way)."""
    if not RUNNER_SUPPORTED or runner_turned_off(os.environ):
        return
    stdio = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    try:
        # A session of its own: it outlives this process and its terminal. Not waited for: once this process
        # exits (at once), the system's reaper adopts it.
        os.posix_spawn(sys.executable, [sys.executable, "-c", RUNNER_MAIN], os.environ, file_actions=stdio, setsid=True)
    except OSError:
        pass  # the next command runs in its own process again


if __name__ == "__main__":
    sys.exit(main())
