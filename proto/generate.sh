#!/usr/bin/env bash
# Regenerates the committed Python stubs in client/ctxwatch/v1/ from proto/.
# Usage: bash proto/generate.sh [OUTPUT_ROOT]   (default: client)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-client}"
python -m grpc_tools.protoc -Iproto \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  proto/ctxwatch/v1/ctxwatch.proto
