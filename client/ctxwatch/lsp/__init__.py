"""`ctxwatch lsp`: a language server that shows each Dockerfile step's fate as you type."""
