"""GPU check: start the real server on a device, drive every view's panels over HTTP as the browser does, and check
that each panel arrives, that its work ran in the compute process on that device, and that the server itself built
no model and never touched CUDA. ``python -m bench.gpu_check [--device cuda]`` (no browser needed).

Every background panel of every view is found from the app's own callback list (``/_dash-dependencies``): its
inputs get their values from the page layout (``/_dash-layout``), a selected sample and every view open, and the
panel is polled as the page would poll it until its figures arrive.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOB_SUFFIX = "-job.data"


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url + "_dash-update-component", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.load(response)


def get(url: str, path: str):
    with urllib.request.urlopen(url + path, timeout=60) as response:
        return json.load(response)


def components(node):
    """Every component of a layout (as JSON), depth first."""
    if isinstance(node, dict):
        if "props" in node:
            yield node
            yield from components(node["props"].get("children"))
    elif isinstance(node, list):
        for child in node:
            yield from components(child)


def matches(pattern, concrete) -> bool:
    if isinstance(pattern, str) or isinstance(concrete, str):
        return pattern == concrete
    return pattern.keys() == concrete.keys() and all(value == ["ALL"] or value == concrete[key]
                                                      for key, value in pattern.items())


def parse_id(text: str):
    return json.loads(text) if text.startswith("{") else text


def id_key(component_id) -> str:
    return component_id if isinstance(component_id, str) else json.dumps(component_id, sort_keys=True)


def entries(layout_components, dependency, overrides):
    """The inputs/states payload for one dependency list, values from the layout unless overridden."""
    payload = []
    for item in dependency:
        wanted = parse_id(item["id"])
        prop = item["property"]
        if isinstance(wanted, dict):
            payload.append([{"id": c["props"]["id"], "property": prop, "value": c["props"].get(prop)}
                            for c in layout_components if isinstance(c["props"].get("id"), dict)
                            and matches(wanted, c["props"]["id"])])
            continue
        value = overrides.get((wanted, prop))
        if value is None:
            value = next((c["props"].get(prop) for c in layout_components if c["props"].get("id") == wanted), None)
        if value is None and prop == "n_clicks" and not wanted.endswith(("-retry", "-cancel")):
            value = 1  # a "run" button pressed once
        payload.append({"id": wanted, "property": prop, "value": value})
    return payload


def output_spec(output: str) -> list[dict]:
    parts = output.strip(".").split("...")
    spec = []
    for part in parts:
        component, _, prop = part.rpartition(".")
        spec.append({"id": parse_id(component), "property": prop.split("@")[0]})
    return spec


def drive_panel(url: str, dependency: dict, layout_components, overrides, timeout: float) -> tuple[float, dict]:
    """Trigger the panel by its first input, then poll until it answers with its outputs; (seconds, response)."""
    outputs = output_spec(dependency["output"])
    poll_id = next(o["id"] for o in outputs if isinstance(o["id"], str) and o["id"].endswith("-job")) \
        .removesuffix("-job") + "-poll"
    inputs = entries(layout_components, dependency["inputs"], overrides)
    states = entries(layout_components, dependency.get("state", []), overrides)
    # The panel's own "run" button when it has one (a panel that computes on request), else its first input.
    buttons = [item for item in dependency["inputs"] if item["property"] == "n_clicks"
               and not item["id"].endswith(("-retry", "-cancel"))]
    first = buttons[0] if buttons else dependency["inputs"][0]
    payload = {"output": dependency["output"], "outputs": outputs, "inputs": inputs, "state": states,
               "changedPropIds": [f"{first['id']}.{first['property']}"]}
    start = time.perf_counter()
    response = post(url, payload)["response"]
    while True:
        job = response.get(poll_id.removesuffix("-poll") + "-job", {}).get("data")
        disabled = response.get(poll_id, {}).get("disabled", True)
        if disabled or not job:
            return time.perf_counter() - start, response
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{poll_id}: no result after {timeout} s")
        time.sleep(0.25)
        for entry in inputs:
            if isinstance(entry, dict) and entry["id"] == poll_id:
                entry["value"] = (entry["value"] or 0) + 1
        for entry in states:
            if isinstance(entry, dict) and entry["id"] == poll_id.removesuffix("-poll") + "-job":
                entry["value"] = job
        payload["changedPropIds"] = [f"{poll_id}.n_intervals"]
        response = post(url, payload)["response"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sample", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=240)
    parser.add_argument("--embedding", default="tsne", help="the scatter's embedding (pca for a quick dry run)")
    args = parser.parse_args(argv)
    cache = Path(tempfile.mkdtemp(prefix="featurescope-gpu-check-"))
    port = 8050 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}/"
    log = open(cache / "server.log", "w")
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "dashboard", "--device", args.device, "--port", str(port),
                               "--cache-dir", str(cache), "--embedding", args.embedding], cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT, env={**os.environ, "FEATURESCOPE_AUDIT": "1",
                                                             "PYTHONUNBUFFERED": "1"})
    failures = []
    try:
        while True:
            try:
                get(url, "_featurescope/audit")
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - started > 300:
                    raise RuntimeError("the server did not start:\n" + (cache / "server.log").read_text()[-3000:])
                time.sleep(0.5)
        print(f"server up after {time.perf_counter() - started:.1f} s")
        layout_components = list(components(get(url, "_dash-layout")))
        views = next(c for c in layout_components if c["props"].get("id") == "open-views")
        overrides = {("selection", "data"): {"index": args.sample},
                     ("open-views", "value"): [option["value"] for option in views["props"]["options"]]}
        panels = [d for d in get(url, "_dash-dependencies") if JOB_SUFFIX in d["output"]]
        rows = []
        for dependency in panels:
            name = output_spec(dependency["output"])[0]["id"]
            for attempt in ("first", "again"):
                try:
                    seconds, response = drive_panel(url, dependency, layout_components, overrides, args.timeout)
                except Exception as error:  # report every panel, then fail
                    failures.append(f"{name}: {error}")
                    break
                first = output_spec(dependency["output"])[0]
                arrived = id_key(first["id"]) in {id_key(parse_id(k)) for k in response}
                message = json.dumps(response.get(f"{name.removesuffix('-figure')}-message", {}))[:160] \
                    if not arrived else ""
                rows.append((name, attempt, seconds, arrived, message))
                if not arrived:
                    failures.append(f"{name}: no figure ({message})")
                    break
        audit = get(url, "_featurescope/audit")
        print(f"\n| panel | call | seconds | figures arrived |\n|---|---|---|---|")
        for name, attempt, seconds, arrived, message in rows:
            print(f"| {name} | {attempt} | {seconds:.3f} | {'yes' if arrived else 'NO ' + message} |")
        print(f"\nserver: pid {audit['pid']}, nn.Modules built {audit['modules_built']}, "
              f"CUDA initialised {audit['cuda_initialized']}")
        for facts in audit.get("worker_facts", []):
            print(f"compute process: {facts}")
        if audit["modules_built"] or audit["cuda_initialized"]:
            failures.append("the web server built a model or touched CUDA")
        if args.device.startswith("cuda") and not any(f.get("cuda_initialized") and f.get("cuda_memory_mb", 0) > 0
                                                      for f in audit.get("worker_facts", [])):
            failures.append("the compute process did not run on cuda")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    print("\n" + ("GPU CHECK FAILED:\n- " + "\n- ".join(failures) if failures else "GPU CHECK PASSED"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
