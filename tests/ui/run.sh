#!/usr/bin/env bash
# Tests the /ui dashboard in headless Chromium: Debian's chromium driven by playwright-core
# (installed here only when missing), against a fresh `taskhive serve` on a free port.
# The server runs with --auth (an admin and a client token); the page is used after entering a
# token. Writes target/ui-screenshot.png, target/ui-jobs-screenshot.png (the job browser),
# target/report.html (a load report) and target/report-screenshot.png. Exits non-zero on any
# failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${TASKHIVE_BIN:-$root/target/debug/taskhive}"
shot="${UI_SCREENSHOT:-$root/target/ui-screenshot.png}"
jobs_shot="${UI_JOBS_SCREENSHOT:-$root/target/ui-jobs-screenshot.png}"
report_file="${REPORT_FILE:-$root/target/report.html}"
report_shot="${REPORT_SCREENSHOT:-$root/target/report-screenshot.png}"

# Debian packages, only those missing (node ≥ 18 is enough for the pinned playwright-core).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "ui: installing ${missing[*]} (apt-get)"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

admin_token="ui-admin-$RANDOM$RANDOM"
client_token="ui-client-$RANDOM$RANDOM"
{
  "$bin" auth hash "$admin_token" --role admin --name ui-admin
  "$bin" auth hash "$client_token" --role client --name ui-client
} > "$tmp/tokens"
chmod 600 "$tmp/tokens"

"$bin" serve --listen 127.0.0.1:0 --data "$tmp/data" --auth "$tmp/tokens" \
  > "$tmp/server.out" 2> "$tmp/server.log" &
pids+=($!)
for _ in $(seq 1 300); do grep -q "listening on" "$tmp/server.out" 2>/dev/null && break; sleep 0.1; done
addr="$(sed -n 's/^listening on //p' "$tmp/server.out" | head -n 1)"
[ -n "$addr" ] || { echo "ui: server did not start"; cat "$tmp/server.log"; exit 1; }

# A worker whose command always fails, so a job with one attempt lands in the dead set.
TASKHIVE_TOKEN="$admin_token" "$bin" run --addr "$addr" -f ui-dead --exec false \
  > "$tmp/worker.log" 2>&1 &
pids+=($!)

# A worker whose command runs until stopped and, on SIGTERM, writes its job's name to a file:
# the page's Cancel button must reach it.
cat > "$tmp/slow.sh" <<EOF
#!/bin/sh
trap 'echo "\$1" > "$tmp/term"; exit 0' TERM
while :; do sleep 0.1; done
EOF
chmod +x "$tmp/slow.sh"
TASKHIVE_TOKEN="$admin_token" "$bin" run --addr "$addr" -f ui-slow --exec "$tmp/slow.sh" \
  > "$tmp/slow-worker.log" 2>&1 &
pids+=($!)

mkdir -p "$(dirname "$shot")"
if ! TASKHIVE_URL="http://$addr" UI_SCREENSHOT="$shot" UI_JOBS_SCREENSHOT="$jobs_shot" \
  ADMIN_TOKEN="$admin_token" CLIENT_TOKEN="$client_token" TASKHIVE_BIN="$bin" \
  REPORT_FILE="$report_file" REPORT_SCREENSHOT="$report_shot" TERM_FILE="$tmp/term" \
  node "$here/ui.test.mjs"; then
  echo "ui: failed; server log:"; tail -n 30 "$tmp/server.log"
  exit 1
fi
