"""The background panel: one helper that gives any view a job on the compute process with progress, error, cancel
and retry, in one place.

A panel is one Dash callback. When its inputs change it submits a job (``service.submit``) and waits a moment:
a cached or quick result is drawn at once, with no polling. Otherwise it shows the job's progress and polls it
with its own ``dcc.Interval`` until the result is there. Each poll waits a moment for the job to end (or, for a panel
that draws partial results, to send a newer one), so the result comes as soon as it exists without many requests.
The interval is re-armed by each answer (``max_intervals``): a page never has two polls of one panel in flight, for
Dash would drop the first one's answer when the second is sent, and a busy server would then never be heard. A new
request from the same session and panel releases the previous job (which the service cancels if nobody else waits
for it); a closed view starts no job.

A view supplies ``request(*inputs, *states) -> Request | Message | None`` (what to compute, from the controls) and
``render(result, context) -> tuple`` (the panel's outputs, built by components from the result's arrays).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from dash import Input, Output, State, ctx, dcc, html, no_update

from components import controls
from dashboard.service import ComputeProcessDied
from dashboard.views.context import ERRORS_FOR_USERS, OPEN_VIEWS, SESSION, ViewContext, error_message

FAST_WAIT_S = 0.8  # a job that ends within this answers the request itself: no polling round trip
# While a job runs the page asks again POLL_MS after each answer, and each ask waits up to POLL_WAIT_S for the job to
# end: a result is drawn as soon as it exists, and a class of thirty pages costs about one request per second per
# running panel.
POLL_MS = 200
POLL_WAIT_S = 0.8


def shows_retry(error: BaseException) -> bool:
    """A retry can help after a bug or a compute process that died, never after the user's own mistake."""
    return isinstance(error, ComputeProcessDied) or not isinstance(error, ERRORS_FOR_USERS)


def bar_value(status) -> str | None:
    """The progress bar's value for a running job: its percent, or None (no value: a bar without a level, which the
    browser animates) while the step running has no measurable progress; its text then says what it waits for."""
    return str(round(100 * status.fraction)) if status.measured else None


@dataclass(frozen=True)
class Request:
    """A job to run for the panel: its name and parameters (the cache key), and ``context``: the small, JSON-able
    settings that only change how the result is drawn (display mode, opacity, names), handed to ``render``."""

    job: str
    params: dict
    context: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """No job: show this text in the panel instead (``kind`` error, warning or info)."""

    text: str
    kind: str = "info"


@dataclass
class BackgroundPanel:
    """A panel whose ``outputs`` come from a compute job. ``view``: the view that must be open for it to run."""

    name: str
    outputs: list[Output]
    inputs: list[Input]
    states: list[State] = field(default_factory=list)
    view: str | None = None
    idle_text: str = ""

    def _id(self, part: str) -> str:
        return f"{self.name}-{part}"

    @property
    def message_id(self) -> str:
        return self._id("message")

    @property
    def job_id(self) -> str:
        """The store holding the panel's current job ({"key", "context"}): another callback may read that job's
        result or partial result from the service by its key."""
        return self._id("job")

    def status(self) -> html.Div:
        """The panel's progress bar, message line, retry button, poll timer and job store (place it in the layout)."""
        return html.Div([
            html.Div([
                html.Progress(id=self._id("progress"), value="0", max="100", className="progress"),
                html.Span(id=self._id("progress-text"), className="progress-text"),
                html.Button("cancel", id=self._id("cancel"), n_clicks=0, className="button button-small"),
            ], id=self._id("progress-block"), className="progress-block", style={"display": "none"}),
            html.Div([
                html.Div(self.idle_text and controls.message(self.idle_text, "info"), id=self.message_id),
                html.Button("retry", id=self._id("retry"), n_clicks=0, className="button button-small",
                            style={"display": "none"}),
            ], className="panel-message"),
            dcc.Interval(id=self._id("poll"), interval=POLL_MS, disabled=True),
            dcc.Store(id=self._id("job")),
        ], className="panel-status")

    def register(self, app, context: ViewContext, request: Callable[..., Any], render: Callable[[Any, dict], tuple],
                 render_partial: Callable[[dict, dict], tuple] | None = None) -> None:
        """Wire the panel's one callback. ``render_partial(partial, context)`` draws a job's partial result while it
        runs (a live image, a layout as it converges); without it the outputs keep what they showed."""
        service = context.service
        count = len(self.outputs)
        unchanged = (no_update,) * count
        hidden, shown = {"display": "none"}, {"display": "flex"}
        gate = [Input(OPEN_VIEWS, "value")] if self.view else []

        def first_answer(key: str):
            """The job's status once it ends or sends a partial result (drawn at once: the PCA layout before t-SNE
            converges), or after FAST_WAIT_S."""
            deadline = time.monotonic() + FAST_WAIT_S
            while True:
                status = service.wait(key, 0.05)
                if status.state != "running" or status.partial is not None or time.monotonic() >= deadline:
                    return status

        def respond(status, job_context: dict, key: str):
            """The callback's outputs for a job's status: figures when done, progress while running, else a message."""
            store = {"key": key, "context": job_context, "revision": status.revision}
            if status.state == "done":
                try:
                    outputs = tuple(render(status.result, job_context))
                except Exception as error:  # a figure that cannot be drawn (a bug): say so, keep the page, offer retry
                    return (*unchanged, "0", "", hidden, error_message(error, self.name), shown, None, True)
                return (*outputs, "100", "", hidden, None, hidden, store, True)
            if status.state == "running":
                outputs = unchanged
                if render_partial is not None and status.partial is not None:
                    try:
                        outputs = tuple(render_partial(status.partial, job_context))
                    except Exception:  # a partial picture is optional; the final one will say what is wrong
                        outputs = unchanged
                return (*outputs, bar_value(status), status.text, shown, no_update, hidden, store, False)
            if status.state == "cancelled":
                return (*unchanged, "0", "", hidden, controls.message("Cancelled.", "info"), shown, None, True)
            if status.state == "missing":
                return (*unchanged, "0", "", hidden, None, shown, None, True)
            error = status.error
            retry = shown if shows_retry(error) else hidden
            return (*unchanged, "0", "", hidden, error_message(error, self.name), retry, None, True)

        @app.callback(
            *self.outputs,
            Output(self._id("progress"), "value"),
            Output(self._id("progress-text"), "children"),
            Output(self._id("progress-block"), "style"),
            Output(self.message_id, "children"),
            Output(self._id("retry"), "style"),
            Output(self._id("job"), "data"),
            Output(self._id("poll"), "disabled"),
            Output(self._id("poll"), "max_intervals"),
            *self.inputs,
            *gate,
            Input(self._id("poll"), "n_intervals"),
            Input(self._id("retry"), "n_clicks"),
            Input(self._id("cancel"), "n_clicks"),
            *self.states,
            State(self._id("job"), "data"),
            State(SESSION, "data"),
        )
        def update(*values):
            answer = answer_to(*values)
            if answer[-1] is False:  # the job runs on: the poll fires once more, POLL_MS after this answer
                polls = values[len(self.inputs) + len(gate)] or 0
                return (*answer, polls + 1)
            return (*answer, no_update)

        def answer_to(*values):
            *arguments, job, session = values
            inputs = arguments[:len(self.inputs)]
            states = arguments[len(self.inputs) + len(gate) + 3:]
            holder = (session, self.name)
            trigger = ctx.triggered_id
            if self.view and self.view not in (arguments[len(self.inputs)] or []):
                service.release(holder)
                return (*unchanged, "0", "", hidden, no_update, hidden, None, True)
            if trigger == self._id("poll"):
                if not job:
                    return (*unchanged, no_update, no_update, hidden, no_update, no_update, no_update, True)
                if service.current(holder) not in (None, job["key"]):
                    # A poll of a job this panel has since replaced, answered late: the new job's own answer holds.
                    return (no_update,) * (count + 7)
                newer_than = job.get("revision", 0) if render_partial is not None else None
                return respond(service.wait(job["key"], POLL_WAIT_S, newer_than), job.get("context", {}), job["key"])
            if trigger == self._id("cancel"):
                service.release(holder)
                return (*unchanged, "0", "", hidden, controls.message("Cancelled.", "info"), shown, None, True)
            try:
                wanted = request(*inputs, *states)
            except Exception as error:  # a bad control value: a message in the panel, never a traceback
                return (*unchanged, "0", "", hidden, error_message(error, self.name), hidden, None, True)
            if wanted is None:
                return (*unchanged, "0", "", hidden, no_update, hidden, no_update, True)
            if isinstance(wanted, Message):
                service.release(holder)
                return (*unchanged, "0", "", hidden, controls.message(wanted.text, wanted.kind), hidden, None, True)
            key = service.submit(wanted.job, wanted.params, holder=holder, retry=trigger == self._id("retry"))
            return respond(first_answer(key), wanted.context, key)
