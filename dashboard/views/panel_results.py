"""What the page's panels last computed: each panel's job (name and parameters) and its result, by job key.

Every background panel keeps the key of its current job in its ``<panel>-job`` store; the service keeps finished
results by key. The export (numbers, report) and the "show code" view read them from here, so neither re-runs a job
nor edits a view. The service's job key is a hash of the request; the service also keeps what each key asked for
(``service.request(key)``: job name and parameters).
"""
from __future__ import annotations

from dataclasses import dataclass

from dash import State

from dashboard.views.panel import BackgroundPanel

@dataclass(frozen=True)
class PanelInfo:
    panel: str  # the panel's name (its ids' prefix)
    view: str  # the view it belongs to (its NAME)
    title: str  # the view's title

    @property
    def store(self) -> str:
        return f"{self.panel}-job"


def panels(views) -> list[PanelInfo]:
    """Every background panel of the page's ``views``, in page order."""
    found = []
    for view in views:
        for value in vars(view).values():
            if isinstance(value, BackgroundPanel):
                found.append(PanelInfo(value.name, value.view or view.NAME, view.TITLE.split(":")[0]))
    return found


def job_states(views) -> list[State]:
    """A State of every panel's job store, in the order of :func:`panels`."""
    return [State(info.store, "data") for info in panels(views)]


def request_of(service, key: str) -> tuple[str, dict] | None:
    """(job name, parameters) of job ``key``, or None when this server has not seen it."""
    return service.request(key)


def result_of(service, key: str, timeout: float = 60.0):
    """The finished result of job ``key``: the one the service holds, else the same request asked again (cached in
    the compute process, so it is read, not recomputed). None when the key is unknown or the job failed."""
    status = service.status(key)
    if status.state == "done":
        return status.result
    request = request_of(service, key)
    if request is None:
        return None
    status = service.wait(service.submit(*request), timeout)
    return status.result if status.state == "done" else None


def current_jobs(views, stores: list, open_views: list | None) -> list[tuple[PanelInfo, str]]:
    """(panel, job key) for each panel of an open (or always shown) view whose store holds a job."""
    openable = {view.NAME for view in views if view.OPENABLE}
    shown = set(open_views or [])
    return [(info, store["key"]) for info, store in zip(panels(views), stores)
            if isinstance(store, dict) and store.get("key") and (info.view not in openable or info.view in shown)]
