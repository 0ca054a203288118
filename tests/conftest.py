"""Shared fixtures: one throw-away cache directory for the whole run, so the built-in model trains once."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Set before any compute module runs, so every test (and every server a browser test starts) shares it.
SESSION_CACHE = Path(os.environ.get("FEATURESCOPE_TEST_CACHE") or tempfile.mkdtemp(prefix="featurescope-test-"))
os.environ["FEATURESCOPE_CACHE_DIR"] = str(SESSION_CACHE)


@pytest.fixture(scope="session")
def cache_root() -> Path:
    return SESSION_CACHE


@pytest.fixture(scope="session")
def digits():
    from compute import data

    return data.load("digits")


@pytest.fixture(scope="session")
def trained_model():
    """The built-in digits CNN, trained once per test session into the session cache (about 10 s)."""
    from compute import models

    return models.load("digits-cnn")
