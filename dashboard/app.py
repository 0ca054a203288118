"""create_app(config): the Dash app, its background-callback manager, and every view registered."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import dash
import torch
from dash import DiskcacheManager

from compute.cache import cache_dir, set_cache_dir
from dashboard.callbacks import register_all
from dashboard.config import AppConfig
from dashboard.layout import build_layout

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def keep_server_fork_safe() -> int:
    """Run torch single-threaded in the server process; return the thread count background jobs should use.

    Background callbacks are forked from the server. A child forked after the parent has run an OpenMP
    parallel region hangs at its own first one (GNU libgomp is not fork-safe; seen here as jobs that never
    finished). With one thread the server never starts an OpenMP team, and each job restores the full count.
    """
    # The first call remembers the machine's count; later calls (the CLI, then create_app) reuse it.
    threads = int(os.environ.setdefault("FEATURESCOPE_JOB_THREADS", str(max(torch.get_num_threads(), 1))))
    torch.set_num_threads(1)
    return threads


class ForkedJobManager(DiskcacheManager):
    """DiskcacheManager whose forked jobs get back the torch thread count the server gave up."""

    def __init__(self, cache, job_threads: int, **kwargs):
        super().__init__(cache, **kwargs)
        self.job_threads = job_threads

    def call_job_fn(self, key, job_fn, args, context):
        # A superseded job can still write its result before it is killed; the same inputs later would then be
        # answered with that leftover (possibly a no_update) and the fresh job killed. Start from a clean slate.
        for stale in (key, self._make_progress_key(key), self._make_set_props_key(key)):
            self.clear_cache_entry(stale)
        threads = self.job_threads

        def run_with_threads(*job_args):
            torch.set_num_threads(threads)
            return job_fn(*job_args)

        return super().call_job_fn(key, run_with_threads, args, context)


def background_manager(job_threads: int) -> DiskcacheManager:
    """Background jobs run in their own processes; their state lives in a diskcache beside the results."""
    import diskcache

    jobs = cache_dir() / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    return ForkedJobManager(diskcache.Cache(str(jobs)), job_threads)


def create_app(config: AppConfig) -> dash.Dash:
    """Build the app for ``config``. Nothing heavy happens here: the model loads (or trains) in a background job.

    Serve it with ``app.run(..., threaded=False)`` as ``python -m dashboard`` does: jobs are forked from the
    server, and a fork taken while another request thread is inside SQLite inherits a lock nobody releases.
    """
    if config.cache_dir:
        set_cache_dir(config.cache_dir)
    job_threads = keep_server_fork_safe()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = dash.Dash(
        __name__,
        title="Featurescope",
        assets_folder=str(ASSETS),
        background_callback_manager=background_manager(job_threads),
        suppress_callback_exceptions=True,  # attribution graphs are created by callbacks
        update_title=None,
    )
    app.layout = build_layout(config)
    register_all(app, config)
    return app
