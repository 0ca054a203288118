"""Text that fits its figure, in the browser: titles, subtitles and subplot titles wrapped (or shrunk, never below
the body size) to the width the figure has on this screen, and the top margin grown to hold them.

A figure builder cannot know how wide its figure will be drawn (a 1280 laptop, a 1920 projector, a column of two)
nor how large the theme's text is, so a title that fits on one screen is clipped on another ("1,797 imag") and a
subtitle written for 14 px text runs into the subplot titles at 20 px. Plotly does not wrap text, so after every
drawing the page measures each text with the figure's own font and wraps it with ``<br>`` at word boundaries,
then measures the drawn title block and moves the plot area below it (plus the subplot titles and the top tick
label), growing a fixed-height figure by as much, so its images keep their size.

Values set here are recorded in layers (see ``LAYERS`` in the script): the theme switch sets its values on the
server's, this fit sets its own on the theme's, and each can read back the value below it; so a later theme change
or a redraw from the server starts again from the right values. Included in the theme switch's script
(:mod:`dashboard.views.theme_switch`), which calls ``featurescopeFit.fit(gd, bodySize)`` after its own restyle.
"""
from __future__ import annotations

FIT = """
window.featurescopeLayers = window.featurescopeLayers || (function () {
    // The writers of layout values, top first: a value a writer set and finds unchanged is undone to what it
    // found before it (its 'before'); any other value is the one below it.
    const LAYERS = ['fit', 'theme'];
    const parse = path => path.replace(/\\[(\\d+)\\]/g, '.$1').split('.');
    function get(object, path) {
        let value = object;
        for (const part of parse(path)) { if (value === undefined || value === null) { return undefined; } value = value[part]; }
        return value;
    }
    function below(gd, layer, path) {
        let value = get(gd.layout, path);
        const records = gd._featurescopeLayers || {};
        for (const name of LAYERS) {
            const record = records[name] && records[name][path];
            if (record && record.set === value) { value = record.before; }
            if (name === layer) { break; }
        }
        return value;
    }
    function remember(gd, layer, path, set, before) {
        gd._featurescopeLayers = gd._featurescopeLayers || {};
        (gd._featurescopeLayers[layer] = gd._featurescopeLayers[layer] || {})[path] = {set: set, before: before};
    }
    return {get: get, below: below, remember: remember};
})();

window.featurescopeFit = window.featurescopeFit || (function () {
    const layers = window.featurescopeLayers;
    const canvas = document.createElement('canvas').getContext('2d');
    const GAP = 6;
    const plain = text => String(text === undefined || text === null ? '' : text)
        .replace(/<br\\s*\\/?>/gi, ' ').replace(/<[^>]*>/g, '');
    function width(text, size, family) {
        canvas.font = size + 'px ' + (family || 'sans-serif');
        return canvas.measureText(plain(text)).width;
    }
    // Words of a text, never splitting inside a tag (<span style="...">).
    function words(text) {
        const out = []; let word = '', depth = 0;
        for (const ch of String(text)) {
            if (ch === '<') { depth += 1; } else if (ch === '>') { depth = Math.max(0, depth - 1); }
            if (ch === ' ' && depth === 0) { if (word) { out.push(word); } word = ''; } else { word += ch; }
        }
        if (word) { out.push(word); }
        return out;
    }
    // ``text`` with <br> where a line would be wider than ``room`` (the lines the text already has are kept).
    function wrapped(text, size, family, room) {
        return String(text).split(/<br\\s*\\/?>/i).map(line => {
            const lines = []; let current = '';
            for (const word of words(line)) {
                const tried = current ? current + ' ' + word : word;
                if (current && width(tried, size, family) > room) { lines.push(current); current = word; }
                else { current = tried; }
            }
            lines.push(current);
            return lines.join('<br>');
        }).join('<br>');
    }
    // The size (never below ``body``, never above ``size``) and text that fit ``room``: shrink first, then wrap.
    function fitted(text, size, family, room, body) {
        if (!text || !(room > 0)) { return [size, text]; }
        const longest = Math.max(...String(text).split(/<br\\s*\\/?>/i).map(line => width(line, size, family)));
        if (longest <= room) { return [size, text]; }
        const shrunk = Math.max(Math.min(size, body), Math.floor(size * room / longest));
        return [shrunk, wrapped(text, shrunk, family, room)];
    }
    function columnWidth(full, annotation) {
        let best = full._size.w;
        for (const key of Object.keys(full).filter(k => /^xaxis[0-9]*$/.test(k))) {
            const domain = full[key].domain || [0, 1];
            if (annotation.x >= domain[0] - 1e-6 && annotation.x <= domain[1] + 1e-6) {
                best = Math.min(best, (domain[1] - domain[0]) * full._size.w);
            }
        }
        return best;
    }
    const subplotTitle = a => a.yref === 'paper' && a.yanchor === 'bottom' && !a.showarrow;
    // Step 1: the texts, wrapped and shrunk to the figure's width. Returns the relayout it needs (or null).
    function textUpdate(gd, body) {
        const full = gd._fullLayout, update = {};
        const family = (full.font && full.font.family) || 'sans-serif';
        const want = (path, value) => {
            const base = layers.below(gd, 'fit', path);
            if (value !== layers.get(gd.layout, path)) { update[path] = value; }
            layers.remember(gd, 'fit', path, value, base);
        };
        const title = gd.layout.title || {};
        const titleText = layers.below(gd, 'fit', 'title.text');
        if (titleText) {
            const room = full.width * (1 - (full.title.x || 0)) - 12;
            const size = layers.below(gd, 'fit', 'title.font.size') || (full.title.font && full.title.font.size);
            const [fitSize, fitText] = fitted(titleText, size, (full.title.font && full.title.font.family) || family,
                                              room, body);
            want('title.text', fitText);
            if (fitSize !== size) { want('title.font.size', fitSize); }
            const subtitle = layers.below(gd, 'fit', 'title.subtitle.text');
            if (subtitle && title.subtitle) {
                const subSize = (full.title.subtitle && full.title.subtitle.font && full.title.subtitle.font.size) || body;
                want('title.subtitle.text', wrapped(subtitle, subSize, family, room));
            }
        }
        (gd.layout.annotations || []).forEach((a, k) => {
            if (!subplotTitle(a) || !a.text) { return; }
            const path = 'annotations[' + k + ']';
            const text = layers.below(gd, 'fit', path + '.text');
            const size = layers.below(gd, 'fit', path + '.font.size') || (full.font && full.font.size) || body;
            const [fitSize, fitText] = fitted(text, size, family, columnWidth(full, a) - 6, body);
            want(path + '.text', fitText);
            if (fitSize !== size) { want(path + '.font.size', fitSize); }
        });
        return Object.keys(update).length ? update : null;
    }
    // Step 2: the title block inside the figure (Plotly moves a title of several lines up by its extra lines);
    // a legend too tall for the plot area laid out in rows below it instead of scrolling; the plot area below the
    // drawn title block, the subplot titles and the top tick labels.
    function layoutUpdate(gd) {
        const full = gd._fullLayout, svg = gd.querySelector('.main-svg');
        if (!svg) { return null; }
        const top = svg.getBoundingClientRect().top;
        let titleTop = Infinity, titleBottom = 0;
        gd.querySelectorAll('.g-gtitle text').forEach(t => {
            if (!t.textContent.trim()) { return; }
            const box = t.getBoundingClientRect();
            titleTop = Math.min(titleTop, box.top - top);
            titleBottom = Math.max(titleBottom, box.bottom - top);
        });
        if (titleTop < Infinity) {
            const pad = layers.get(gd.layout, 'title.pad.t') || 0, server = layers.below(gd, 'fit', 'title.pad.t') || 0;
            const natural = titleTop - (pad - server);  // where the title's top would be at the server's pad
            const wanted = natural < 2 ? Math.ceil(server + 4 - natural) : server;
            if (Math.abs(wanted - pad) > 1) {
                layers.remember(gd, 'fit', 'title.pad.t', wanted, server);
                return {'title.pad.t': wanted};
            }
        }
        const legend = full.legend;
        if (legend && full.showlegend !== false && legend.orientation === 'v' && legend._height
            && legend._effHeight && legend._effHeight < legend._height - 1) {
            // In rows at the figure's foot; above the plot where play buttons and sliders take the foot.
            const foot = !(full.sliders || []).length && !(full.updatemenus || []).length;
            const rows = {'legend.orientation': 'h', 'legend.x': 0, 'legend.xanchor': 'left',
                          'legend.y': foot ? 0 : 1, 'legend.yanchor': 'bottom',
                          'legend.yref': foot ? 'container' : 'paper', 'legend.title.side': 'top'};
            for (const [path, value] of Object.entries(rows)) {
                layers.remember(gd, 'fit', path, value, layers.below(gd, 'fit', path));
            }
            return rows;
        }
        let above = 0;  // what stands above the plot area's top edge: subplot titles, half a tick label
        gd.querySelectorAll('.annotation').forEach(g => {
            const a = (gd.layout.annotations || [])[Number(g.getAttribute('data-index'))];
            if (a && subplotTitle(a) && a.y >= 0.999) { above = Math.max(above, g.getBoundingClientRect().height + 4); }
        });
        if (legend && legend.orientation === 'h' && legend.yref === 'paper' && legend.y >= 1 && legend._height) {
            above = Math.max(above, legend._height + 4);  // a legend in rows above the plot
        }
        gd.querySelectorAll('.yaxislayer-above .ytick text, .cbaxis text').forEach(t => {
            const box = t.getBoundingClientRect();
            if (box.height) { above = Math.max(above, full._size.t - (box.top - top)); }
        });
        // Text past the figure's bottom or right edge (a colour bar's end tick label at projector size): a margin.
        const box = svg.getBoundingClientRect();
        let pastBottom = 0, pastRight = 0;
        gd.querySelectorAll('.main-svg text').forEach(t => {
            if (!t.textContent.trim() || t.closest('.hoverlayer, .legend')) { return; }
            const r = t.getBoundingClientRect();
            if (!r.height) { return; }
            pastBottom = Math.max(pastBottom, r.bottom - box.bottom);
            pastRight = Math.max(pastRight, r.right - box.right);
        });
        const server = {};
        for (const side of ['t', 'b', 'r']) {
            const value = layers.below(gd, 'fit', 'margin.' + side);
            server[side] = value === undefined || value === null ? full.margin[side] : value;
        }
        const wanted = {
            t: Math.max(server.t, titleBottom > 0 ? Math.ceil(titleBottom + GAP + above) : 0),
            b: pastBottom > 0.5 ? Math.ceil(full.margin.b + pastBottom + 2) : full.margin.b,
            r: pastRight > 0.5 ? Math.ceil(full.margin.r + pastRight + 2) : full.margin.r,
        };
        const update = {};
        for (const side of ['t', 'b', 'r']) {
            if (Math.abs(wanted[side] - full.margin[side]) > 1) {
                update['margin.' + side] = wanted[side];
                layers.remember(gd, 'fit', 'margin.' + side, wanted[side], layers.below(gd, 'fit', 'margin.' + side));
            }
        }
        const height = layers.below(gd, 'fit', 'height');
        if (typeof height === 'number') {
            // A fixed-height figure grows by the margins added here, so its images keep their size; and it keeps
            // at least 0.8 of the plot area its builder meant, whatever legends and axes pushed the margins to.
            const meant = height - server.t - server.b;
            let grown = height + (wanted.t - server.t) + (wanted.b - server.b);
            const plot = grown - wanted.t - wanted.b - Math.max(0, full._size.b - full.margin.b)
                         - Math.max(0, full._size.t - full.margin.t);
            if (plot < 0.8 * meant) { grown += Math.ceil(0.8 * meant - plot); }
            if (Math.abs(grown - full.height) > 1) {
                update.height = grown;
                layers.remember(gd, 'fit', 'height', grown, height);
            }
        }
        return Object.keys(update).length ? update : null;
    }
    // Fit ``gd``'s text; ``body``: the theme's body text size (the smallest a title may shrink to). Called after
    // every drawing; each call makes at most one relayout, whose drawing calls it again, until nothing changes.
    function fit(gd, body) {
        if (!gd || !gd._fullLayout || !gd._fullLayout.width || !window.Plotly) { return; }
        gd._featurescopeFitRounds = (gd._featurescopeFitRounds || 0) + 1;
        if (gd._featurescopeFitRounds > 6) { gd.setAttribute('data-text-fitted', 'gave-up'); return; }
        // A new theme or width starts from the values below this fit (a legend laid out in rows may fit again).
        const key = body + '|' + gd._fullLayout.width;
        if (gd._featurescopeFitKey !== undefined && gd._featurescopeFitKey !== key) {
            gd._featurescopeFitKey = key;
            const undo = {}, records = (gd._featurescopeLayers || {}).fit || {};
            for (const [path, record] of Object.entries(records)) {
                if (layers.get(gd.layout, path) === record.set) { undo[path] = record.before === undefined ? null : record.before; }
            }
            gd._featurescopeLayers.fit = {};
            if (Object.keys(undo).length) { window.Plotly.relayout(gd, undo); return; }
        }
        gd._featurescopeFitKey = key;
        const update = textUpdate(gd, body) || layoutUpdate(gd);
        if (update) { gd.removeAttribute('data-text-fitted'); window.Plotly.relayout(gd, update); return; }
        gd._featurescopeFitRounds = 0;
        gd.setAttribute('data-text-fitted', String(body));
    }
    return {fit: fit, wrapped: wrapped, width: width};
})();
"""
