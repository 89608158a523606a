"""The command line's runner: a warm process that runs commands for ctxwatch.front, one forked child each.

It has imported ctxwatch.cli (gRPC and the stubs with it) once and never creates a gRPC channel or a
thread, so forking it is safe and cheap. For each request the child takes the front's current folder,
environment, umask, arguments and stdin/stdout/stderr, runs `cli.main` unchanged, and sends back the exit
code (see ctxwatch.front for the protocol). It listens on `paths.runner_socket_path()`, in the folder of the
daemon's default socket (a folder of its user's alone, or it does not serve), and answers only processes of
its own user; a lock beside the socket keeps it the only runner there.

It runs only the code the front would: a front whose code fingerprint differs (an upgrade, an edit) is told
"stale", and the runner exits; the front runs the command itself and starts a fresh one. It exits after
IDLE_TIMEOUT_S without a request ($CTXWATCH_RUNNER_IDLE_TIMEOUT sets another, in seconds), or on SIGTERM.

ctxwatch.front starts it (python -c front.RUNNER_MAIN); nothing else needs to.
"""

from __future__ import annotations

import fcntl
import io
import os
import signal
import socket
import stat
import sys
from dataclasses import dataclass

from ctxwatch import front
from ctxwatch_api import paths

IDLE_TIMEOUT_S = 15 * 60  # a prompt or a hook that runs every few minutes keeps it; an idle machine does not
IDLE_TIMEOUT_ENV = "CTXWATCH_RUNNER_IDLE_TIMEOUT"
REQUEST_TIMEOUT_S = 5.0  # to read one request: a front that connects and stalls does not hold the others up
MAX_REQUEST_BYTES = 64 * 1024 * 1024
RECEIVED_FDS = 4  # stdin, stdout, stderr and the current folder


@dataclass
class Request:
    """One command as the front sends it."""

    fingerprint: str
    umask: int
    stdio: list[tuple[str, str, bool, bool]]  # encoding, errors, line buffering, write-through of each stream
    path0: str  # the front's sys.path[0]
    argv0: str
    args: list[str]
    environ: dict[bytes, bytes]


def main() -> int:
    signal.signal(signal.SIGTERM, _exit_on_signal)  # first: a runner stopped while it starts cleans up too
    fingerprint = front.code_fingerprint()  # before importing the code it describes
    path = paths.runner_socket_path()
    try:
        lock = _claim(path)
    except OSError:
        return 1  # commands run in their own process
    if lock is None:
        return 0  # another runner serves or is starting, or the folder is not its user's alone
    try:
        # What every child runs, imported once here; with it the project files' readers (PyYAML, python-hcl2 and
        # its grammar), which a command run in a compose or bake project would load every time (about 15 and 100 ms).
        from ctxwatch import bake, cli, compose  # noqa: F401

        # Parsing a command line once builds the report commands' parser and fills argparse's caches for every
        # child; it connects to nothing.
        cli._parse_args(["check", "-q"])
        if len(os.listdir("/proc/self/task")) != 1:
            return 1  # a thread (of an imported library) would make forking unsafe: refuse to serve
        # Listening only now: a front that finds the socket finds a runner ready (until then it runs the command).
        runner = Runner(_listen(path), path, lock, fingerprint)
    except BaseException:
        os.close(lock)
        raise
    try:
        # Children are reaped by the kernel; each sets its own SIGCHLD back (its subprocesses are waited for).
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        runner.serve(_idle_timeout())
    finally:
        runner.close()
    return 0


class Runner:
    """The listening socket, at `path`, and the lock that makes it the only runner there."""

    def __init__(self, listener: socket.socket, path: str, lock: int, fingerprint: str) -> None:
        self.listener = listener
        self.path = path
        self.lock = lock
        self.fingerprint = fingerprint
        self.inode = os.stat(path).st_ino  # the socket file this runner made (a socket's own fstat says another)

    def serve(self, idle_timeout: float) -> None:
        """Fork a child per request until one comes from a front of other code, or none for `idle_timeout`."""
        self.listener.settimeout(idle_timeout)
        while True:
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                return
            with connection:
                received = _receive(connection)
                if received is None:
                    continue
                request, fds = received
                try:
                    if request.fingerprint != self.fingerprint:
                        self.close()  # first, so that the fresh runner the front starts can listen at once
                        connection.sendall(front.STALE + b"\n")
                        return
                    if os.fork() == 0:
                        self.close_in_child()
                        _run_child(connection, request, fds)
                finally:
                    for fd in fds:
                        os.close(fd)

    def close(self) -> None:
        """Stop listening, remove the socket file (unless another runner has replaced it) and release the lock."""
        if self.lock < 0:
            return
        try:
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        except OSError:
            pass
        self.close_in_child()

    def close_in_child(self) -> None:
        """Close the socket and the lock in this process only (a child shares them with the runner)."""
        self.listener.close()
        os.close(self.lock)
        self.lock = -1


def _claim(path: str) -> int | None:
    """The lock beside `path`, held (the descriptor), after making its folder if needed (0700); None when another
    runner holds it, or when the folder is a link, or someone else's, or open to others (a runner there would
    take requests through a place another user controls)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        return None
    os.ftruncate(lock, 0)
    os.write(lock, f"{os.getpid()}\n".encode())  # who holds it, for a person (or a test) looking
    return lock


def _listen(path: str) -> socket.socket:
    """Listen on `path`: this runner holds the lock, so a socket file there is a leftover and is replaced."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket file is 0600 from the start
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    listener.listen(64)
    return listener


def _idle_timeout() -> float:
    try:
        return float(os.environ.get(IDLE_TIMEOUT_ENV, IDLE_TIMEOUT_S))
    except ValueError:
        return IDLE_TIMEOUT_S


def _exit_on_signal(number: int, frame: object) -> None:
    raise SystemExit(0)


def _receive(connection: socket.socket) -> tuple[Request, list[int]] | None:
    """A request from a process of this user, with its descriptors; None for anything else."""
    if front.peer_uid(connection) != os.getuid():
        return None
    connection.settimeout(REQUEST_TIMEOUT_S)
    fds: list[int] = []
    try:
        data, fds, _, _ = socket.recv_fds(connection, 65536, RECEIVED_FDS)
        if len(fds) != RECEIVED_FDS or len(data) < 4:
            raise ValueError("not a request")
        length = int.from_bytes(data[:4], "big")
        if length > MAX_REQUEST_BYTES:
            raise ValueError("too long")
        body = bytearray(data[4:])
        while len(body) < length:
            chunk = connection.recv(min(1 << 20, length - len(body)))
            if not chunk:
                raise ValueError("cut short")
            body += chunk
        connection.settimeout(None)
        return decode_request(bytes(body)), fds
    except (OSError, ValueError):
        for fd in fds:
            os.close(fd)
        return None


def decode_request(body: bytes) -> Request:
    """The request `front.encode_request` wrote (after its length)."""
    fields = body.split(b"\0")
    fingerprint, umask, *stdio_fields = (os.fsdecode(field) for field in fields[:5])
    path0, argv0, count = os.fsdecode(fields[5]), os.fsdecode(fields[6]), int(fields[7])
    args = [os.fsdecode(field) for field in fields[8 : 8 + count]]
    stdio = []
    for field in stdio_fields:
        encoding, errors, line_buffering, write_through = field.split(":")
        stdio.append((encoding, errors, line_buffering == "1", write_through == "1"))
    environ = dict(entry.partition(b"=")[::2] for entry in fields[8 + count :] if entry)
    return Request(fingerprint, int(umask), stdio, path0, argv0, args, environ)


def _run_child(connection: socket.socket, request: Request, fds: list[int]) -> None:
    """In the forked child: become the front's command, run it, send its exit code, and end."""
    code = front.EXIT_ERROR
    try:
        for number in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        connection.sendall(front.CHILD_PID + str(os.getpid()).encode() + b"\n")  # before anything with effects
        code = _run_command(request, fds)
    finally:
        try:
            connection.sendall(front.EXIT_CODE + str(code).encode() + b"\n")
        finally:
            os._exit(code)


def _run_command(request: Request, fds: list[int]) -> int:
    stdin, stdout, stderr, folder = fds
    os.fchdir(folder)
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
    for fd in fds:
        os.close(fd)
    os.umask(request.umask)
    os.environ.clear()
    os.environb.update(request.environ)
    sys.argv = [request.argv0, *request.args]
    sys.path[0] = request.path0
    # Streams made as the front's interpreter made its own, on the front's descriptors.
    sys.stdin, sys.stdout, sys.stderr = (_stream(fd, *settings) for fd, settings in enumerate(request.stdio))
    from ctxwatch import cli

    try:
        code = cli.main(request.args)
    except SystemExit as exit_:  # as the interpreter ends on it
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, int | None):
            print(exit_.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a reader that went away: the interpreter's own exit says nothing either
    return code


def _stream(fd: int, encoding: str, errors: str, line_buffering: bool, write_through: bool) -> io.TextIOWrapper:
    binary = open(fd, "rb" if fd == 0 else "wb", closefd=False)  # noqa: SIM115 - sys.std* for the child's life
    return io.TextIOWrapper(binary, encoding, errors, "\n", line_buffering, write_through)
