"""Journey: click a point and see its nearest neighbours; drop a PNG and see its panels and its star; box-select a
cluster and see its gallery and export it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.browser.helpers import click_scatter_point, wait_for_scatter

WAIT = 600_000  # a random resnet18 on a folder, on a busy 2-core machine

IMAGES_LOADED = """(selector) => { const images = [...document.querySelectorAll(selector)];
    return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0); }"""

# A box around the densest spot of the scatter's points, in page pixels (from Plotly's own axes).
CLUSTER_BOX = """() => { const gd = document.querySelector('#scatter .js-plotly-plot');
    const fl = gd._fullLayout; const box = gd.getBoundingClientRect(); const points = [];
    gd.data.forEach(t => { if (!t.customdata || !t.x || ['selected', 'highlight'].includes(t.name)) return;
        t.x.forEach((x, k) => points.push([fl.xaxis.d2p(x), fl.yaxis.d2p(t.y[k])])); });
    let best = points[0], most = -1;
    points.forEach(p => { const near = points.filter(q => Math.abs(q[0] - p[0]) < 40 && Math.abs(q[1] - p[1]) < 40).length;
        if (near > most) { most = near; best = p; } });
    const left = box.left + fl._size.l, top = box.top + fl._size.t;
    return {x0: left + best[0] - 40, y0: top + best[1] - 40, x1: left + best[0] + 40, y1: top + best[1] + 40}; }"""


def digit_png(path: Path) -> Path:
    """A hand-drawn-looking '1': a dark stroke on white paper."""
    pixels = np.full((64, 64), 255, np.uint8)
    pixels[8:56, 28:36] = 0
    Image.fromarray(pixels).save(path)
    return path


def test_neighbours_upload_and_gallery(page, server_url, tmp_path):
    journey(page, server_url, tmp_path, export_prefix="digits#")


def image_folder(root: Path) -> Path:
    """Three classes of 16 small colour pictures each (a disc, a bar, a square on noise)."""
    generator = np.random.default_rng(0)
    for name, colour in (("discs", (220, 40, 40)), ("bars", (40, 200, 40)), ("squares", (40, 40, 220))):
        (root / name).mkdir(parents=True)
        for k in range(16):
            pixels = generator.integers(0, 60, (48, 48, 3), dtype=np.uint8)
            y, x = np.mgrid[:48, :48]
            shape = {"discs": (y - 24) ** 2 + (x - 24) ** 2 < (8 + k % 6) ** 2, "bars": abs(x - 20 - k % 8) < 4,
                     "squares": (abs(x - 24) < 10) & (abs(y - 24) < 10 - k % 4)}[name]
            pixels[shape] = colour
            Image.fromarray(pixels).save(root / name / f"{k}.png")
    return root


def test_the_same_journey_on_an_image_folder_with_a_random_resnet18(page, tmp_path):
    from tests.browser.conftest import start_server, stop_server

    folder = image_folder(tmp_path / "shapes")
    process, url = start_server("--model", "resnet18", "--weights", "random", "--data", str(folder),
                                "--image-size", "64", "--embedding", "pca")
    try:
        journey(page, url, tmp_path, export_prefix=str(folder), digit_is_like_the_data=False)
    finally:
        stop_server(process)


def journey(page, url: str, tmp_path: Path, export_prefix: str, digit_is_like_the_data: bool = True) -> None:
    page.goto(url)
    wait_for_scatter(page, WAIT)

    # 1. A click lists the point's nearest neighbours, its own picture shown large.
    point = click_scatter_point(page)
    page.wait_for_function("(index) => { const big = document.querySelector('#neighbours-result .gallery-large-image');"
                           " return big && big.src.includes('/thumbnail/' + index + '.png'); }",
                           arg=point["index"], timeout=WAIT)
    page.wait_for_function(IMAGES_LOADED, arg="#neighbours-result img", timeout=WAIT)
    assert page.locator("#neighbours-result .gallery-tile-button").count() == 12
    first = page.get_attribute("#neighbours-result .gallery-tile-button img", "src")
    for attempt in range(3):  # a click that lands while the panel redraws is lost: the large picture says so
        page.click("#neighbours-result .gallery-tile-button")  # a neighbour, clicked, becomes the selection
        try:
            page.wait_for_function("(src) => { const big = document.querySelector("
                                   "'#neighbours-result .gallery-large-image'); return big && big.src.endsWith(src); }",
                                   arg=first, timeout=WAIT if attempt == 2 else 30_000)
            break
        except Exception:  # playwright's TimeoutError: click again
            first = page.get_attribute("#neighbours-result .gallery-tile-button img", "src")

    # 2. A file that is not an image gets a message; the page stays. A text file and a file over the limit are
    #    refused in the browser before they are read (dcc.Upload alone would drop them without a word).
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    page.set_input_files("#upload-drop input[type=file]", str(bad))
    page.wait_for_function("() => document.querySelector('#upload-message').innerText.includes('not an image')",
                           timeout=WAIT)
    sent = []
    page.on("request", lambda request: sent.append(len(request.post_data_buffer or b"")))
    text = tmp_path / "notes.txt"
    text.write_text("a text file dropped by mistake")
    page.set_input_files("#upload-drop input[type=file]", str(text))
    page.wait_for_function("() => document.querySelector('#upload-message').innerText.includes("
                           "'notes.txt is not a PNG or JPEG')", timeout=WAIT)
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\x89PNG" + bytes(30 * 1024**2))
    page.set_input_files("#upload-drop input[type=file]", str(huge))
    page.wait_for_function("() => document.querySelector('#upload-message').innerText.includes("
                           "'huge.png is 30.0 MB; the limit is 10 MB')", timeout=WAIT)
    assert max(sent, default=0) < 1024**2  # neither file's bytes went to the server

    # 3. A PNG opens in the panels, gets neighbours, and lands in the scatter as a star.
    page.set_input_files("#upload-drop input[type=file]", str(digit_png(tmp_path / "my-one.png")))
    page.wait_for_function("() => document.querySelector('#upload-message').innerText.includes('my-one.png')",
                           timeout=WAIT)
    page.wait_for_function("() => [...document.querySelectorAll('[id*=attribution-graph] .js-plotly-plot')].some("
                           "gd => String(gd.layout.title.text).endsWith('· your image: my-one.png'))", timeout=WAIT)
    page.wait_for_function("() => { const big = document.querySelector('#neighbours-result .gallery-large-image');"
                           " return big && big.src.includes('/thumbnail/upload/'); }", timeout=WAIT)
    page.wait_for_function("() => { const gd = document.querySelector('#scatter .js-plotly-plot');"
                           " const star = gd.data.find(t => t.name === 'highlight-new');"
                           " return star && star.x.length === 1; }", timeout=WAIT)
    assert "The model says" in page.inner_text("#upload-prediction")
    # A digit among digits: no warning; a digit among a folder of shapes is unlike every one of them, and says so.
    assert ("unlike the data set" in page.inner_text("#upload-prediction")) != digit_is_like_the_data
    titles = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => "
                           "String((gd.layout.title || {}).text || ''))")
    assert not [title for title in titles if "#-1" in title] and "#-1" not in page.inner_text("body")

    # 4. Box-select a cluster: the gallery shows its images and class histogram; the list of files exports.
    page.click("#gallery-drag label:has-text('box select')")
    page.wait_for_function("() => document.querySelector('#scatter .js-plotly-plot')._fullLayout.dragmode === 'select'",
                           timeout=WAIT)
    page.evaluate("() => document.querySelector('#scatter').scrollIntoView({block: 'center'})")
    box = page.evaluate(CLUSTER_BOX)
    page.mouse.move(box["x0"], box["y0"])
    page.mouse.down()
    page.mouse.move(box["x1"], box["y1"], steps=12)
    page.mouse.up()
    page.wait_for_function(IMAGES_LOADED, arg="#gallery-grid img", timeout=WAIT)
    count_text = page.inner_text("#gallery-summary")
    assert "selected" in count_text
    selected = int(count_text.split()[0])
    bars = page.evaluate("() => document.querySelector('#gallery-histogram .js-plotly-plot').data[0].y")
    assert sum(bars) == selected
    with page.expect_download(timeout=WAIT) as download:
        page.click("#gallery-export")
    lines = Path(download.value.path()).read_text().splitlines()
    assert len(lines) == selected and all(line.startswith(export_prefix) for line in lines)
    assert not page.errors, page.errors
