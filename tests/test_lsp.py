"""`ctxwatch lsp` driven by a real LSP client (pytest-lsp, over stdio) against
the real daemon: hints on open, pushed updates when a copied file changes,
predictions for unsaved text, hover, code actions, error diagnostics with
their exact ranges, and the steps that read a non-Dockerfile file."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Union

import pytest
import pytest_asyncio
from cattrs import Converter
from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features
from support.daemon import start_daemon

CTXWATCH = str(Path(sys.executable).parent / "ctxwatch")
WAIT_S = 60  # a bound on waiting for the server, not a measure of speed

DOCKERFILE = """\
FROM scratch
COPY app.py /app/
ARG NODE_ENV=production
RUN echo $NODE_ENV \\
    && echo done
"""


class Editor:
    """A test client plus what it was told: refresh requests count as pushes."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.refreshes = 0
        self.changed = asyncio.Event()

    def saw_something(self) -> None:
        self.refreshes += 1
        self.changed.set()

    async def until(self, what: Callable[[], object], describe: str) -> object:
        """Wait for pushes from the server until `what()` is truthy; the test makes no request meanwhile."""

        async def loop() -> object:
            while not (found := what()):
                self.changed.clear()
                await self.changed.wait()
            return found

        try:
            return await asyncio.wait_for(loop(), WAIT_S)
        except TimeoutError:
            pytest.fail(f"the server never sent {describe}; diagnostics: {self.client.diagnostics}")

    def diagnostics(self, path: Path) -> list[types.Diagnostic]:
        return list(self.client.diagnostics.get(path.as_uri(), []))

    def open(self, path: Path, language_id: str = "dockerfile") -> None:
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=path.as_uri(), language_id=language_id, version=1, text=path.read_text())
            )
        )

    async def hints(self, path: Path) -> list[tuple[int, str]]:
        doc = types.TextDocumentIdentifier(path.as_uri())
        whole = types.Range(types.Position(0, 0), types.Position(1000, 0))
        found = await self.client.text_document_inlay_hint_async(types.InlayHintParams(doc, whole))
        return [(h.position.line, h.label) for h in found or []]

    async def lenses(self, path: Path) -> list[tuple[int, str]]:
        doc = types.TextDocumentIdentifier(path.as_uri())
        found = await self.client.text_document_code_lens_async(types.CodeLensParams(doc))
        return [(lens.range.start.line, lens.command.title) for lens in found or []]


def _converter() -> Converter:
    """pygls's converter, except that a CodeAction carrying a command is read
    as a CodeAction (lsprotocol's hook takes anything with a "command" key
    for a Command, whose command is a string)."""
    converter = default_converter()

    def command_or_action(obj: dict, _: object) -> types.Command | types.CodeAction:
        kind = types.Command if isinstance(obj.get("command"), str) else types.CodeAction
        return converter.structure(obj, kind)

    converter.register_structure_hook(types.Command | types.CodeAction, command_or_action)
    converter.register_structure_hook(Union[types.Command, types.CodeAction], command_or_action)  # noqa: UP007
    return converter


@pytest_asyncio.fixture
async def editor(shared_daemon) -> AsyncIterator[Editor]:
    async with _editor_on(shared_daemon) as editor:
        yield editor


@pytest_asyncio.fixture
async def own_editor(daemon) -> AsyncIterator[Editor]:
    """An editor on a daemon of the test's own (to stop and start)."""
    async with _editor_on(daemon) as editor:
        yield editor


@contextlib.asynccontextmanager
async def _editor_on(daemon) -> AsyncIterator[Editor]:
    client = LanguageClient(converter_factory=_converter)
    # pytest-lsp's handlers, but diagnostics are also counted as pushes (below).
    register_lsp_features(
        client, {k: v for k, v in DEFAULT_CLIENT_FEATURES.items() if k != types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS}
    )
    editor = Editor(client)

    @client.feature(types.WORKSPACE_INLAY_HINT_REFRESH)
    def inlay_refresh(ls: LanguageClient, params: None) -> None:
        editor.saw_something()

    @client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def lens_refresh(ls: LanguageClient, params: None) -> None:
        editor.saw_something()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def diagnostics(ls: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        ls.diagnostics[params.uri] = params.diagnostics
        editor.saw_something()

    await client.start_io(CTXWATCH, "lsp", env=daemon.env())
    await client.initialize_session(
        types.InitializeParams(capabilities=client_capabilities("visual-studio-code"), process_id=None)
    )
    yield editor
    await client.shutdown_session()
    await client.stop()


def hint_messages(diagnostics: list[types.Diagnostic]) -> list[tuple[int, str]]:
    return [(d.range.start.line, d.message) for d in diagnostics if d.severity == types.DiagnosticSeverity.Hint]


@pytest.mark.asyncio
async def test_open_record_edit_on_disk_edit_unsaved_and_hover(editor: Editor, tmp_path: Path):
    ctx = tmp_path / "lspweb"
    ctx.mkdir()
    (ctx / "app.py").write_text("print('v1')\n")
    dockerfile = ctx / "Dockerfile"
    dockerfile.write_text(DOCKERFILE)

    # Opened: no context names it, so its folder is registered, and the log says so.
    editor.open(dockerfile)
    await editor.until(lambda: editor.diagnostics(dockerfile), "diagnostics for the opened Dockerfile")
    assert hint_messages(editor.diagnostics(dockerfile)) == [
        (1, "re-runs: never built"),
        (3, "re-runs: never built"),
    ]
    assert any("registered" in m.message and str(ctx) in m.message for m in editor.client.log_messages)

    # "Record this build" is a code action running MarkBuilt.
    doc = types.TextDocumentIdentifier(dockerfile.as_uri())
    actions = await editor.client.text_document_code_action_async(
        types.CodeActionParams(
            doc, types.Range(types.Position(0, 0), types.Position(0, 0)), types.CodeActionContext([])
        )
    )
    titles = [a.title for a in actions]
    assert titles[0] == "Record this build"
    assert titles[1].startswith("Build with ctxwatch: ") and "docker build -f" in titles[1]
    record = actions[0].command
    await editor.client.workspace_execute_command_async(types.ExecuteCommandParams(record.command, record.arguments))
    await editor.until(lambda: not editor.diagnostics(dockerfile), "the all-cached answer after recording")
    assert await editor.hints(dockerfile) == [(1, "cached"), (3, "cached")]
    assert await editor.lenses(dockerfile) == [(1, "cached"), (3, "cached")]

    # A copied file changes on disk: new hints arrive without a request.
    (ctx / "app.py").write_text("print('v2')\n")
    await editor.until(
        lambda: (1, "re-runs: app.py changed (content)") in hint_messages(editor.diagnostics(dockerfile)),
        "a hint for the changed file",
    )
    assert hint_messages(editor.diagnostics(dockerfile)) == [
        (1, "re-runs: app.py changed (content)"),
        (3, "re-runs: [1/2] on line 2 re-runs"),
    ]
    assert await editor.hints(dockerfile) == [
        (1, "re-runs: app.py changed (content)"),
        (3, "re-runs: [1/2] on line 2 re-runs"),
    ]

    # Hover: the full explanation over the whole instruction.
    hover = await editor.client.text_document_hover_async(types.HoverParams(doc, types.Position(1, 3)))
    assert "`app.py`: content" in hover.contents.value
    assert (hover.range.start.line, hover.range.end.line, hover.range.end.character) == (1, 1, 17)
    on_second_line = await editor.client.text_document_hover_async(types.HoverParams(doc, types.Position(4, 6)))
    assert "Depends on [1/2] COPY app.py /app/ (line 2)" in on_second_line.contents.value

    # Changed back: BuildKit still has it, so cached again.
    (ctx / "app.py").write_text("print('v1')\n")
    await editor.until(lambda: not editor.diagnostics(dockerfile), "the cached answer for the restored file")

    # The buffer changes (not saved): the prediction is for the unsaved text.
    unsaved = DOCKERFILE.replace("NODE_ENV=production", "NODE_ENV=development")
    editor.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=dockerfile.as_uri(), version=2),
            [types.TextDocumentContentChangeWholeDocument(text=unsaved)],
        )
    )
    await editor.until(lambda: editor.diagnostics(dockerfile), "a prediction for the unsaved text")
    assert hint_messages(editor.diagnostics(dockerfile)) == [(3, "re-runs: NODE_ENV production -> development")]
    assert dockerfile.read_text() == DOCKERFILE  # nothing was saved


@pytest.mark.asyncio
async def test_broken_dockerfiles_get_error_diagnostics_with_exact_ranges(editor: Editor, tmp_path: Path):
    ctx = tmp_path / "lspbroken"
    ctx.mkdir()
    missing = ctx / "Dockerfile"
    missing.write_text("FROM scratch\n  COPY missing.txt \\\n    /x/\n")
    editor.open(missing)
    await editor.until(lambda: editor.diagnostics(missing), "diagnostics for a missing source")
    [error] = editor.diagnostics(missing)
    assert error.severity == types.DiagnosticSeverity.Error
    assert '"/missing.txt": not found' in error.message
    assert (error.range.start.line, error.range.start.character) == (1, 2)
    assert (error.range.end.line, error.range.end.character) == (2, 7)

    unparsable = ctx / "web.Dockerfile"
    unparsable.write_text("FROM scratch\nRUN <<EOF\necho never ends\n")
    editor.open(unparsable, language_id="plaintext")  # known by its name
    await editor.until(lambda: editor.diagnostics(unparsable), "diagnostics for a parse error")
    [error] = editor.diagnostics(unparsable)
    assert error.severity == types.DiagnosticSeverity.Error
    assert "unterminated heredoc" in error.message
    assert (error.range.start.line, error.range.start.character, error.range.end.character) == (1, 0, 9)


@pytest.mark.asyncio
async def test_a_copied_file_shows_the_steps_that_read_it(editor: Editor, shared_daemon, tmp_path: Path):
    ctx = tmp_path / "lspreaders"
    (ctx / "src").mkdir(parents=True)
    (ctx / "src" / "app.py").write_text("x = 1\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY src/ /app/src/\nRUN true\n")
    shared_daemon.client.register(str(ctx), name="lsp-readers")
    source = ctx / "src" / "app.py"
    before = editor.refreshes
    editor.open(source, language_id="python")
    await editor.until(lambda: editor.refreshes > before, "a code lens refresh for the opened file")
    title = "editing re-runs lsp-readers: COPY src/ /app/src/ (line 2) and 1 step after it"
    assert await editor.lenses(source) == [(0, title)]
    # The lens opens the Dockerfile at the step.
    doc = types.TextDocumentIdentifier(source.as_uri())
    [lens] = await editor.client.text_document_code_lens_async(types.CodeLensParams(doc))
    await editor.client.workspace_execute_command_async(
        types.ExecuteCommandParams(lens.command.command, lens.command.arguments)
    )
    await editor.until(lambda: editor.client.shown_documents, "a request to show the Dockerfile")
    [shown] = editor.client.shown_documents
    assert (shown.uri, shown.selection.start.line) == ((ctx / "Dockerfile").as_uri(), 1)


def _log_says(editor: Editor, *words: str) -> bool:
    return any(all(w in m.message for w in words) for m in editor.client.log_messages)


@pytest.mark.asyncio
async def test_a_dockerfile_a_compose_file_builds_gets_that_context(editor: Editor, shared_daemon, tmp_path: Path):
    repo = tmp_path / "shoprepo"
    (repo / ".git").mkdir(parents=True)
    web = repo / "services" / "web"
    web.mkdir(parents=True)
    (web / "index.js").write_text("x\n")
    (web / "Dockerfile").write_text("FROM scratch\nARG MODE\nCOPY index.js /srv/\n")
    (repo / "compose.yaml").write_text(
        "name: lspshop\nservices:\n  web:\n    build:\n      context: services/web\n      args:\n        MODE: prod\n"
        "  db:\n    image: postgres\n"
    )
    dockerfile = web / "Dockerfile"
    editor.open(dockerfile)
    await editor.until(lambda: editor.diagnostics(dockerfile), "diagnostics for the opened Dockerfile")
    # Registered as `ctxwatch add --compose` registers it: the compose file's name, args and labels.
    [context] = [c for c in shared_daemon.client.list() if c.dockerfile == str(dockerfile)]
    assert (context.name, context.path, dict(context.build_args)) == ("lspshop-web", str(web), {"MODE": "prod"})
    assert (context.labels["ctxwatch.source"], context.labels["ctxwatch.member"]) == ("compose", "web")
    await editor.until(lambda: _log_says(editor, "compose lspshop: registered 'lspshop-web' for web"), "the log line")
    assert _log_says(editor, str(dockerfile), "compose file", "answering for context 'lspshop-web'")
    assert hint_messages(editor.diagnostics(dockerfile)) == [(2, "re-runs: never built")]


@pytest.mark.asyncio
async def test_a_dockerfile_a_bake_file_beside_it_builds_gets_that_context(
    editor: Editor, shared_daemon, tmp_path: Path
):
    folder = tmp_path / "lspbake"  # no repository: only the Dockerfile's own folder is looked in
    folder.mkdir()
    (folder / "api.Dockerfile").write_text("FROM scratch\nCOPY main.go /src/\n")
    (folder / "main.go").write_text("package main\n")
    (folder / "docker-bake.hcl").write_text(
        'group "default" {\n  targets = ["api"]\n}\ntarget "api" {\n  dockerfile = "api.Dockerfile"\n  target = ""\n}\n'
    )
    dockerfile = folder / "api.Dockerfile"
    editor.open(dockerfile, language_id="plaintext")
    await editor.until(lambda: editor.diagnostics(dockerfile), "diagnostics for the opened Dockerfile")
    [context] = [c for c in shared_daemon.client.list() if c.dockerfile == str(dockerfile)]
    assert (context.name, context.labels["ctxwatch.source"]) == ("lspbake-api", "bake")


@pytest.mark.asyncio
async def test_hints_follow_the_daemon_across_a_restart(own_editor: Editor, daemon, tmp_path: Path):
    editor = own_editor
    ctx = tmp_path / "lsprestart"
    ctx.mkdir()
    (ctx / "app.py").write_text("print('v1')\n")
    dockerfile = ctx / "Dockerfile"
    dockerfile.write_text(DOCKERFILE)
    editor.open(dockerfile)
    await editor.until(lambda: editor.diagnostics(dockerfile), "diagnostics for the opened Dockerfile")
    [context] = [c for c in daemon.client.list() if c.dockerfile == str(dockerfile)]
    daemon.client.mark_built(context.name)
    (ctx / "app.py").write_text("print('v2')\n")
    await editor.until(
        lambda: (1, "re-runs: app.py changed (content)") in hint_messages(editor.diagnostics(dockerfile)),
        "a hint for the changed file",
    )

    # The daemon restarts: the same socket and state, another process.
    folder = daemon.socket.parent.parent
    old_pid = daemon.process.pid
    assert daemon.stop() == 0
    restarted = start_daemon(folder)
    try:
        assert restarted.process.pid != old_pid
        await editor.until(
            lambda: _log_says(editor, "reconnected to ctxwatchd", str(restarted.process.pid)), "reconnect"
        )
        # A file changes after the restart: the hints follow, pushed on the new stream.
        (ctx / "app.py").write_text("print('v1')\n")
        await editor.until(lambda: not editor.diagnostics(dockerfile), "the cached answer after the restart")
        (ctx / "app.py").write_text("print('v3')\n")
        await editor.until(
            lambda: (1, "re-runs: app.py changed (content)") in hint_messages(editor.diagnostics(dockerfile)),
            "a hint for a file changed after the restart",
        )
        assert await editor.hints(dockerfile) == [
            (1, "re-runs: app.py changed (content)"),
            (3, "re-runs: [1/2] on line 2 re-runs"),
        ]
    finally:
        restarted.stop()
