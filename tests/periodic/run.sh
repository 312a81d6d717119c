#!/usr/bin/env bash
# Runs the aio-periodic compatibility suite: installs aio-periodic==1.0.0 (unmodified, from
# PyPI) into a local venv and drives a real `taskhive serve --periodic-listen` with it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import aio_periodic, pytest" 2>/dev/null; then
  "$venv/bin/pip" install -q aio-periodic==1.0.0 pytest==8.3.4
fi
cd "$here"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
