#!/usr/bin/env bash
# Builds the VS Code extension and packages it as editors/vscode/ctxwatch.vsix.
# Needs node and npm (the npm registry for the pinned packages in package-lock.json).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npm run --silent compile
npm run --silent package
echo "built $(pwd)/ctxwatch.vsix"
