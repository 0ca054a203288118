#!/usr/bin/env bash
# Create (or reuse) the virtual env and install what is missing from the given requirements file.
# Usage: source scripts/ensure-env.sh requirements.txt   -> sets $VENV_PYTHON
set -euo pipefail
FEATURESCOPE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FEATURESCOPE_VENV:-$FEATURESCOPE_ROOT/.venv}"
REQUIREMENTS="$FEATURESCOPE_ROOT/${1:-requirements.txt}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "featurescope: Python 3.10 or newer is needed (found: $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "featurescope: creating the virtual env in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# Re-install only when a requirements file changed (the stamp is a hash of all of them).
stamp="$VENV/.featurescope-$(cat "$FEATURESCOPE_ROOT"/requirements*.txt | sha256sum | cut -c1-16)-$(basename "$REQUIREMENTS")"
if [ ! -f "$stamp" ]; then
    echo "featurescope: installing $(basename "$REQUIREMENTS") (first run only; torch is large)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    touch "$stamp"
fi
# The project itself, in editable mode, once per checkout and pyproject.toml: then `from compute import attribution`
# works from any folder with this venv's python. --no-deps: the requirements above already hold them all;
# --no-build-isolation (when the venv has setuptools) keeps this step offline.
editable="$VENV/.featurescope-editable-$( (echo "$FEATURESCOPE_ROOT"; cat "$FEATURESCOPE_ROOT/pyproject.toml") | sha256sum | cut -c1-16)"
if [ ! -f "$editable" ]; then
    isolation=""
    if "$VENV/bin/python" -c 'import setuptools' 2>/dev/null; then isolation="--no-build-isolation"; fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps $isolation -e "$FEATURESCOPE_ROOT"
    touch "$editable"
fi
VENV_PYTHON="$VENV/bin/python"
export VENV_PYTHON
