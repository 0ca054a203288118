"""Text as the reader sees it: the boxes of every visible text in the page (HTML text and the SVG text Plotly draws),
and what is wrong with them: two texts that overlap, a text clipped by its figure or by a box that hides its
overflow, and page text whose colour is too close to its background to read.

``text_problems(page)`` returns one line per problem, naming the texts, so a failing test says what to fix.
"""
from __future__ import annotations

# One box per line of each text node (Range.getClientRects) and one per SVG <text>, in page coordinates.
# Overlap: two boxes of different texts whose intersection is more than a quarter of the lower one's height and
# more than 2 px wide (glyph boxes include the font's line gap, so touching lines are not an overlap).
# Clipping: a figure's text outside its own SVG, or page text outside an ancestor that clips (overflow other than
# visible) or outside the page's width; an input whose value is wider than the input.
# Contrast: WCAG's ratio of page text to the first opaque background behind it, at least 4.5 (3 for large text);
# text of disabled controls is exempt, as WCAG exempts inactive controls.
MEASURE = r"""
() => {
    const problems = [], boxes = [];
    const pageWidth = document.documentElement.clientWidth;
    const name = text => JSON.stringify(String(text).trim().replace(/\s+/g, ' ').slice(0, 60));
    const shown = el => el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true});
    const where = el => {
        const section = el.closest('[id]');
        return section ? section.id.slice(0, 60) : el.tagName;
    };
    // SVG text inside Plotly figures.
    for (const gd of document.querySelectorAll('.js-plotly-plot')) {
        if (!shown(gd)) { continue; }
        const frame = gd.querySelector('.main-svg');
        if (!frame) { continue; }
        const limit = frame.getBoundingClientRect();
        const card = gd.closest('.card');
        if (card) {  // a figure that kept its width when its column narrowed runs out of its card
            const c = card.getBoundingClientRect();
            if (limit.right > c.right + 1 || limit.left < c.left - 1) {
                problems.push(`clipped: figure ${where(gd)} is wider than its card (${Math.round(limit.left)}..` +
                              `${Math.round(limit.right)} in ${Math.round(c.left)}..${Math.round(c.right)})`);
            }
        }
        for (const t of gd.querySelectorAll('.main-svg text')) {
            if (!t.textContent.trim() || t.closest('.hoverlayer') || !shown(t)) { continue; }
            const r = t.getBoundingClientRect();
            if (r.width < 1 || r.height < 1) { continue; }
            const label = `figure ${where(gd)} text ${name(t.textContent)}`;
            if (r.left < limit.left - 1 || r.right > limit.right + 1 || r.top < limit.top - 1 || r.bottom > limit.bottom + 1) {
                problems.push(`clipped: ${label} (box ${Math.round(r.left)}..${Math.round(r.right)} x ` +
                              `${Math.round(r.top)}..${Math.round(r.bottom)} outside the figure ` +
                              `${Math.round(limit.left)}..${Math.round(limit.right)} x ${Math.round(limit.top)}..${Math.round(limit.bottom)})`);
            }
            boxes.push({r: r, owner: t, label: label});
        }
    }
    // Page text.
    const colour = value => {
        const m = String(value).match(/rgba?\(([^)]+)\)/);
        if (!m) { return null; }
        const parts = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
        return {r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1};
    };
    const luminance = c => {
        const lin = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
        return 0.2126 * lin(c.r) + 0.7152 * lin(c.g) + 0.0722 * lin(c.b);
    };
    const behind = el => {
        const layers = [];
        for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
            const c = colour(getComputedStyle(node).backgroundColor);
            if (c && c.a > 0) { layers.push(c); if (c.a >= 1) { break; } }
        }
        let result = colour(getComputedStyle(document.body).backgroundColor) || {r: 255, g: 255, b: 255, a: 1};
        for (const c of layers.reverse()) {
            result = {r: c.r * c.a + result.r * (1 - c.a), g: c.g * c.a + result.g * (1 - c.a),
                      b: c.b * c.a + result.b * (1 - c.a), a: 1};
        }
        return result;
    };
    const clippers = el => {
        const found = [];
        for (let node = el.parentElement; node && node !== document.body; node = node.parentElement) {
            const style = getComputedStyle(node);
            if (style.overflowX !== 'visible' || style.overflowY !== 'visible') { found.push(node); }
        }
        return found;
    };
    const walker = document.createTreeWalker(document.querySelector('.page') || document.body, NodeFilter.SHOW_TEXT);
    const contrastSeen = new Set();
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const el = node.parentElement;
        if (!node.textContent.trim() || !el || el.closest('.js-plotly-plot, script, style, noscript, option')
            || !shown(el)) { continue; }
        const range = document.createRange();
        range.selectNodeContents(node);
        const rects = Array.from(range.getClientRects()).filter(r => r.width >= 1 && r.height >= 1);
        if (!rects.length) { continue; }
        const label = `page ${where(el)} text ${name(node.textContent)}`;
        for (const r of rects) {
            boxes.push({r: r, owner: node, label: label});
            if (r.right > pageWidth + 1 || r.left < -1) {
                problems.push(`clipped: ${label} runs past the page's width (${Math.round(r.right)} > ${pageWidth})`);
            }
            for (const clip of clippers(el)) {
                const c = clip.getBoundingClientRect();
                const style = getComputedStyle(clip);
                const x = style.overflowX !== 'visible', y = style.overflowY !== 'visible';
                // A box that scrolls (a code block, a long list) shows the rest on scrolling: not clipped.
                const scrolls = ['auto', 'scroll'].includes(style.overflowX) || ['auto', 'scroll'].includes(style.overflowY);
                if (scrolls) { continue; }
                if ((x && (r.left < c.left - 1 || r.right > c.right + 1)) || (y && (r.top < c.top - 2 || r.bottom > c.bottom + 2))) {
                    problems.push(`clipped: ${label} by <${clip.tagName.toLowerCase()} class="${clip.className}">`);
                    break;
                }
            }
        }
        if (!contrastSeen.has(el) && !el.closest(':disabled, [aria-disabled="true"], .tour-nav-off')) {
            contrastSeen.add(el);
            const style = getComputedStyle(el), fg = colour(style.color), bg = behind(el);
            if (fg) {
                let opacity = 1;
                for (let n = el; n && n.nodeType === 1; n = n.parentElement) { opacity *= Number(getComputedStyle(n).opacity); }
                const alpha = fg.a * opacity;
                const seen = {r: fg.r * alpha + bg.r * (1 - alpha), g: fg.g * alpha + bg.g * (1 - alpha),
                              b: fg.b * alpha + bg.b * (1 - alpha)};
                const [hi, lo] = [luminance(seen), luminance(bg)].sort((a, b) => b - a);
                const ratio = (hi + 0.05) / (lo + 0.05);
                const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
                const needed = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
                if (ratio < needed) {
                    problems.push(`hard to read: ${label} (contrast ${ratio.toFixed(2)} < ${needed}, ${style.color} on ` +
                                  `rgb(${Math.round(bg.r)}, ${Math.round(bg.g)}, ${Math.round(bg.b)}))`);
                }
            }
        }
    }
    // Inputs: the value shown must fit the box.
    for (const input of document.querySelectorAll('.page input[type=text], .page input[type=number], .page input:not([type])')) {
        if (!shown(input) || !input.value) { continue; }
        if (input.scrollWidth > input.clientWidth + 1) {
            problems.push(`clipped: input ${where(input)} value ${name(input.value)} is wider than its box`);
        }
    }
    // Overlaps, found by sweeping the boxes top to bottom.
    boxes.sort((a, b) => a.r.top - b.r.top);
    for (let i = 0; i < boxes.length; i++) {
        const a = boxes[i];
        for (let j = i + 1; j < boxes.length && boxes[j].r.top < a.r.bottom; j++) {
            const b = boxes[j];
            if (a.owner === b.owner || a.owner.contains(b.owner) || b.owner.contains(a.owner)) { continue; }
            const w = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
            const h = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
            if (w > 2 && h > 0.25 * Math.min(a.r.height, b.r.height)) {
                problems.push(`overlap: ${a.label} and ${b.label} (${Math.round(w)}x${Math.round(h)} px)`);
            }
        }
    }
    return Array.from(new Set(problems));
}
"""

# Every visible figure drawn in the page's theme and its text fitted (dashboard/views/figure_text.py).
FIGURES_SETTLED = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).filter(gd => gd.checkVisibility())
    .every(gd => gd.getAttribute('data-text-fitted') !== null)
"""


def text_problems(page) -> list[str]:
    """What is wrong with the page's text as it is drawn now (see MEASURE)."""
    return page.evaluate(MEASURE)
