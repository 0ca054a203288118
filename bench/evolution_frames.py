"""Time per animation frame of the evolution view in headless Chromium (1,797 points, 11 frames, 3 rounds).

``python -m bench.evolution_frames http://127.0.0.1:8050/`` against a running server (the evolution job cached or
computed on the page's first load). Each frame is drawn with ``Plotly.animate`` and timed to the next paint.
"""
import sys, time, json
from playwright.sync_api import sync_playwright
url = sys.argv[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
    pg = b.new_page(viewport={"width":1400,"height":1000})
    pg.goto(url + "?views=evolution")
    pg.wait_for_function("() => { const gd = document.querySelector('#evolution-scatter .js-plotly-plot'); return !!(gd && gd._transitionData && gd._transitionData._frames && gd._transitionData._frames.length > 5); }", timeout=300000)
    res = pg.evaluate("""async () => {
        const gd = document.querySelector('#evolution-scatter .js-plotly-plot');
        const names = gd._transitionData._frames.map(f => f.name);
        const times = [];
        for (let round = 0; round < 3; round++) {
          for (const name of names) {
            const t0 = performance.now();
            await Plotly.animate(gd, [name], {frame: {duration: 0, redraw: true}, transition: {duration: 0}, mode: 'immediate'});
            await new Promise(r => requestAnimationFrame(() => r()));
            times.push(performance.now() - t0);
          }
        }
        times.sort((a, b) => a - b);
        return {n: times.length, p50: times[Math.floor(times.length/2)], p95: times[Math.floor(times.length*0.95)]};
    }""")
    print(json.dumps(res))
    b.close()
