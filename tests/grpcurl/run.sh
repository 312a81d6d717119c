#!/usr/bin/env bash
# grpcurl against a real server: reflection lists every service, describe works, and the
# README's grpcurl line submits a job. Installs grpcurl (pinned) into target/tools if missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${TASKHIVE_BIN:-$root/target/debug/taskhive}"
tools="$root/target/tools"
grpcurl="$tools/grpcurl"
if [ ! -x "$grpcurl" ]; then
  GOBIN="$tools" go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3
fi
tmp="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
"$bin" serve --listen 127.0.0.1:0 --data "$tmp/data" > "$tmp/out" 2> "$tmp/log" &
pid=$!
for _ in $(seq 1 300); do
  grep -q "listening on" "$tmp/out" 2>/dev/null && break
  sleep 0.1
done
addr="$(sed -n 's/^listening on //p' "$tmp/out" | head -n 1)"
[ -n "$addr" ] || { echo "server did not start"; cat "$tmp/log"; exit 1; }

fail=0
passed=0
check() {
  if eval "$2"; then echo "ok   $1"; passed=$((passed + 1)); else echo "FAIL $1"; fail=$((fail + 1)); fi
}

services="$("$grpcurl" -plaintext "$addr" list)"
for s in taskhive.v1.Scheduler grpc.health.v1.Health grpc.reflection.v1.ServerReflection; do
  check "list shows $s" 'grep -qx "$s" <<<"$services"'
done
check "describe SubmitJob" '"$grpcurl" -plaintext "$addr" describe taskhive.v1.Scheduler.SubmitJob | grep -q "SubmitJobRequest"'
# The line README.md documents:
out="$("$grpcurl" -plaintext -d '{"task":"ls5","name":"/tmp/"}' "$addr" taskhive.v1.Scheduler/SubmitJob)"
check "submit answers a job id" 'grep -q "\"jobId\"" <<<"$out"'
status="$("$grpcurl" -plaintext -d '{"task":"ls5"}' "$addr" taskhive.v1.Scheduler/Status)"
check "status shows the job" 'grep -q "\"pending\": \"1\"" <<<"$status"'
bad="$("$grpcurl" -plaintext -d '{"task":"","name":"x"}' "$addr" taskhive.v1.Scheduler/SubmitJob 2>&1 || true)"
check "bad input is InvalidArgument naming the field" 'grep -q "InvalidArgument" <<<"$bad" && grep -q "task: must not be empty" <<<"$bad"'

echo "grpcurl: $passed passed, $fail failed"
[ "$fail" -eq 0 ]
