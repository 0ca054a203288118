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


@pytest.fixture(scope="session")
def context(trained_model, cache_root):
    """What every view gets, as the app builds it, with the built-in model described by its compute job (run in
    this process: the view tests call request, job and render as plain functions, with no compute service)."""
    from compute.jobs.table import run
    from dashboard.config import AppConfig
    from dashboard.views.context import Meta, ViewContext

    config = AppConfig(cache_dir=str(cache_root))
    from dashboard.views import VIEWS

    return ViewContext(config, service=None, meta=Meta.from_description(run(config.source(), "describe", {})),
                       views=VIEWS)
