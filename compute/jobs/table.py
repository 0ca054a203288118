"""The table of every job the compute process runs, and :func:`run`, which runs one by name in its lane.

The table is assembled here from each family module's ``JOBS``, so it is complete whatever was imported first, and
a name registered twice is refused. A notebook gets any panel's numbers as the page computed them:

    from compute.jobs.table import run
    from compute.specs.source import Source
    scatter = run(Source(), "explore.scatter", {"layer": "relu2", "method": "pca", "features": "auto"})
"""
from __future__ import annotations

from typing import Callable

from compute import cache
from compute.errors import UserError
from compute.jobs import (adversarial, attribution, channels, details, diagnostics, evolution, explore,
                          faithfulness, images, maximize, neighbours, uploads, weights)
from compute.jobs.lanes import GATE, INTERACTIVE, in_lane
from compute.jobs.variants import VARIANTS  # noqa: F401  (the other table of this floor)
from compute.jobs.workspace import workspace
from compute.progress import Progress, quiet
from compute.specs.jobs import lane_of
from compute.specs.source import Source

JobFunction = Callable[..., dict]
FAMILIES = (explore, details, attribution, faithfulness, channels, weights, maximize, evolution, adversarial, images,
            neighbours, uploads, diagnostics)


def _table(families) -> dict[str, JobFunction]:
    table: dict[str, JobFunction] = {}
    for family in families:
        for name, function in family.JOBS.items():
            if name in table:
                raise ValueError(f"job {name!r} is registered twice ({family.__name__})")
            table[name] = function
    return table


JOBS: dict[str, JobFunction] = _table(FAMILIES)

# A click waiting for a result another job is computing does not count as running meanwhile (compute.jobs.lanes).
cache.waiting_for_another = GATE.stepping_aside


def _stepping(progress: Progress) -> Progress:
    """``progress`` that is also a step boundary: long work waits there while interactive work runs."""
    def report(fraction: float, text: str, partial: dict | None = None) -> None:
        GATE.step()
        progress(fraction, text) if partial is None else progress(fraction, text, partial)

    return report


def run(source: Source, name: str, params: dict, progress: Progress = quiet) -> dict:
    """Run the job ``name`` with ``params`` on this process's workspace of ``source``, in the job's lane."""
    if name not in JOBS:
        raise UserError(f"unknown job {name!r}; known jobs: {', '.join(sorted(JOBS))}")
    lane = lane_of(name)
    with in_lane(lane, name):
        if lane == INTERACTIVE:
            with GATE.interactive(name):
                return JOBS[name](workspace(source), _stepping(progress), **params)
        return JOBS[name](workspace(source), _stepping(progress), **params)
