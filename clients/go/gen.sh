#!/usr/bin/env bash
# Regenerates the Go stubs in taskhivepb/ from ../../proto/taskhive/v1/*.proto.
#
# Every generator is pinned, so the output (headers included) is byte-identical run after run:
#   - protoc: from grpcio-tools (PyPI), installed into ./.venv when missing;
#   - protoc-gen-go and protoc-gen-go-grpc: `go install`ed into ./.bin when missing.
# Bump a pin here, run ./gen.sh, and commit the regenerated files (and go.mod if the protobuf
# runtime must follow protoc-gen-go: the generated code needs a runtime at least as new).
set -euo pipefail

GRPCIO_TOOLS_VERSION=1.85.1          # bundles libprotoc 35.1
PROTOC_GEN_GO_VERSION=v1.36.12       # google.golang.org/protobuf
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2    # google.golang.org/grpc/cmd/protoc-gen-go-grpc

here="$(cd "$(dirname "$0")" && pwd)"
proto="$(cd "$here/../../proto" && pwd)"
bin="$here/.bin"
venv="$here/.venv"
python="${PYTHON:-python3}"
module="github.com/taskhive/taskhive/clients/go"

# Prints the version line a plugin reports, e.g. "protoc-gen-go v1.36.12".
plugin_version() { [ -x "$bin/$1" ] && "$bin/$1" --version 2>/dev/null | awk '{print $NF}' || true; }

if [ "$(plugin_version protoc-gen-go)" != "$PROTOC_GEN_GO_VERSION" ]; then
  GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi
if [ "$(plugin_version protoc-gen-go-grpc)" != "${PROTOC_GEN_GO_GRPC_VERSION#v}" ] &&
   [ "$(plugin_version protoc-gen-go-grpc)" != "$PROTOC_GEN_GO_GRPC_VERSION" ]; then
  GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))' 2>/dev/null)" \
     != "$GRPCIO_TOOLS_VERSION" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check "grpcio-tools==$GRPCIO_TOOLS_VERSION"
fi

# Generate into a scratch directory, then copy, so a failed run never leaves half a package.
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
(cd "$proto" && PATH="$bin:$PATH" "$venv/bin/python" -m grpc_tools.protoc -I . \
  --plugin=protoc-gen-go="$bin/protoc-gen-go" \
  --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
  --go_out="$out" --go_opt=module="$module" \
  --go-grpc_out="$out" --go-grpc_opt=module="$module" \
  taskhive/v1/*.proto)
mkdir -p "$here/taskhivepb"
for f in "$out"/taskhivepb/*.pb.go; do
  cp "$f" "$here/taskhivepb/$(basename "$f")"
done
echo "generated taskhivepb/*.pb.go" \
  "(protoc-gen-go $PROTOC_GEN_GO_VERSION, protoc-gen-go-grpc $PROTOC_GEN_GO_GRPC_VERSION, grpcio-tools $GRPCIO_TOOLS_VERSION)"
