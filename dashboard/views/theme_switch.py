"""The page's theme: standard or projector (large text, thick markers, high contrast), light or dark.

Two switches in the header, remembered by the browser (a ``local`` store). The page's colours are CSS variables
(assets/featurescope.css, keyed by ``data-theme`` / ``data-projector`` on <html>); every Plotly graph on the page
is restyled in the browser from ``components.theme.figure_overrides`` (one table in Python, sent once as JSON), and
again after each redraw, so a switch runs no job and resends no figure.
"""
from __future__ import annotations

from dash import Input, Output, State, dcc, html

from components import theme
from dashboard.views import figure_text

NAME = "theme"
TITLE = "Theme"
OPENABLE = False

STORE = "theme-store"  # {"projector": bool, "dark": bool}, in the browser's localStorage
PROJECTOR = "theme-projector"
DARK = "theme-dark"
APPLIED = "theme-applied"  # the theme name last applied (read by tests and the export's report)

# The browser half: restyle one graph div ``gd`` to the theme ``name`` from the values the server drew (the originals),
# so switching back restores them exactly, however many redraws and Patches came in between.
RESTYLE = figure_text.FIT + """
window.featurescopeTheme = window.featurescopeTheme || (function () {
    const themes = %s;
    const state = {name: 'light'};
    const scale = (v, f) => Array.isArray(v) ? v.map(x => scale(x, f)) : (typeof v === 'number' ? v * f : v);
    const axes = layout => Object.keys(layout).filter(k => /^[xy]axis[0-9]*$/.test(k));
    const copy = v => v === undefined ? undefined : JSON.parse(JSON.stringify(v));
    const layers = window.featurescopeLayers;  // layout values: the server's, below what this theme set
    // Traces are not cloned: Plotly restyles the very objects Dash holds, and a later Patch redraws with every object
    // it did not touch, restyled values included. So each value set here is remembered on its own parent object
    // (not enumerable: never sent back to the server); a value found there unchanged was set here, and its original
    // is the record's; any other value is the server's. (Reading a restyled size as the server's scaled it twice.)
    const TRACE_PATHS = ['marker.size', 'marker.line.width', 'marker.line.color', 'line.width', 'textfont.size',
                         'textfont.color', 'colorbar.tickfont.size'];
    function parentOf(trace, path) {
        const parts = path.split('.'), key = parts.pop();
        let parent = trace;
        for (const part of parts) { parent = parent && parent[part]; }
        return [parent, key];
    }
    function serverValue(trace, path) {
        const [parent, key] = parentOf(trace, path);
        if (!parent || parent[key] === undefined) { return undefined; }
        const record = parent._featurescopeSet && parent._featurescopeSet[key];
        return record && record.set === parent[key] ? record.original : copy(parent[key]);
    }
    function rememberSet(trace, path, original) {
        const [parent, key] = parentOf(trace, path);
        if (!parent || parent[key] === undefined) { return; }
        if (!parent._featurescopeSet) {
            Object.defineProperty(parent, '_featurescopeSet', {value: {}, writable: true, enumerable: false});
        }
        parent._featurescopeSet[key] = {set: parent[key], original: original};
    }
    function apply(gd, name) {
        if (!gd || !gd.layout || !gd.data || !window.Plotly) { return false; }
        const meta = gd.layout.meta || {};
        // The server draws in the light theme: a fresh drawing in 'light' needs nothing.
        if ((meta.featurescopeTheme || 'light') === name) { return false; }
        const spec = themes[name], base = themes.light;
        const recolour = c => spec.colours[c] || c;
        const layout = Object.assign({}, spec.layout, {'meta.featurescopeTheme': name});
        for (const axis of axes(gd.layout)) {
            for (const [key, value] of Object.entries(spec.axis)) { layout[axis + '.' + key] = value; }
        }
        // Annotations: their size scaled and their house colours swapped, from the server's values (a subplot
        // title too long for its column is then wrapped by featurescopeFit).
        (gd.layout.annotations || []).forEach((a, k) => {
            const sizePath = 'annotations[' + k + '].font.size', colourPath = 'annotations[' + k + '].font.color';
            const size = layers.below(gd, 'theme', sizePath), colour = layers.below(gd, 'theme', colourPath);
            layout[sizePath] = (size || base.layout['font.size']) * spec.font_scale;
            layers.remember(gd, 'theme', sizePath, layout[sizePath], size);
            if (typeof colour === 'string') {
                layout[colourPath] = recolour(colour);
                layers.remember(gd, 'theme', colourPath, layout[colourPath], colour);
            }
        });
        const originals = gd.data.map(t => Object.fromEntries(TRACE_PATHS.map(path => [path, serverValue(t, path)])));
        const restyle = {}, indices = [];
        const put = (key, k, value) => { (restyle[key] = restyle[key] || [])[k] = value; };
        gd.data.forEach((t, k) => {
            const o = originals[k], outline = o['marker.line.color'], text = o['textfont.color'];
            const colorbar = o['colorbar.tickfont.size'];
            indices.push(k);
            put('marker.size', k, o['marker.size'] === undefined ? undefined : scale(o['marker.size'], spec.marker_scale));
            put('marker.line.width', k, o['marker.line.width'] === undefined ? undefined
                : scale(o['marker.line.width'], spec.line_scale));
            put('marker.line.color', k, t.name === 'selected' ? spec.selected :
                (outline === spec.outline.from || outline === base.outline.to ||
                 Object.values(themes).some(s => s.outline.to === outline)) ? spec.outline.to : outline);
            put('line.width', k, o['line.width'] === undefined ? undefined : scale(o['line.width'], spec.line_scale));
            put('colorbar.tickfont.size', k, colorbar ? colorbar * spec.font_scale : undefined);
            put('textfont.size', k, o['textfont.size'] === undefined ? undefined
                : scale(o['textfont.size'], spec.font_scale));
            put('textfont.color', k, typeof text === 'string' ? recolour(text) : text);
        });
        window.Plotly.update(gd, restyle, layout, indices);
        gd.data.forEach((t, k) => TRACE_PATHS.forEach(path => {
            if (originals[k][path] !== undefined) { rememberSet(t, path, originals[k][path]); }
        }));
        return true;
    }
    // The theme first; once a drawing is in the theme, its text is fitted to the figure (featurescopeFit).
    function restyle(gd) {
        if (!apply(gd, state.name)) { window.featurescopeFit.fit(gd, themes[state.name].layout['font.size']); }
    }
    function applyAll() {
        document.querySelectorAll('.js-plotly-plot').forEach(gd => {
            if (!gd._featurescopeWatched && gd.on) {
                gd._featurescopeWatched = true;  // a redraw by Dash brings the server's style back: restyle again
                gd.on('plotly_afterplot', () => restyle(gd));
                // A figure follows its column's width (the projector's grid, a scrollbar that comes and goes).
                let width = gd.parentElement.clientWidth;
                new ResizeObserver(() => {
                    const now = gd.parentElement.clientWidth;
                    if (Math.abs(now - width) > 1 && gd._fullLayout && gd.checkVisibility()) {
                        width = now;
                        Promise.resolve(window.Plotly.Plots.resize(gd)).catch(() => null);
                    }
                }).observe(gd.parentElement);
            }
            restyle(gd);
        });
    }
    new MutationObserver(() => applyAll()).observe(document.body, {childList: true, subtree: true});
    return {themes: themes, state: state, apply: apply, applyAll: applyAll,
            use: name => {
                state.name = themes[name] ? name : 'light';
                applyAll();
                return state.name;
            }};
})();
"""

# One callback owns the switches and the store (a circle Dash allows within one callback): on page load the stored
# choice sets the switches; a click stores the new choice; either way every graph is restyled.
SWITCH = """
function(projector, dark, _stamp, stored) {
    %s
    const triggered = (window.dash_clientside.callback_context.triggered || []).map(t => t.prop_id);
    const noUpdate = window.dash_clientside.no_update;
    const fromStore = triggered.some(id => id.startsWith('%s.'));
    let wanted = {projector: !!(projector && projector.length), dark: !!(dark && dark.length)};
    let switches = [noUpdate, noUpdate], store = noUpdate;
    if (fromStore) {
        const s = stored || {};
        const same = !!s.projector === wanted.projector && !!s.dark === wanted.dark;
        if (!same) { wanted = {projector: !!s.projector, dark: !!s.dark};
                     switches = [wanted.projector ? ['on'] : [], wanted.dark ? ['on'] : []]; }
    } else if (!stored || !!stored.projector !== wanted.projector || !!stored.dark !== wanted.dark) {
        store = wanted;
    }
    document.documentElement.dataset.theme = wanted.dark ? 'dark' : 'light';
    document.documentElement.dataset.projector = wanted.projector ? 'on' : 'off';
    const name = (wanted.projector ? 'projector-' : '') + (wanted.dark ? 'dark' : 'light');
    return [...switches, store, window.featurescopeTheme.use(name)];
}
"""


def header(_context) -> html.Div:
    """The two switches and their store, placed in the page header."""
    return html.Div([
        dcc.Store(id=STORE, storage_type="local"),
        dcc.Store(id=APPLIED, data="light"),
        dcc.Checklist(id=PROJECTOR, options=[{"label": " projector", "value": "on"}], value=[], inline=True,
                      className="theme-switch", inputClassName="theme-switch-input"),
        dcc.Checklist(id=DARK, options=[{"label": " dark", "value": "on"}], value=[], inline=True,
                      className="theme-switch", inputClassName="theme-switch-input"),
    ], className="theme-switches", title="projector: large text, thick markers, high contrast; dark: light on black")


def layout(_context) -> list:
    return []


def register(app, _context) -> None:
    app.clientside_callback(
        SWITCH % (RESTYLE % theme.overrides_json(), STORE),
        Output(PROJECTOR, "value"), Output(DARK, "value"), Output(STORE, "data"), Output(APPLIED, "data"),
        Input(PROJECTOR, "value"), Input(DARK, "value"), Input(STORE, "modified_timestamp"), State(STORE, "data"),
    )
