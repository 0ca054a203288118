"""Every view is a link: the page's whole state in its query string, read when the page is built, written as it changes.

Each view declares what of its state the URL keeps: ``URL_STATE``, a list of :class:`Entry` (a URL key, a component
id, a property, and a :class:`Kind` that encodes, validates and decodes the value). This module gathers them,
finds each component in the page as built (its starting value is the entry's default; a control's own options or
bounds are its domain), and then:

- ``restoring(build, context)`` is the page's layout function: it builds the page and sets every control from the
  query string of the link it was opened at, so a shared link opens the same view with no race against defaults.
  Keys that are unknown or whose values no longer fit (a layer that is gone, a class out of range) are ignored and
  listed in a notice; the rest of the link still applies. A wrong link never gives an error page.
- ``register(app, context, build)`` wires one callback that writes the state to the address bar as it changes (each
  change a history entry), reloads the page on back/forward (the page is then built from the URL it went back to),
  and the "copy link" button.

Only non-default values are written, so a URL stays short. The kinds live in :mod:`dashboard.views.url_kinds`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qsl, quote, urlencode, urlparse

import flask
from dash import Input, Output, State, dcc, html

from components import controls
from dashboard.views.context import OPEN_VIEWS, SELECTION
from dashboard.views.url_kinds import Flag, Kind, LayerChannel, Number, Option, Options, Parity, Pressed, Text, kind_for
from dashboard.views.url_selection import Selection

log = logging.getLogger("featurescope")

COPY = "links-copy"
COPY_STATUS = "links-copy-status"
NOTICE = "links-notice"
HISTORY = "links-history"  # a store whose only job is to install the back/forward listener once per page
LOADED = "links-loaded"  # the link the page was built from, as this module writes it (set when the page is built)
WANTED = "links-wanted"  # the query string of the state now shown, from the server

__all__ = ["Entry", "Flag", "LayerChannel", "Number", "Option", "Options", "Parity", "Pressed", "Selection", "Text",
           "method_entries", "restoring", "register", "resolve", "encode", "decode", "page_entries"]


@dataclass(frozen=True)
class Entry:
    """One piece of a view's state in the URL: ``key=...`` holds ``component.prop``; ``kind`` None: from the control."""

    key: str
    component: str | dict
    prop: str = "value"
    kind: Kind | None = None


# The page-wide state: the selected sample (with its variant and epoch) and the open views.
PAGE_STATE = [Entry("sample", SELECTION, "data", Selection()), Entry("views", OPEN_VIEWS)]


def method_entries(panel, prefix: str = "", picker_key: str | None = "methods") -> list[Entry]:
    """The entries of a method panel's controls (pattern-matching ids): ``{prefix}{method}.{param}``, and its
    checklist of methods as ``picker_key`` (None: the panel has no checklist); numbers keep their spec's bounds,
    choices and switches take the control's own options."""
    entries = []
    for method, entry in panel.registry.items():
        for spec in entry.params:
            kind = Number(spec.low, spec.high, optional=True) if spec.kind in ("int", "float") else None
            entries.append(Entry(f"{prefix}{method}.{spec.name}", panel.control_id(method, spec.name), kind=kind))
    return ([Entry(picker_key, panel.picker_id)] if picker_key else []) + entries


@dataclass(frozen=True)
class Resolved:
    """An entry found in the page: its kind, bound to the component's options, and its default value."""

    entry: Entry
    kind: Kind
    default: Any

    @property
    def key(self) -> str:
        return self.entry.key


def all_entries(views) -> list[Entry]:
    entries = list(PAGE_STATE)
    for view in views:
        entries += list(getattr(view, "URL_STATE", ()))
    keys = [entry.key for entry in entries]
    duplicated = sorted({key for key in keys if keys.count(key) > 1})
    if duplicated:
        raise ValueError(f"URL keys declared twice: {', '.join(duplicated)}")
    return entries


def _components(tree) -> dict:
    """Every component of the page with an id, by its id (dict ids as their sorted items)."""
    found = {}
    for component in [tree, *tree._traverse()]:
        component_id = getattr(component, "id", None)
        if component_id is not None:
            found[_id_key(component_id)] = component
    return found


def _id_key(component_id) -> Any:
    return tuple(sorted(component_id.items())) if isinstance(component_id, dict) else component_id


def resolve(tree, entries: list[Entry], meta) -> list[Resolved]:
    """Bind each entry to its component in ``tree`` (a page as built, at its defaults); entries whose component is
    not in the page (a view that is not installed) are left out."""
    components = _components(tree)
    resolved = []
    for entry in entries:
        component = components.get(_id_key(entry.component))
        if component is None:
            log.warning("URL key %r: no component %r in the page", entry.key, entry.component)
            continue
        default = getattr(component, entry.prop, None)
        kind = (entry.kind or kind_for(component)).bind(component, meta, default)
        resolved.append(Resolved(entry, kind, default))
    return resolved


def encode(resolved: list[Resolved], values: dict[str, Any]) -> str:
    """``?key=text&...`` of the values (by URL key) that differ from their defaults; "" when all are defaults."""
    pairs = []
    for item in resolved:
        value = values.get(item.key, item.default)
        if value != item.default:
            pairs += list(item.kind.encode(item.key, value).items())
    return "?" + urlencode(pairs, quote_via=quote, safe=",:/") if pairs else ""


def decode(resolved: list[Resolved], search: str) -> tuple[dict[str, Any], list[str]]:
    """The values (by URL key) a query string sets, and the keys it had that were ignored (unknown or invalid)."""
    query = dict(parse_qsl((search or "").lstrip("?"), keep_blank_values=True))
    values, ignored, used = {}, [], set()
    for item in resolved:
        keys = item.kind.keys(item.key)
        if item.key not in query:
            used.update(key for key in keys if key in query)
            if any(key in query for key in keys):
                ignored += [key for key in keys if key in query]  # a sample's variant without its sample
            continue
        used.update(keys)
        try:
            values[item.key] = item.kind.decode(item.key, query)
        except (ValueError, TypeError, KeyError):
            ignored.append(item.key)
    ignored += [key for key in query if key not in used]
    return values, ignored


def notice(ignored: list[str]):
    if not ignored:
        return None
    names = ", ".join(f"“{key}”" for key in ignored[:12]) + (" ..." if len(ignored) > 12 else "")
    return controls.message(f"This link is outdated or mistyped: {names} could not be used, so those settings "
                            "show their defaults. Everything else in the link applies.", "warning")


def _request_search() -> str:
    """The query string of the page being built: the layout is fetched by the page (``/_dash-layout``), so the
    page's own URL is its referrer; a direct request (a test, a crawler) has it in its own arguments."""
    if not flask.has_request_context():
        return ""
    referrer = flask.request.referrer or ""
    if referrer and urlparse(referrer).netloc == flask.request.host:
        return urlparse(referrer).query
    return flask.request.query_string.decode("utf-8", "replace")


def with_link_defaults(search: str, context) -> str:
    """``search`` with what it means without saying it: each view's ``link_defaults(query, context)`` (a bare
    ``?tour=5`` is the tour's whole step 5) under the link's own keys, which always win."""
    query = dict(parse_qsl((search or "").lstrip("?"), keep_blank_values=True))
    defaults = {}
    for view in context.views:
        hook = getattr(view, "link_defaults", None)
        if hook is not None:
            defaults.update(hook(query, context))
    if not defaults:
        return search
    return "?" + urlencode({**defaults, **query}, quote_via=quote, safe=",:/")


def restoring(build: Callable[[], Any], context) -> Callable[[], Any]:
    """The page's layout function: ``build()`` with every control set from the URL it is opened at."""
    entries = all_entries(context.views)

    def layout():
        tree = build()
        resolved = resolve(tree, entries, context.meta)
        values, ignored = decode(resolved, with_link_defaults(_request_search(), context))
        components = _components(tree)
        for item in resolved:
            if item.key in values:
                setattr(components[_id_key(item.entry.component)], item.entry.prop, values[item.key])
        if NOTICE in components:
            components[NOTICE].children = notice(ignored)
            components[LOADED].data = encode(resolved, values)
        return tree

    return layout


def bar() -> html.Div:
    """The "copy link" button, its answer, and the notice of an outdated link (placed in the page by the app)."""
    return html.Div([
        html.Button("Copy link", id=COPY, n_clicks=0, className="button",
                    title="copy this view's link: the URL keeps every setting of every view"),
        html.Span(id=COPY_STATUS, className="links-copy-status", role="status"),
        html.Div(id=NOTICE, className="links-notice"),
        dcc.Store(id=HISTORY, data=0),
        dcc.Store(id=LOADED, data=""),
        dcc.Store(id=WANTED),
    ], className="links-bar")


# Copies the page's URL: the clipboard API where the page may use it, else a hidden text field and "copy".
COPY_LINK = """
function(n) {
    if (!n) { return window.dash_clientside.no_update; }
    const link = window.location.href;
    let copied = false;
    try {
        const field = document.createElement('textarea');
        field.value = link; field.setAttribute('readonly', '');
        field.style.position = 'fixed'; field.style.opacity = '0';
        document.body.appendChild(field); field.select();
        copied = document.execCommand('copy');
        document.body.removeChild(field);
    } catch (e) { copied = false; }
    if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(link).catch(() => {});
        copied = true;
    }
    return copied ? 'link copied' : 'select the address bar to copy the link';
}
"""

# Puts the state in the address bar: the first write that only tidies the link the page was opened at (dropping
# ignored keys, ordering them) replaces it; every other change is a new history entry, so back returns to it.
WRITE_URL = """
function(search, loaded) {
    if (typeof search !== 'string' || search === window.location.search) {
        return window.dash_clientside.no_update;
    }
    const target = window.location.pathname + search + window.location.hash;
    if (!window.featurescopeMoved && search === loaded) {
        window.history.replaceState(null, '', target);
    } else {
        window.history.pushState(null, '', target);
        window.featurescopeMoved = true;
    }
    return window.dash_clientside.no_update;
}
"""

# Back and forward change the URL without a new page: build the page anew from the URL it went to.
RELOAD_ON_HISTORY = """
function(data) {
    if (!window.featurescopeHistoryListener) {
        window.featurescopeHistoryListener = true;
        window.addEventListener('popstate', () => window.location.reload());
    }
    return window.dash_clientside.no_update;
}
"""


def register(app, context, build: Callable[[], Any]) -> None:
    """Write the state to the URL as it changes; reload on back/forward; copy the link."""
    resolved = resolve(build(), all_entries(context.views), context.meta)

    @app.callback(Output(WANTED, "data"), *[Input(item.entry.component, item.entry.prop) for item in resolved],
                  prevent_initial_call=True)
    def state_to_url(*values):
        return encode(resolved, {item.key: value for item, value in zip(resolved, values)})

    app.clientside_callback(WRITE_URL, Output(LOADED, "modified_timestamp"), Input(WANTED, "data"),
                            State(LOADED, "data"),
                            prevent_initial_call=True)

    app.clientside_callback(COPY_LINK, Output(COPY_STATUS, "children"), Input(COPY, "n_clicks"))
    app.clientside_callback(RELOAD_ON_HISTORY, Output(HISTORY, "data"), Input(HISTORY, "data"))
