#!/usr/bin/env bash
# Regenerates the Python gRPC stubs in taskhive/v1/ from ../../proto with the pinned
# grpcio-tools (installed into ./.venv when missing). Deterministic: running it twice
# leaves the tree unchanged.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
proto="$(cd "$here/../../proto" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

pin() { sed -n "s/^$1==\([^ ]*\).*/\1/p" "$here/requirements-dev.txt"; }
tools_version="$(pin grpcio-tools)"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))' 2>/dev/null)" != "$tools_version" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check -c "$here/requirements-dev.txt" \
    "grpcio-tools==$tools_version" grpcio protobuf
fi

# Generate into a scratch directory, then copy, so a failed run never leaves half a package.
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
(cd "$proto" && "$venv/bin/python" -m grpc_tools.protoc -I . \
  --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" \
  taskhive/v1/*.proto)
for f in "$out"/taskhive/v1/*_pb2*.py*; do
  cp "$f" "$here/taskhive/v1/$(basename "$f")"
done
echo "generated taskhive/v1/*_pb2*.py* (grpcio-tools $tools_version)"
