#!/usr/bin/env bash
# Cross-language: the Go example client submits and the Python example worker runs the job,
# then the Python client submits and the Go worker runs it. Uses the venv made by
# clients/python/run-tests.sh and the Go toolchain.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${TASKHIVE_BIN:-$root/target/debug/taskhive}"
py="$root/clients/python/.venv/bin/python"
[ -x "$py" ] || { echo "cross: run clients/python/run-tests.sh first (it makes the venv)"; exit 1; }
tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

"$bin" serve --listen 127.0.0.1:0 --data "$tmp/data" > "$tmp/server.out" 2> "$tmp/server.log" &
pids+=($!)
for _ in $(seq 1 300); do grep -q "listening on" "$tmp/server.out" 2>/dev/null && break; sleep 0.1; done
addr="$(sed -n 's/^listening on //p' "$tmp/server.out" | head -n 1)"
[ -n "$addr" ] || { echo "server did not start"; exit 1; }
export TASKHIVE_ADDR="$addr"

(cd "$root/examples/go" && go build -o "$tmp/go-client" ./random_print/client && go build -o "$tmp/go-worker" ./random_print/worker)

# Waits (up to 60 s) until FILE contains TEXT.
wait_for() {
  for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1:"; cat "$1"; return 1
}

passed=0
failed=0
run_case() {
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

go_client_python_worker() {
  "$py" "$root/examples/python/random_print_worker.py" --max-count 2 --min-delay 0.05 --max-delay 0.1 \
    --exit-on-finish > "$tmp/py-worker.out" 2>&1 &
  local w=$!
  pids+=($w)
  "$tmp/go-client" -name "from go" > "$tmp/go-client.out"
  wait_for "$tmp/py-worker.out" "Finish!" && grep -q "from go" "$tmp/py-worker.out" \
    && echo "ok   go client -> python worker"
}

python_client_go_worker() {
  "$tmp/go-worker" -max-count 2 -min-delay 50ms -max-delay 100ms > "$tmp/go-worker.out" 2>&1 &
  pids+=($!)
  "$py" "$root/examples/python/random_print_client.py" --name "from python" > "$tmp/py-client.out"
  wait_for "$tmp/go-worker.out" "Finish!" && grep -q "from python" "$tmp/go-worker.out" \
    && echo "ok   python client -> go worker"
}

run_case go_client_python_worker
run_case python_client_go_worker
echo "cross-language: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
