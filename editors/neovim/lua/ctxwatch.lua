-- ctxwatch for Neovim's built-in LSP client (Neovim 0.7 or newer): runs
-- `ctxwatch lsp` for Dockerfiles (and, if asked, other files: which steps read them).
local M = {}

local defaults = {
  cmd = { "ctxwatch", "lsp" },
  -- Add other filetypes (e.g. "python") to see which Dockerfile steps read those files.
  filetypes = { "dockerfile" },
  -- Neovim shows code lenses (0.7 has no inlay hints): refreshed on these events.
  codelens_events = { "BufEnter", "InsertLeave", "BufWritePost", "CursorHold" },
}

local client_id = nil

local function on_attach(_, bufnr)
  vim.lsp.codelens.refresh()
  vim.api.nvim_create_autocmd(M.options.codelens_events, {
    buffer = bufnr,
    callback = function()
      vim.lsp.codelens.refresh()
    end,
  })
end

-- The server pushes diagnostics whenever its answer changes (a file changed,
-- the buffer was edited): fetch the lenses again then. (Neovim before 0.10
-- does not take the server's workspace/codeLens/refresh request.)
local function refresh_on_push()
  vim.api.nvim_create_autocmd("DiagnosticChanged", {
    group = vim.api.nvim_create_augroup("ctxwatch-lenses", { clear = true }),
    callback = function()
      for _, client in pairs(vim.lsp.buf_get_clients(0)) do
        if client.name == "ctxwatch" then
          vim.lsp.codelens.refresh()
          return
        end
      end
    end,
  })
end

local function attach(bufnr)
  local config = {
    name = "ctxwatch",
    cmd = M.options.cmd,
    root_dir = vim.fn.fnamemodify(vim.api.nvim_buf_get_name(bufnr), ":p:h"),
    init_options = { inlayHints = vim.lsp.inlay_hint ~= nil, codeLens = true },
    on_attach = on_attach,
  }
  if vim.lsp.start then -- 0.8 and newer: one client, reused
    vim.lsp.start(config, { bufnr = bufnr })
    return
  end
  if client_id == nil or vim.lsp.get_client_by_id(client_id) == nil then
    client_id = vim.lsp.start_client(config)
  end
  vim.lsp.buf_attach_client(bufnr, client_id)
end

function M.setup(options)
  M.options = vim.tbl_deep_extend("force", defaults, options or {})
  refresh_on_push()
  local group = vim.api.nvim_create_augroup("ctxwatch", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = M.options.filetypes,
    callback = function(args)
      attach(args.buf)
    end,
  })
end

return M
