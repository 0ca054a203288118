#!/usr/bin/env bash
# Start Featurescope on the built-in default (digits + the project's own CNN) at http://127.0.0.1:8050.
# Extra arguments go to `python -m dashboard` (see --help).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/ensure-env.sh" requirements.txt
cd "$FEATURESCOPE_ROOT"
exec "$VENV_PYTHON" -m dashboard "$@"
