#!/usr/bin/env bash
# Run the whole test suite: compute unit tests, figure tests and real-browser journeys in headless Chromium.
# Extra arguments go to pytest (e.g. -k occlusion, or tests/browser).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/ensure-env.sh" requirements-dev.txt
cd "$FEATURESCOPE_ROOT"
if [ ! -x "${FEATURESCOPE_CHROMIUM:-/usr/bin/chromium}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "featurescope: installing Debian's chromium for the browser tests"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "featurescope: the browser tests need Chromium: sudo apt-get install chromium chromium-driver" >&2
        exit 1
    fi
fi
exec "$VENV_PYTHON" -m pytest "$@"
