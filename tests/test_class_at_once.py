"""A class of thirty at once: clicks never wait behind a long job, long jobs take turns, nothing from a link or a
click is unbounded, closed pages release their jobs, and a bug is reported as one.

The service tests run a real local cluster (one spawned compute process, as the app starts it) and assert on the
order of events the compute process records (``compute.jobs.lanes.GATE.journal``), never on seconds.
"""
from __future__ import annotations

import logging
import time
import uuid

import numpy as np
import pytest

from compute.errors import Cancelled, JobFailed
from compute.jobs.table import run
from compute.specs.source import Source
from dashboard.service import SESSION_TTL_S, ComputeService

WIDE = Source(model="tests.wide_model:build", data="digits")


def _journal():
    from compute.jobs.lanes import GATE

    return list(GATE.journal)


@pytest.fixture(scope="module")
def service(cache_root):
    started = ComputeService.start(Source(), janitor_s=0.2)
    started.run("details.panels", {"index": 0, "layer": "relu2"}, timeout=600)  # the model trained and loaded
    yield started
    started.close()


def journal(service) -> list:
    (events,) = service.client.run(_journal).values()
    return [tuple(event) for event in events]


def wait_until(check, timeout: float = 120.0) -> None:
    """Poll ``check`` (a guard for the test's own progress, not a limit on the app's speed)."""
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, "the condition was never met"
        time.sleep(0.05)


def test_a_click_runs_between_two_steps_of_a_long_job(service):
    long = service.submit("maximize.run", {"objective": ["class", 3], "steps": 4096, "n": 16, "seed": 7},
                          holder=("teacher", "maximize"))
    wait_until(lambda: sum(1 for _, event, job in journal(service) if event == "step" and job == "maximize.run") > 20)
    index = 100 + int(uuid.uuid4().int % 1000)  # a click nobody made before: its jobs really run
    for name, params in (("details.panels", {"index": index, "layer": "relu2"}),
                         ("attribution.maps", {"index": index, "methods": {"saliency": {}, "smoothgrad": {}}})):
        key = service.submit(name, params, holder=("student", name))
        wait_until(lambda: service.status(key).state != "running")
        assert service.status(key).state == "done"
        assert service.status(long).state == "running", "the long job ended before the click: nothing was shown"
        events = journal(service)
        starts = [k for k, (_, event, job) in enumerate(events) if event == "start" and job == name]
        ends = [k for k, (_, event, job) in enumerate(events) if event == "end" and job == name]
        start, end = starts[-1], ends[-1]
        long_events = [(k, e[1]) for k, e in enumerate(events) if e[2] == "maximize.run" and e[1] != "start"]
        steps_inside = [k for k, event in long_events if start < k < end and event == "step"]
        # The long job finished at most the step it was in; at the next step boundary it stopped and waited until
        # the click's job ended: the click did not wait for the long job's length, nor the long job run beside it.
        assert len(steps_inside) <= 1
        for k in steps_inside:
            following = [event for j, event in long_events if j > k]
            assert following[:2] == ["pause", "resume"] and next(j for j, e in long_events if j > k and e == "resume") > end
    wait_until(lambda: sum(1 for _, event, job in journal(service)[-200:] if event == "step") > 5)  # it goes on
    service.release(("teacher", "maximize"))
    assert service.status(long).state == "cancelled"


def test_long_jobs_take_turns_across_sessions_and_say_their_place(service):
    tag = uuid.uuid4().hex
    first = service.submit("diagnostics.count", {"tag": f"{tag}-a1", "steps": 60, "step_s": 0.05}, holder=("a", "p1"))
    wait_until(lambda: service.status(first).fraction > 0)
    a2 = service.submit("diagnostics.count", {"tag": f"{tag}-a2", "steps": 2}, holder=("a", "p2"))
    a3 = service.submit("diagnostics.count", {"tag": f"{tag}-a3", "steps": 2}, holder=("a", "p3"))
    b1 = service.submit("diagnostics.count", {"tag": f"{tag}-b1", "steps": 2}, holder=("b", "p1"))
    # Session b asked last but goes next: a was served (its first job runs), b never was.
    assert service.status(b1).text.startswith("waiting for its turn: 1st in line")
    assert service.status(a2).text.startswith("waiting for its turn: 2nd in line")
    assert service.status(a3).text.startswith("waiting for its turn: 3rd in line")
    assert service.status(a3).queued and "about" in service.status(a3).text
    results = {name: service.wait(key, 120).result for name, key in (("a2", a2), ("a3", a3), ("b1", b1))}
    started = sorted(results, key=lambda name: results[name]["started"])
    assert started == ["b1", "a2", "a3"]
    assert service.wait(first, 120).result["ended"] <= results["b1"]["started"]  # one at a time


def test_a_session_holds_a_few_long_jobs_and_a_new_one_replaces_its_oldest(service):
    from dashboard.service import LONG_PER_SESSION

    tag = uuid.uuid4().hex
    keys = [service.submit("diagnostics.count", {"tag": f"{tag}-{k}", "steps": 40, "step_s": 0.05},
                           holder=("greedy", f"panel-{k}")) for k in range(LONG_PER_SESSION + 1)]
    assert service.status(keys[0]).state == "cancelled"  # the oldest went when one more came
    assert all(service.status(key).state == "running" for key in keys[1:])
    for k in range(1, LONG_PER_SESSION + 1):
        service.release(("greedy", f"panel-{k}"))
    assert all(service.status(key).state == "cancelled" for key in keys)


@pytest.fixture
def short_lived(service):
    """Sessions forgotten one second after their last request (the app's default is a minute)."""
    service.session_ttl_s = 1.0
    yield service
    service.session_ttl_s = SESSION_TTL_S


def test_a_hundred_pages_opened_and_closed_release_their_jobs(short_lived):
    service = short_lived
    # The earlier tests' sessions are forgotten too.
    wait_until(lambda: service.census()["sessions"] == 0 and service.census()["slots"] == 0)
    wait_until(lambda: service.census()["running"] == 0 and service.census()["queued"] == 0)
    before = service.census()
    for page in range(100):
        session = f"page-{uuid.uuid4().hex}"
        service.submit("details.panels", {"index": page, "layer": "relu1"}, holder=(session, "details"))
        service.submit("diagnostics.count", {"tag": session, "steps": 100, "step_s": 0.05},
                       holder=(session, "long"))
        service.current((session, "details"))  # a poll
    during = service.census()
    assert during["sessions"] >= before["sessions"] + 100 and during["queued"] >= 50
    # The pages are closed: nobody polls, nobody beats. After the time-to-live their jobs are gone.
    wait_until(lambda: service.census()["sessions"] == before["sessions"])
    wait_until(lambda: service.census()["running"] == 0 and service.census()["queued"] == 0)
    after = service.census()
    assert after["slots"] == before["slots"]
    assert after["result_bytes"] <= service.results_bytes


def test_a_bug_in_a_job_is_reported_as_one_with_its_traceback_and_retry(service, caplog):
    from dashboard.views.context import error_message
    from dashboard.views.panel import shows_retry

    key = service.submit("diagnostics.fail", {"kind": "KeyError", "nonce": uuid.uuid4().hex}, holder=("s", "bug"))
    status = service.wait(key, 60)
    assert status.state == "error" and isinstance(status.error, JobFailed)
    assert status.error.kind == "KeyError" and "injected KeyError" in status.error.traceback
    assert "Traceback" in status.error.traceback and "diagnostics.py" in status.error.traceback
    with caplog.at_level(logging.ERROR, logger="featurescope"):
        text = str(error_message(status.error, "attribution-panel"))
    assert "Something went wrong in attribution panel" in text and "retry" in text
    assert "injected KeyError" in caplog.text and "Traceback" in caplog.text
    assert shows_retry(status.error)
    retried = service.submit("diagnostics.fail", {"kind": "KeyError", "nonce": "x"}, holder=("s", "bug"), retry=True)
    assert service.wait(retried, 60).state == "error"  # it ran again (and failed again, as a bug would)


def test_a_user_error_is_not_a_bug():
    from compute.errors import OutOfRange
    from dashboard.views.panel import shows_retry

    assert not shows_retry(OutOfRange("sample 5000 is out of range"))
    assert shows_retry(KeyError("x")) and shows_retry(ValueError("a bug that raised ValueError"))


# ------------------------------------------------------------------------------------------ bounded work


def test_a_link_asking_for_100000_pgd_steps_gets_the_views_limit_reports_progress_and_cancels(trained_model):
    from compute.jobs import variants
    from compute.jobs.workspace import workspace
    from compute.specs.adversarial import MAX_STEPS
    from dashboard.views.url_selection import Selection

    query = {"sample": "5", "variant": "adversarial,method:pgd,epsilon:0.03,steps:100000,seed:1"}
    selection = Selection(count=1797).decode("sample", query)
    assert selection["variant"]["steps"] == MAX_STEPS
    space = workspace(Source())
    reports = []
    asked = {"kind": "adversarial", "method": "pgd", "epsilon": 0.03, "steps": 100000, "seed": 2}
    image = variants.image(space, 5, asked, progress=lambda f, t, p=None: reports.append((f, t)))
    bounded = variants.image(space, 5, {**asked, "steps": MAX_STEPS})
    assert np.array_equal(image.numpy(), bounded.numpy())  # the same attack: clamped to the limit
    assert len(reports) >= MAX_STEPS and any(f"PGD step {MAX_STEPS}/{MAX_STEPS}" in text for _, text in reports)

    def cancel_at_tenth(fraction, text, partial=None):
        cancel_at_tenth.calls += 1
        if cancel_at_tenth.calls == 10:
            raise Cancelled("superseded")

    cancel_at_tenth.calls = 0
    with pytest.raises(Cancelled):
        variants.image(space, 6, {**asked, "seed": 3}, progress=cancel_at_tenth)
    assert cancel_at_tenth.calls == 10  # it stopped at the report that said so


def test_a_whole_layer_of_512_channels_is_made_in_chunks_equal_to_one_batch():
    settings = {"layer": "wide", "steps": 3, "seed": 4, "transforms": {}}
    reports = []
    chunked = run(WIDE, "maximize.layer", {**settings, "chunk": 200},
                  progress=lambda f, t, p=None: reports.append((f, t)))
    whole = run(WIDE, "maximize.layer", {**settings, "chunk": 512})
    assert chunked["images"].shape == whole["images"].shape == (512, 1, 32, 32)
    assert chunked["chunks"] == 3 and "chunks" not in whole
    np.testing.assert_allclose(chunked["images"], whole["images"], atol=1e-5)
    np.testing.assert_allclose(chunked["history"], whole["history"], rtol=1e-4, atol=1e-5)
    assert chunked["objective"] == whole["objective"] and chunked["seeds"] == whole["seeds"]
    assert any("chunk 3/3" in text for _, text in reports)
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions)


def test_a_whole_layer_chunk_fits_in_memory_and_a_cancel_keeps_the_finished_chunks(monkeypatch):
    from compute import device
    from compute.jobs import maximize as maximize_jobs
    from compute.jobs.workspace import workspace

    space = workspace(WIDE)
    monkeypatch.setattr(device, "_free_bytes", lambda _device: 64 * 1024**2)  # a small machine
    assert 1 <= maximize_jobs.chunk_size(space, (1, 32, 32)) < 512

    def cancel_in_second_chunk(fraction, text, partial=None):
        if text.startswith("chunk 2/"):
            raise Cancelled("superseded")

    result = run(WIDE, "maximize.layer", {"layer": "wide", "steps": 2, "seed": 5, "chunk": 256,
                                          "transforms": {}}, progress=cancel_in_second_chunk)
    assert result["cancelled"] and result["images"].shape[0] == 256

