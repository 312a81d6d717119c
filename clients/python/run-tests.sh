#!/usr/bin/env bash
# Runs the Python client's test suite against a real taskhive server ($TASKHIVE_BIN, default
# <repo>/target/debug/taskhive). Creates ./.venv on first use and installs the package
# (editable) with the pinned versions of requirements-dev.txt; later runs skip the install
# unless those pins or pyproject.toml changed. Extra arguments go to pytest.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"
export TASKHIVE_BIN="${TASKHIVE_BIN:-$repo/target/debug/taskhive}"

if [ ! -x "$TASKHIVE_BIN" ]; then
  echo "run-tests.sh: no server binary at $TASKHIVE_BIN (cargo build, or set TASKHIVE_BIN)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.taskhive-installed"
want="$(cat "$here/requirements-dev.txt" "$here/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] \
  || ! "$venv/bin/python" -c "import taskhive, pytest" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements-dev.txt" -e "$here"
  echo "$want" > "$stamp"
fi
cd "$here"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
