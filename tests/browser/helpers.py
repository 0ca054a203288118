"""Page helpers: wait for Plotly graphs, click a WebGL scatter point at its pixel, pick dropdown options."""
from __future__ import annotations

SCATTER_READY = """() => { const gd = document.querySelector('#scatter .js-plotly-plot');
    return !!(gd && gd.data && gd.data.some(t => t.name !== 'selected' && t.x && t.x.length)); }"""
# The layout asked for, not PCA shown while t-SNE converges: its title no longer says "on its way" or "converging".
SCATTER_FINAL = """() => { const gd = document.querySelector('#scatter .js-plotly-plot');
    const title = (gd && gd.layout && gd.layout.title && gd.layout.title.text) || '';
    return !!(gd && gd.data && gd.data.some(t => t.name !== 'selected' && t.x && t.x.length)) && title.length > 0
        && !title.includes('on its way') && !title.includes('converging'); }"""


RING_ON = """(index) => { const gd = document.querySelector('#scatter .js-plotly-plot');
    const ring = gd && gd.data && gd.data.find(t => t.name === 'selected');
    return !!(ring && ring.customdata && ring.customdata.length && Number(ring.customdata[0][0]) === index); }"""


def wait_for_scatter(page, timeout: float = 120_000, final: bool = True) -> None:
    """Wait for the scatter's points; with ``final`` for the layout asked for (points streamed in while t-SNE
    converges move, so a point chosen before would not be there to click)."""
    page.wait_for_function(SCATTER_FINAL if final else SCATTER_READY, timeout=timeout)


def scatter_title(page) -> str:
    return page.evaluate("() => document.querySelector('#scatter .js-plotly-plot').layout.title.text")


def scatter_point(page, rank: int = 0) -> dict:
    """The ``rank``-th most isolated point of the scatter: its pixel in the page (Scattergl draws on a canvas),
    sample index and true class name. Isolated points are chosen so that no neighbour drawn on top can take a
    click, away from the edges where the mode bar floats."""
    page.evaluate("() => document.querySelector('#scatter').scrollIntoView({block: 'center'})")
    target = page.evaluate(
        """(rank) => { const gd = document.querySelector('#scatter .js-plotly-plot');
            const fl = gd._fullLayout; const box = gd.getBoundingClientRect(); const points = [];
            gd.data.forEach(tr => { if (tr.name === 'selected' || !tr.x || !tr.customdata) return;
                tr.x.forEach((x, k) => points.push({px: fl.xaxis.d2p(x), py: fl.yaxis.d2p(tr.y[k]),
                    index: Number(tr.customdata[k][0]), name: String(tr.customdata[k][1])})); });
            points.forEach(p => { p.gap = Infinity; points.forEach(q => { if (q !== p)
                p.gap = Math.min(p.gap, Math.hypot(p.px - q.px, p.py - q.py)); }); });
            const inside = points.filter(p => p.px > 30 && p.py > 45 && p.px < fl._size.w - 30 && p.py < fl._size.h - 30);
            inside.sort((a, b) => b.gap - a.gap);
            const p = inside[rank];
            return {x: box.left + fl._size.l + p.px, y: box.top + fl._size.t + p.py, index: p.index, name: p.name}; }""",
        rank,
    )
    return target


def click_scatter_point(page, rank: int = 0) -> dict:
    """Click the ``rank``-th most isolated point (:func:`scatter_point`) and wait until the page has taken it."""
    target = scatter_point(page, rank)
    page.mouse.click(target["x"], target["y"])
    wait_until_taken(page, target)
    return target


def wait_until_taken(page, target: dict, tries: int = 3) -> None:
    """Wait for the ring on a clicked point (:func:`scatter_point`'s ``target``). A WebGL canvas loses a click that
    lands while the figure is being redrawn (a panel's answer arriving), so a lost click is given again."""
    for attempt in range(tries):
        try:
            page.wait_for_function(RING_ON, arg=target["index"], timeout=15_000)
            return
        except Exception:  # playwright's TimeoutError: click again
            if attempt < tries - 1:
                page.mouse.click(target["x"], target["y"])


def pick_option(page, dropdown_id: str, value: str) -> None:
    """Open a dcc.Dropdown and choose the option whose value is ``value``."""
    page.click(f"#{dropdown_id}")
    page.click(f".dash-dropdown-option:has(input[value='{value}'])")


def figure_signature(page, selector: str) -> str:
    """A string that changes whenever the Plotly figure inside ``selector`` gets new data or a new title."""
    return page.evaluate(
        """(sel) => { const gd = document.querySelector(sel + ' .js-plotly-plot') || document.querySelector(sel);
            if (!gd || !gd.data) return '';
            const title = gd.layout && gd.layout.title ? gd.layout.title.text : '';
            return title + '|' + JSON.stringify(gd.data.map(t => t.z || t.x || [])).slice(0, 4000); }""",
        selector,
    )


def wait_for_change(page, selector: str, before: str, timeout: float = 60_000) -> str:
    page.wait_for_function(
        """([sel, before]) => { const gd = document.querySelector(sel + ' .js-plotly-plot') || document.querySelector(sel);
            if (!gd || !gd.data) return false;
            const title = gd.layout && gd.layout.title ? gd.layout.title.text : '';
            return (title + '|' + JSON.stringify(gd.data.map(t => t.z || t.x || [])).slice(0, 4000)) !== before; }""",
        arg=[selector, before], timeout=timeout,
    )
    return figure_signature(page, selector)


def wait_for_detail(page, index: int, timeout: float = 60_000) -> str:
    """Wait until the detail panel shows sample ``index``; returns its title text."""
    page.wait_for_function(
        "(i) => { const el = document.querySelector('#detail-title'); return !!el && el.innerText.includes('#' + i + ' '); }",
        arg=index, timeout=timeout,
    )
    return page.inner_text("#detail-title")


# The share of the screen a view covers: its section's box inside the viewport, less what the tour's banner (which
# stays at the top of the screen) hides.
VIEW_COVERAGE = """
(view) => {
    const section = Array.from(document.querySelectorAll('.view-section')).find(element => {
        try { return JSON.parse(element.id).name === view; } catch (error) { return false; }
    });
    if (!section || !section.checkVisibility()) { return 0; }
    const banner = document.getElementById('tour-banner');
    const top = banner && banner.checkVisibility() ? Math.max(0, banner.getBoundingClientRect().bottom) : 0;
    const box = section.getBoundingClientRect(), width = window.innerWidth, height = window.innerHeight;
    const w = Math.max(0, Math.min(box.right, width) - Math.max(box.left, 0));
    const h = Math.max(0, Math.min(box.bottom, height) - Math.max(box.top, top));
    return (w * h) / (width * height);
}
"""
# The view has drawn: a figure in its section holds data, and none of its panels is still computing.
VIEW_DRAWN = """
(view) => {
    const section = Array.from(document.querySelectorAll('.view-section')).find(element => {
        try { return JSON.parse(element.id).name === view; } catch (error) { return false; }
    });
    if (!section) { return false; }
    // _fullData: numpy arrays arrive base64-encoded in gd.data, decoded to typed arrays there.
    const drawn = Array.from(section.querySelectorAll('.js-plotly-plot')).some(gd => (gd._fullData || []).some(
        t => ['x', 'y', 'z'].some(k => t[k] && t[k].length)));
    const running = Array.from(section.querySelectorAll('.progress-block')).some(b => b.checkVisibility());
    return drawn && !running;
}
"""
