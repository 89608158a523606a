#!/usr/bin/env bash
# Regenerates the committed Python stubs in proto/ctxwatch_api/v1/ from proto/ctxwatch/v1/.
# Usage: bash proto/generate.sh [OUTPUT_ROOT]   (default: proto/ctxwatch_api; stubs land in OUTPUT_ROOT/v1)
#
# protoc names the Python module after the .proto file's path (ctxwatch.v1), while the
# stubs live in the shared package ctxwatch_api (imported by the daemon and the client
# alike), so the one import protoc writes between the stubs is rewritten to match.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-proto/ctxwatch_api}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
python -m grpc_tools.protoc -Iproto \
  --python_out="$scratch" --pyi_out="$scratch" --grpc_python_out="$scratch" \
  proto/ctxwatch/v1/ctxwatch.proto
sed -i 's/^from ctxwatch\.v1 import /from ctxwatch_api.v1 import /' "$scratch/ctxwatch/v1/ctxwatch_pb2_grpc.py"
mkdir -p "$out/v1"
cp "$scratch"/ctxwatch/v1/ctxwatch_pb2.py "$scratch"/ctxwatch/v1/ctxwatch_pb2.pyi "$scratch"/ctxwatch/v1/ctxwatch_pb2_grpc.py "$out/v1/"
