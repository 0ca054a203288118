"""The scatter at a million points, in headless Chromium at 1280x720 with software WebGL: the density image plus
20,000 points (components.big_scatter) against plotly's plain Scattergl of every point (typed arrays), the same
points in the same run. Prints the time to the first picture, a zoom's round trip and the frame times while
panning (requestAnimationFrame deltas during a mouse drag), and the ratios.

    PYTHONPATH=. python -m bench.big_scatter [--points 1000000]

The page is served by Playwright's request routing (no server): the density design's server side (the figure, a
zoom's view) is timed in Python, its browser side in the page; their sum is the round trip without the network.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import plotly
import plotly.io

from bench.browser import CHROMIUM, CHROMIUM_FLAGS
from components import big_scatter
from compute.generated_layout import generated_layout

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
PAGE = """<!doctype html><html><head><script src="http://bench/plotly.min.js"></script></head>
<body style="margin:0"><div id="graph" style="width:1280px;height:720px"></div></body></html>"""
ZOOM = {"x": [5.0, 12.0], "y": [-2.0, 4.0]}

RECORD_FRAMES = """() => { window.frames_ = []; let last = performance.now(); window.recording = true;
    const tick = now => { window.frames_.push(now - last); last = now; if (window.recording) requestAnimationFrame(tick); };
    requestAnimationFrame(tick); }"""
DRAWN = """() => new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now()))))"""


def plain_figure_js(count: int) -> str:
    """newPlot of every point from binary columns (the typed arrays plotly draws without copying)."""
    return """async () => { const t0 = performance.now();
        const xy = new Float32Array(await (await fetch('http://bench/xy.bin')).arrayBuffer());
        const colour = new Int8Array(await (await fetch('http://bench/colour.bin')).arrayBuffer());
        const n = colour.length, x = new Float32Array(n), y = new Float32Array(n);
        for (let i = 0; i < n; i++) { x[i] = xy[2 * i]; y[i] = xy[2 * i + 1]; }
        await Plotly.newPlot('graph', [{type: 'scattergl', mode: 'markers', x: x, y: y,
            marker: {color: colour, colorscale: 'Portland', size: 3, opacity: 0.85}}],
            {width: 1280, height: 720, dragmode: 'pan', hovermode: 'closest', margin: {l: 20, r: 20, t: 20, b: 20}});
        await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
        return performance.now() - t0; }"""


DENSITY_FIGURE_JS = """async () => { const t0 = performance.now();
    const figure = await (await fetch('http://bench/figure.json')).json();
    figure.layout.width = 1280; figure.layout.height = 720;
    await Plotly.newPlot('graph', figure.data, figure.layout);
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    return performance.now() - t0; }"""

PLAIN_ZOOM_JS = """async (view) => { const t0 = performance.now();
    await Plotly.relayout('graph', {'xaxis.range': view.x, 'yaxis.range': view.y});
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    return performance.now() - t0; }"""

DENSITY_ZOOM_JS = """async (view) => { const t0 = performance.now();
    const patch = await (await fetch('http://bench/zoom.json')).json();
    const gd = document.getElementById('graph');
    await Plotly.relayout(gd, {'xaxis.range': view.x, 'yaxis.range': view.y});
    const data = gd.data.map((t, k) => k === 0 ? Object.assign({}, t, patch.points) : t);
    await Plotly.react(gd, data, Object.assign({}, gd.layout, {images: [patch.density]}));
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    return performance.now() - t0; }"""


def pan_frames(page) -> np.ndarray:
    """requestAnimationFrame deltas (ms) while the mouse drags the plot 300 px in 20 steps."""
    page.evaluate(RECORD_FRAMES)
    page.mouse.move(640, 360)
    page.mouse.down()
    page.mouse.move(940, 460, steps=20)
    page.mouse.up()
    page.evaluate(DRAWN)
    page.evaluate("() => { window.recording = false; }")
    return np.asarray(page.evaluate("() => window.frames_"))[1:]


def measure(points: int) -> dict:
    from playwright.sync_api import sync_playwright

    labels = np.arange(1797) % 10
    layout = generated_layout(labels, labels, points)
    classes = [str(k) for k in range(10)]
    coords = layout["coords"]
    start = time.perf_counter()
    figure = big_scatter.big_scatter(coords, layout["labels"], layout["predicted"], classes, samples=layout["samples"])
    figure_json = plotly.io.json.to_json_plotly(figure)
    server_figure_s = time.perf_counter() - start
    start = time.perf_counter()
    content = big_scatter.view_content(coords, layout["labels"], layout["predicted"], classes, "true",
                                       big_scatter.point_priority(points), ZOOM["x"], ZOOM["y"],
                                       samples=layout["samples"])
    zoom_json = json.dumps({"points": content["points"], "density": content["density"]})
    server_zoom_s = time.perf_counter() - start
    files = {"plotly.min.js": (PLOTLY_JS.read_bytes(), "application/javascript"),
             "index.html": (PAGE.encode(), "text/html"),
             "xy.bin": (np.ascontiguousarray(coords, dtype=np.float32).tobytes(), "application/octet-stream"),
             "colour.bin": (layout["labels"].astype(np.int8).tobytes(), "application/octet-stream"),
             "figure.json": (figure_json.encode(), "application/json"),
             "zoom.json": (zoom_json.encode(), "application/json")}
    rows = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        for design, first_js, zoom_js in (("density + 20,000 points", DENSITY_FIGURE_JS, DENSITY_ZOOM_JS),
                                          ("plain Scattergl", plain_figure_js(points), PLAIN_ZOOM_JS)):
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.route("http://bench/**", lambda route: route.fulfill(
                body=files[route.request.url.rsplit("/", 1)[1]][0],
                content_type=files[route.request.url.rsplit("/", 1)[1]][1]))
            page.goto("http://bench/index.html")
            first_ms = page.evaluate(first_js)
            frames = pan_frames(page)
            zoom_ms = page.evaluate(zoom_js, ZOOM)
            renderer = page.evaluate("""() => { const gl = document.createElement('canvas').getContext('webgl');
                const info = gl && gl.getExtension('WEBGL_debug_renderer_info');
                return info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : 'unknown'; }""")
            server_first = server_figure_s if design.startswith("density") else 0.0
            server_zoom = server_zoom_s if design.startswith("density") else 0.0
            rows[design] = {"first_s": server_first + first_ms / 1000, "zoom_s": server_zoom + zoom_ms / 1000,
                            "frame_p95_ms": float(np.percentile(frames, 95)), "frame_max_ms": float(frames.max()),
                            "frames": int(len(frames)), "renderer": renderer,
                            "bytes": len(figure_json) if design.startswith("density") else
                            len(files["xy.bin"][0]) + len(files["colour.bin"][0])}
            page.close()
        browser.close()
    rows["server"] = {"figure_s": server_figure_s, "zoom_view_s": server_zoom_s, "zoom_bytes": len(zoom_json)}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"load before: {Path('/proc/loadavg').read_text().strip()}")
    rows = measure(args.points)
    print(f"load after:  {Path('/proc/loadavg').read_text().strip()}")
    density, plain = rows["density + 20,000 points"], rows["plain Scattergl"]
    print(f"{args.points:,} points, 1280x720, WebGL renderer: {density['renderer']}")
    print(f"{'design':26s} {'first picture':>14s} {'zoom':>8s} {'pan p95':>9s} {'pan max':>9s} {'frames':>7s} {'bytes':>12s}")
    for name in ("density + 20,000 points", "plain Scattergl"):
        row = rows[name]
        print(f"{name:26s} {row['first_s']:13.2f}s {row['zoom_s']:7.2f}s {row['frame_p95_ms']:7.0f}ms "
              f"{row['frame_max_ms']:7.0f}ms {row['frames']:7d} {row['bytes']:12,d}")
    print(f"server side of the density design: figure {rows['server']['figure_s']:.2f} s, a zoom's view "
          f"{rows['server']['zoom_view_s']:.2f} s ({rows['server']['zoom_bytes']:,} bytes)")
    print(f"ratios plain / density: first picture {plain['first_s'] / density['first_s']:.1f}x, zoom "
          f"{plain['zoom_s'] / density['zoom_s']:.1f}x, pan frame p95 {plain['frame_p95_ms'] / density['frame_p95_ms']:.1f}x")


if __name__ == "__main__":
    main()
