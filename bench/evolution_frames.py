"""Time per animation frame of the evolution view in headless Chromium (1,797 points, 11 frames, 3 rounds).

``python -m bench.evolution_frames http://127.0.0.1:8050/`` against a running server (the evolution job cached or
computed on the page's first load). Each frame is drawn with ``Plotly.animate`` and timed to the next paint.
Baselines, in the same page: the same figure and frames in a bare plotly plot of the same size, outside Dash, with
plotly's default config (its WebGL canvas at pixel ratio 2 whatever the screen) and with the page's own pixel ratio:
the first ratio is the gain over plain plotly, the second what the page adds to plotly's own redraw (a Dash store
set on every frame once doubled it).
"""
from __future__ import annotations

import json
import sys

from playwright.sync_api import sync_playwright

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCATTER = "#evolution-scatter .js-plotly-plot"
READY = ("() => { const gd = document.querySelector('%s'); return !!(gd && gd._transitionData && "
         "gd._transitionData._frames && gd._transitionData._frames.length > 5); }" % SCATTER)

TIME_FRAMES = """
async ([selector, rounds]) => {
    async function timeFrames(gd) {
        const names = gd._transitionData._frames.map(f => f.name);
        const times = [];
        for (let round = 0; round < rounds; round++) {
            for (const name of names) {
                const t0 = performance.now();
                await Plotly.animate(gd, [name], {frame: {duration: 0, redraw: true}, transition: {duration: 0},
                                                  mode: 'immediate'});
                await new Promise(r => requestAnimationFrame(() => r()));
                times.push(performance.now() - t0);
            }
        }
        times.sort((a, b) => a - b);
        return {n: times.length, p50: times[Math.floor(times.length / 2)],
                p95: times[Math.floor(times.length * 0.95)]};
    }
    const gd = document.querySelector(selector);
    const page = await timeFrames(gd);
    // The baselines: the same figure and frames in a bare plot of the same size, outside Dash (no listeners), with
    // plotly's default config (WebGL at pixel ratio 2) and with the page's own WebGL pixel ratio.
    async function bare(config) {
        const div = document.createElement('div');
        div.style.width = gd.offsetWidth + 'px'; div.style.height = gd.offsetHeight + 'px';
        document.body.appendChild(div);
        await Plotly.newPlot(div, gd.data, JSON.parse(JSON.stringify(gd.layout)), config);
        await Plotly.addFrames(div, gd._transitionData._frames.map(f => ({name: f.name, data: f.data, traces: f.traces})));
        const times = await timeFrames(div);
        Plotly.purge(div); div.remove();
        return times;
    }
    const baseline = await bare({});
    const same = await bare({plotGlPixelRatio: gd._context.plotGlPixelRatio});
    return {page: page, bare_plot: baseline, bare_plot_same_ratio: same, page_gl_pixel_ratio: gd._context.plotGlPixelRatio,
            traces: gd.data.length,
                points: gd._fullData.reduce((n, t) => n + (t.name !== 'selected' && t.name !== 'path of the selected image' ? t._length || 0 : 0), 0)};
}
"""


def measure(url: str, rounds: int = 3) -> dict:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "?views=evolution")
        page.wait_for_function(READY, timeout=300_000)
        result = page.evaluate(TIME_FRAMES, [SCATTER, rounds])
        browser.close()
    result["page_over_bare_p50"] = result["page"]["p50"] / result["bare_plot"]["p50"]
    result["page_over_bare_same_ratio_p50"] = result["page"]["p50"] / result["bare_plot_same_ratio"]["p50"]
    return result


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8050/"), indent=1))
