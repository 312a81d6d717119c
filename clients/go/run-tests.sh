#!/usr/bin/env bash
# Checks and tests the Go client (clients/go) and the Go examples (examples/go) against a real
# server binary: $TASKHIVE_BIN, default <repo>/target/debug/taskhive (build it with `cargo build`).
# Downloads the Go module dependencies when missing. GO_TEST_FLAGS overrides the test flags
# (default: -race when cgo can build it, -count=1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export TASKHIVE_BIN="${TASKHIVE_BIN:-$repo/target/debug/taskhive}"

if ! command -v go >/dev/null 2>&1; then
  echo "run-tests.sh: go is not installed" >&2
  exit 1
fi
if [ ! -x "$TASKHIVE_BIN" ]; then
  echo "run-tests.sh: no server binary at $TASKHIVE_BIN (run \`cargo build\` or set TASKHIVE_BIN)" >&2
  exit 1
fi

if [ -z "${GO_TEST_FLAGS+x}" ]; then
  GO_TEST_FLAGS="-count=1"
  if [ "$(go env CGO_ENABLED)" = 1 ] && command -v "$(go env CC)" >/dev/null 2>&1; then
    GO_TEST_FLAGS="-race $GO_TEST_FLAGS"
  fi
fi

for mod in "$here" "$repo/examples/go"; do
  echo "== go module ${mod#"$repo"/}"
  cd "$mod"
  go mod download
  go mod tidy -diff
  unformatted="$(gofmt -l .)"
  if [ -n "$unformatted" ]; then
    echo "run-tests.sh: not gofmt-formatted:" >&2
    echo "$unformatted" >&2
    exit 1
  fi
  go vet ./...
  go build ./...
  # shellcheck disable=SC2086
  go test $GO_TEST_FLAGS -timeout 600s ./...
done
echo "== go client: all checks and tests passed"
