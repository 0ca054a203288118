"""Which lane each job of the compute process runs in, without torch: the web server admits long jobs in turns.

- ``interactive``: what a click waits for (the detail panels, attribution maps, inversion, neighbours, thumbnails,
  the scatter's first picture). Runs at once and goes first on the device.
- ``long``: work that runs for seconds to minutes (a maximization, the robustness curve, training, statistics over
  the whole data set). The server runs a few at a time, taking sessions in turns; in the compute process each one
  hands the device to interactive work between its steps.

A test checks that this table and the compute process's job table name the same jobs.
"""
from __future__ import annotations

INTERACTIVE = "interactive"
LONG = "long"

LANES: dict[str, str] = {
    "describe": INTERACTIVE,
    "explore.scatter": INTERACTIVE,  # its t-SNE/UMAP phase steps aside like long work (compute.jobs.explore)
    "details.panels": INTERACTIVE,
    "attribution.maps": INTERACTIVE,
    "inversion.reconstruct": INTERACTIVE,
    "neighbours.nearest": INTERACTIVE,
    "images.thumbnails": INTERACTIVE,
    "images.selection": INTERACTIVE,
    "uploads.place": INTERACTIVE,
    "weights.kernels": INTERACTIVE,
    "weights.evolution": INTERACTIVE,
    "channels.top_images": INTERACTIVE,
    "evolution.runs": INTERACTIVE,
    "adversarial.attack": INTERACTIVE,
    "faithfulness.curves": INTERACTIVE,
    "faithfulness.step": INTERACTIVE,
    "diagnostics.steps_done": INTERACTIVE,
    "diagnostics.fail": INTERACTIVE,
    "faithfulness.ranking": LONG,
    "maximize.run": LONG,
    "maximize.layer": LONG,
    "adversarial.smallest_epsilon": LONG,
    "adversarial.robustness": LONG,
    "channels.stats": LONG,
    "channels.dead_table": LONG,
    "evolution.embed": LONG,
    "evolution.train": LONG,
    "diagnostics.count": LONG,
}


def lane_of(job: str) -> str:
    """The lane of ``job`` (an unknown name is interactive: the compute process then says it does not exist)."""
    return LANES.get(job, INTERACTIVE)
