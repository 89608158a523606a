"""The language server: a client of ctxwatchd that shows, in the editor, what
BuildKit would do with each Dockerfile step if it were built now.

- A Dockerfile gets, per step, an inlay hint and a code lens (`cached`,
  `re-runs: src/app.py changed (content)`, `unknown: base image`), a hover
  with the full explanation, hint diagnostics for steps that re-run, and
  error diagnostics only where BuildKit would fail.
- Any other file gets a code lens naming the steps that read it (FindReaders).
- Updates are pushed: one WatchInvalidations stream per context wakes the
  server when files change; unsaved edits are sent with the query
  (BuildOptions.dockerfile_content). When the daemon goes away (a restart),
  the server waits for it to serve again (or starts one, as the CLI does),
  opens the streams again and refreshes what the editor shows.

Daemon calls run on one worker thread (in order, never blocking the
protocol); what they produce is handed back to the event loop to be sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from ctxwatch import spawn
from ctxwatch.client import CtxwatchClient, CtxwatchError, Watch
from ctxwatch.lsp import present
from ctxwatch.lsp.contexts import build_command, find_context, is_dockerfile
from ctxwatch_api.v1 import ctxwatch_pb2 as pb

log = logging.getLogger(__name__)

SOURCE = "ctxwatch"
CMD_MARK_BUILT = "ctxwatch.markBuilt"
CMD_BUILD = "ctxwatch.build"
CMD_SHOW_STEP = "ctxwatch.showStep"
# A stream that ends with these lost the daemon (it stopped or restarted).
LOST_DAEMON_CODES = {"UNAVAILABLE", "CANCELLED"}
# How long a lost daemon has to serve again (a restart) before the server starts one itself.
RESTART_WAIT_S = 15.0


@dataclass
class Doc:
    """An open document and what the daemon last said about it."""

    uri: str
    path: str
    dockerfile: bool
    context: pb.Context | None = None
    report: pb.Report | None = None
    readers: list[pb.Reader] = field(default_factory=list)


@dataclass
class Settings:
    """initializationOptions an editor may send."""

    inlay_hints: bool = True
    code_lens: bool = True  # a lens per step; the lens naming a file's readers is always there
    # A client-side command that runs a command line in a terminal (the VS Code
    # extension has one); without it "Build with ctxwatch" runs here.
    terminal_command: str = ""


class CtxwatchLanguageServer(LanguageServer):
    def __init__(self, connect: Callable[[], CtxwatchClient], state_dir: str | None = None) -> None:
        super().__init__("ctxwatch", _version())
        self._connect = connect
        self._client: CtxwatchClient | None = None
        self.state_dir = state_dir  # the CLI's --state-dir: where a project's inline Dockerfiles are kept
        self.docs: dict[str, Doc] = {}
        self.watches: dict[str, Watch] = {}  # context name -> its open stream
        self.connection = 0  # counts reconnections: a stream of an older connection lost its daemon
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="ctxwatch-lsp")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.settings = Settings()

    # -- plumbing ----------------------------------------------------------------
    @property
    def client(self) -> CtxwatchClient:
        if self._client is None:
            self._client = self._connect()  # starts the daemon as the CLI does
        return self._client

    def submit(self, job: Callable[..., Any], *args: Any) -> None:
        """Run a daemon call on the worker; a failure is shown, never raised into the protocol."""

        def run() -> None:
            try:
                job(*args)
            except CtxwatchError as e:
                self.post(self.tell, types.MessageType.Error, f"ctxwatch: {e}")
            except Exception:  # the server stays up whatever one job does
                log.exception("%s failed", getattr(job, "__name__", job))

        self.worker.submit(run)

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn` on the event loop (the protocol is not thread-safe)."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(fn, *args)

    def tell(self, kind: types.MessageType, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def note(self, message: str) -> None:
        log.info("%s", message)
        self.window_log_message(types.LogMessageParams(type=types.MessageType.Info, message=message))

    def close(self) -> None:
        watches, self.watches = list(self.watches.values()), {}  # taken first: their end is not a lost daemon
        for watch in watches:
            watch.cancel()
        self.worker.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    # -- documents ---------------------------------------------------------------------
    def opened(self, uri: str, language_id: str) -> None:
        path = to_fs_path(uri)
        if path is None:
            return  # not a file on this machine
        doc = self.docs[uri] = Doc(uri, os.path.realpath(path), is_dockerfile(path, language_id))
        self.submit(self._attach if doc.dockerfile else self._find_readers, doc)

    def changed(self, uri: str) -> None:
        doc = self.docs.get(uri)
        if doc is not None and doc.dockerfile and doc.context is not None:
            self.submit(self._refresh, doc, None)

    def saved(self, uri: str) -> None:
        doc = self.docs.get(uri)
        if doc is not None and not doc.dockerfile:
            self.submit(self._find_readers, doc)

    def closed(self, uri: str) -> None:
        doc = self.docs.pop(uri, None)
        if doc is None or doc.context is None:
            return
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        name = doc.context.name
        if not any(d.context is not None and d.context.name == name for d in self.docs.values()):
            watch = self.watches.pop(name, None)
            if watch is not None:
                watch.cancel()

    def text_of(self, doc: Doc) -> str:
        return self.workspace.get_text_document(doc.uri).source

    # -- on the worker -------------------------------------------------------------------
    def _attach(self, doc: Doc) -> None:
        """Find the Dockerfile's context (registering one if none names it),
        answer, and follow the context's changes."""
        context, notes = find_context(self.client, doc.path, self.state_dir)
        for note in notes:
            self.post(self.note, note)
        doc.context = context
        self._refresh(doc, None)
        if context.name not in self.watches:
            watch = self.client.open_watch(pb.ContextRef(name=context.name))
            self.watches[context.name] = watch
            threading.Thread(
                target=self._follow,
                args=(context.name, watch, self.connection),
                name=f"watch-{context.name}",
                daemon=True,
            ).start()

    def _follow(self, name: str, watch: Watch, connection: int) -> None:
        """The context's reports as the daemon pushes them (files changed),
        until the stream ends: closed here, or the daemon went away."""
        try:
            for report in watch:
                for doc in [d for d in self.docs.values() if d.context is not None and d.context.name == name]:
                    self.submit(self._refresh, doc, report)
        except CtxwatchError as e:
            if e.code not in LOST_DAEMON_CODES and self.watches.get(name) is watch:
                self.watches.pop(name, None)
                self.post(self.note, f"stopped following {name}: {e}")
                return
        if self.watches.get(name) is watch:  # not closed here: the daemon stopped or restarted
            self.watches.pop(name, None)
            self.submit(self._reconnect, connection)

    def _reconnect(self, lost: int) -> None:
        """After losing the daemon: wait for it to serve again (or start one),
        then find every open Dockerfile's context, answer and follow it again."""
        if lost != self.connection or self._client is None:
            return  # another stream's loss already brought this about
        self.connection += 1
        socket_path = self._client.socket_path
        self.post(self.note, f"lost ctxwatchd on {socket_path}; reconnecting")
        for watch in list(self.watches.values()):
            watch.cancel()
        self.watches.clear()
        self._client.close()
        self._client = None
        if not spawn.wait_until_serving_again(socket_path, RESTART_WAIT_S):
            self.post(self.note, f"ctxwatchd on {socket_path} did not serve again within {RESTART_WAIT_S:g} s")
        # self.client connects again, and starts a daemon as the CLI does if none serves.
        self.post(self.note, f"reconnected to ctxwatchd (pid {self.client.daemon_status().pid})")
        for doc in [d for d in self.docs.values() if d.dockerfile]:
            doc.context = None
            self._attach(doc)

    def _refresh(self, doc: Doc, pushed: pb.Report | None) -> None:
        """Answer for the buffer: the pushed report when the buffer is what is
        saved, else a query with the unsaved text."""
        if doc.uri not in self.docs or doc.context is None:
            return  # closed meanwhile
        ref = pb.ContextRef(name=doc.context.name)
        text = self.text_of(doc)
        if _saved_text(doc.path) == text:
            report = pushed or self.client.reports([ref])[0]
        else:
            report = self.client.reports([ref], pb.BuildOptions(dockerfile_content=text))[0]
        self.post(self._show, doc, report)

    def _find_readers(self, doc: Doc) -> None:
        found = self.client.find_readers(doc.path)
        self.post(self._show_readers, doc, list(found.readers), list(found.unknown))

    # -- on the event loop ------------------------------------------------------------------
    def _show(self, doc: Doc, report: pb.Report) -> None:
        if doc.uri not in self.docs:
            return
        doc.report = report
        lines = self.workspace.get_text_document(doc.uri).lines
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=doc.uri, diagnostics=self.diagnostics(report, lines))
        )
        self._ask_for_refresh()

    def _show_readers(self, doc: Doc, readers: list[pb.Reader], unknown: list[str]) -> None:
        if doc.uri not in self.docs:
            return
        doc.readers = readers
        for reader in readers:
            self.note(f"{os.path.basename(doc.path)}: {present.reader_title(reader)}")
        for problem in unknown:
            self.note(f"{os.path.basename(doc.path)}: unknown for {problem}")
        self._ask_for_refresh()

    def _ask_for_refresh(self) -> None:
        """Hints and lenses are pulled by the editor: tell it they changed."""
        workspace = self.client_capabilities.workspace
        if self.settings.inlay_hints and workspace and workspace.inlay_hint and workspace.inlay_hint.refresh_support:
            self.workspace_inlay_hint_refresh(None)
        if workspace and workspace.code_lens and workspace.code_lens.refresh_support:
            self.workspace_code_lens_refresh(None)

    def diagnostics(self, report: pb.Report, lines: Sequence[str]) -> list[types.Diagnostic]:
        """Errors only where BuildKit would fail; steps that re-run or are unknown as hints."""
        found = []
        if report.error:
            where = report.error_range if report.error_range.start_line else _line_range(report.error_line or 1)
            found.append(self._diagnostic(where, lines, report.error, types.DiagnosticSeverity.Error))
        steps = list(report.steps)
        for step in steps:
            if step.status == pb.STEP_STATUS_ERROR:
                found.append(self._diagnostic(step.range, lines, step.error, types.DiagnosticSeverity.Error))
            elif step.status != pb.STEP_STATUS_CACHED:
                text = present.label(step, steps)
                found.append(self._diagnostic(step.range, lines, text, types.DiagnosticSeverity.Hint))
        return found

    def _diagnostic(
        self, where: pb.Range, lines: Sequence[str], message: str, severity: types.DiagnosticSeverity
    ) -> types.Diagnostic:
        return types.Diagnostic(range=self.lsp_range(where, lines), message=message, severity=severity, source=SOURCE)

    def lsp_range(self, where: pb.Range, lines: Sequence[str]) -> types.Range:
        return types.Range(
            start=self.lsp_position(where.start_line, where.start_column, lines),
            end=self.lsp_position(where.end_line, where.end_column, lines),
        )

    def lsp_position(self, line: int, column: int, lines: Sequence[str]) -> types.Position:
        """A daemon position (1-based line, column in characters) in the encoding the editor chose."""
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        prefix = text[:column]
        encoding = self.workspace.position_encoding
        if encoding == types.PositionEncodingKind.Utf16:
            column = len(prefix.encode("utf-16-le", "surrogatepass")) // 2
        elif encoding == types.PositionEncodingKind.Utf8:
            column = len(prefix.encode("utf-8", "surrogatepass"))
        return types.Position(line=max(line - 1, 0), character=column)

    # -- what the editor asks for --------------------------------------------------------------
    def inlay_hints(self, uri: str) -> list[types.InlayHint]:
        doc = self.docs.get(uri)
        if not self.settings.inlay_hints or doc is None or doc.report is None:
            return []
        lines = self.workspace.get_text_document(uri).lines
        steps = list(doc.report.steps)
        hints = []
        for step in steps:
            first = lines[step.range.start_line - 1].rstrip("\r\n") if 0 < step.range.start_line <= len(lines) else ""
            hints.append(
                types.InlayHint(
                    position=self.lsp_position(step.range.start_line, len(first), lines),
                    label=present.label(step, steps),
                    padding_left=True,
                    tooltip=types.MarkupContent(types.MarkupKind.Markdown, present.hover(step, steps, doc.report)),
                )
            )
        return hints

    def code_lenses(self, uri: str) -> list[types.CodeLens]:
        doc = self.docs.get(uri)
        if doc is None:
            return []
        top = types.Range(start=types.Position(0, 0), end=types.Position(0, 0))
        if not doc.dockerfile:
            return [
                types.CodeLens(
                    range=top,
                    command=types.Command(
                        title=present.reader_title(r),
                        command=CMD_SHOW_STEP,
                        arguments=[r.context.dockerfile, r.step.range.start_line],
                    ),
                )
                for r in doc.readers
            ]
        if doc.report is None or not self.settings.code_lens:
            return []
        lines = self.workspace.get_text_document(uri).lines
        steps = list(doc.report.steps)
        return [
            types.CodeLens(
                range=self.lsp_range(step.range, lines),
                command=types.Command(
                    title=present.label(step, steps), command=CMD_SHOW_STEP, arguments=[doc.path, step.range.start_line]
                ),
            )
            for step in steps
        ]

    def hover(self, uri: str, position: types.Position) -> types.Hover | None:
        doc = self.docs.get(uri)
        if doc is None or doc.report is None:
            return None
        lines = self.workspace.get_text_document(uri).lines
        steps = list(doc.report.steps)
        for step in steps:
            where = self.lsp_range(step.range, lines)
            if (
                (where.start.line, where.start.character)
                <= (position.line, position.character)
                <= (
                    where.end.line,
                    where.end.character,
                )
            ):
                text = present.hover(step, steps, doc.report)
                return types.Hover(contents=types.MarkupContent(types.MarkupKind.Markdown, text), range=where)
        return None

    def code_actions(self, uri: str) -> list[types.CodeAction]:
        doc = self.docs.get(uri)
        if doc is None or not doc.dockerfile or doc.context is None:
            return []
        context = doc.context
        argv = build_command(context)
        build = (
            types.Command(
                title="Build with ctxwatch",
                command=self.settings.terminal_command,
                arguments=[{"cwd": context.path, "argv": argv}],
            )
            if self.settings.terminal_command
            else types.Command(title="Build with ctxwatch", command=CMD_BUILD, arguments=[context.name])
        )
        return [
            types.CodeAction(
                title="Record this build",
                kind=types.CodeActionKind.Source,
                command=types.Command(title="Record this build", command=CMD_MARK_BUILT, arguments=[context.name]),
            ),
            types.CodeAction(
                title=f"Build with ctxwatch: {shlex.join(argv)}", kind=types.CodeActionKind.Source, command=build
            ),
        ]

    # -- commands ------------------------------------------------------------------------------
    def mark_built(self, name: str) -> None:
        def record() -> None:
            response = self.client.mark_built(pb.ContextRef(name=name))
            message = f"recorded build {response.build_id} of {name}: {response.steps_recorded} steps"
            if response.failed:
                message += f" (the build fails: {response.failed})"
            self.post(self.tell, types.MessageType.Info, message)
            for doc in [d for d in self.docs.values() if d.context is not None and d.context.name == name]:
                self._refresh(doc, response.report)

        self.submit(record)

    def build(self, name: str) -> None:
        """Run the build here (an editor with no terminal command), its output to the log."""
        context = next(
            (d.context for d in self.docs.values() if d.context is not None and d.context.name == name), None
        )
        if context is None:
            return

        def run() -> None:
            argv = build_command(context)
            self.post(self.note, f"$ {shlex.join(argv)}")
            done = subprocess.run(argv, cwd=context.path, capture_output=True, text=True, check=False)
            self.post(self.note, (done.stdout + done.stderr).strip())
            kind = types.MessageType.Info if done.returncode == 0 else types.MessageType.Error
            self.post(self.tell, kind, f"{shlex.join(argv)} exited with {done.returncode}")

        self.submit(run)

    def show_step(self, path: str, line: int) -> None:
        position = types.Position(line=max(line - 1, 0), character=0)
        self.window_show_document(
            types.ShowDocumentParams(
                uri=from_fs_path(path), take_focus=True, selection=types.Range(start=position, end=position)
            )
        )


def _saved_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
            return f.read()
    except OSError:
        return None


def _line_range(line: int) -> pb.Range:
    return pb.Range(start_line=line, start_column=0, end_line=line, end_column=0)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ctxwatch")
    except Exception:
        return "0"


def make_server(connect: Callable[[], CtxwatchClient], state_dir: str | None = None) -> CtxwatchLanguageServer:
    """The server with its handlers; `connect` gives the daemon client (on first use, and again after
    losing the daemon); `state_dir` is the CLI's --state-dir."""
    server = CtxwatchLanguageServer(connect, state_dir)

    @server.feature(types.INITIALIZE)
    def initialize(ls: CtxwatchLanguageServer, params: types.InitializeParams) -> None:
        ls.loop = asyncio.get_running_loop()
        options = params.initialization_options if isinstance(params.initialization_options, dict) else {}
        ls.settings = Settings(
            inlay_hints=bool(options.get("inlayHints", True)),
            code_lens=bool(options.get("codeLens", True)),
            terminal_command=str(options.get("terminalCommand", "")),
        )

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CtxwatchLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.opened(params.text_document.uri, params.text_document.language_id)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CtxwatchLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: CtxwatchLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.saved(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CtxwatchLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.closed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT)
    def inlay_hint(ls: CtxwatchLanguageServer, params: types.InlayHintParams) -> list[types.InlayHint]:
        return ls.inlay_hints(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
    def code_lens(ls: CtxwatchLanguageServer, params: types.CodeLensParams) -> list[types.CodeLens]:
        return ls.code_lenses(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: CtxwatchLanguageServer, params: types.HoverParams) -> types.Hover | None:
        return ls.hover(params.text_document.uri, params.position)

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.Source])
    )
    def code_action(ls: CtxwatchLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        return ls.code_actions(params.text_document.uri)

    @server.command(CMD_MARK_BUILT)
    def mark_built(ls: CtxwatchLanguageServer, name: str) -> None:
        ls.mark_built(name)

    @server.command(CMD_BUILD)
    def build(ls: CtxwatchLanguageServer, name: str) -> None:
        ls.build(name)

    @server.command(CMD_SHOW_STEP)
    def show_step(ls: CtxwatchLanguageServer, path: str, line: int) -> None:
        ls.show_step(path, line)

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: CtxwatchLanguageServer, params: None) -> None:
        ls.close()

    return server
