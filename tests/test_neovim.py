"""A real editor: headless Neovim with the setup documented in
editors/neovim/README.md opens a Dockerfile; the test reads the diagnostics
and code lenses Neovim received from `ctxwatch lsp` (real daemon).
Skipped where Neovim is not installed (.ci/run installs Debian's)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NVIM = shutil.which("nvim")
WAIT_MS = 60_000  # a bound on waiting for the editor, not a measure of speed

pytestmark = pytest.mark.skipif(NVIM is None, reason="Neovim is not installed")

# After the documented setup: wait until the server's answer arrived (diagnostics
# pushed, code lenses fetched), write what the buffer holds as JSON, quit.
REPORTER = """
local out, want_lenses = os.getenv("CTXWATCH_TEST_OUT"), tonumber(os.getenv("CTXWATCH_TEST_LENSES"))
local deadline = vim.loop.now() + tonumber(os.getenv("CTXWATCH_TEST_WAIT_MS"))
local timer = vim.loop.new_timer()
timer:start(200, 200, vim.schedule_wrap(function()
  local bufnr = vim.fn.bufnr(os.getenv("CTXWATCH_TEST_FILE"))
  local diagnostics = vim.diagnostic.get(bufnr)
  local lenses = vim.lsp.codelens.get(bufnr)
  if (#diagnostics > 0 and #lenses >= want_lenses) or vim.loop.now() > deadline then
    timer:stop()
    local found = { diagnostics = {}, lenses = {} }
    for _, d in ipairs(diagnostics) do
      table.insert(found.diagnostics, { d.lnum, d.col, d.end_lnum, d.end_col, d.severity, d.message })
    end
    for _, lens in ipairs(lenses) do
      table.insert(found.lenses, { lens.range.start.line, lens.command and lens.command.title or "" })
    end
    local file = io.open(out, "w")
    file:write(vim.fn.json_encode(found))
    file:close()
    vim.cmd("qa!")
  end
end))
"""


def documented_setup() -> str:
    readme = (ROOT / "editors" / "neovim" / "README.md").read_text()
    found = re.search(r"<!-- init\.lua -->\n```lua\n(.*?)\n```", readme, re.S)
    assert found, "editors/neovim/README.md lost its init.lua block"
    return found[1]


def test_neovim_shows_hints_and_errors_from_the_language_server(shared_daemon, tmp_path):
    ctx = tmp_path / "nvimweb"
    ctx.mkdir()
    (ctx / "app.py").write_text("print(1)\n")
    dockerfile = ctx / "Dockerfile"
    dockerfile.write_text("FROM scratch\nCOPY app.py /app/\nCOPY missing.txt \\\n  /x/\n")
    init = tmp_path / "init.lua"
    init.write_text(documented_setup() + "\n" + REPORTER)
    out = tmp_path / "seen.json"
    env = {
        **shared_daemon.env(),
        "CTXWATCH_REPO": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}:{shared_daemon.env()['PATH']}",  # ctxwatch of this checkout
        "CTXWATCH_TEST_OUT": str(out),
        "CTXWATCH_TEST_FILE": str(dockerfile),
        "CTXWATCH_TEST_LENSES": "2",
        "CTXWATCH_TEST_WAIT_MS": str(WAIT_MS),
        "XDG_STATE_HOME": str(tmp_path / "nvim-state"),  # Neovim's LSP log stays in the test's folder
    }
    subprocess.run(
        [NVIM, "--headless", "-u", str(init), str(dockerfile)],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=WAIT_MS / 1000 + 30,
        check=False,
    )
    assert out.exists(), "Neovim quit without writing what it saw"
    seen = json.loads(out.read_text())
    error, hint = vim_severity("Error"), vim_severity("Hint")
    assert sorted(seen["diagnostics"]) == [
        [1, 0, 1, 17, hint, "re-runs: never built"],
        [2, 0, 3, 5, error, '"/missing.txt": not found'],
    ]
    assert sorted(seen["lenses"]) == [[1, "re-runs: never built"], [2, 'error: "/missing.txt": not found']]


def vim_severity(name: str) -> int:
    return {"Error": 1, "Warning": 2, "Info": 3, "Hint": 4}[name]
