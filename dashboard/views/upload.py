"""Your own image: drop a PNG or JPEG on the page; every panel then opens for it and the scatter marks where it lands.

Nothing too large or of the wrong kind is ever decoded: the browser refuses a file over the limit or not a PNG or
JPEG before reading it, and says which file and why (a listener on the drop zone: ``dcc.Upload`` alone drops such a
file without a word); the server refuses a request body over :data:`MAX_REQUEST_BYTES` before parsing it, and an
upload's base64 text over the limit before decoding it. The server checks and saves the file
(``compute.uploads.save``: PNG or JPEG, at most 10 MB, content-hash id) and
selects it as the image variant ``{"kind": "upload", "id": ...}`` with index -1 (it is no data-set image, so no
point of the scatter is ringed). The compute process preprocesses it like the data set's images (the ``upload``
variant), places it into the current embedding (job ``uploads.place``) and the scatter draws it as a star.
"""
from __future__ import annotations

import base64
import binascii

from dash import Input, Output, State, dcc, html, no_update

from components import controls, theme
from compute import uploads
from dashboard.thumbnails import upload_url
from dashboard.views.context import (EMBEDDING, FEATURES, HIGHLIGHT, LAYER, OPEN_VIEWS, SELECTION, ViewContext,
                                     share_mark)
from dashboard.views.panel import BackgroundPanel, Request

NAME = "upload"
TITLE = "Your own image: drop a PNG or JPEG"
MENU = "Your image"  # its name in the toolbar's Views checklist
OPENABLE = True
OPEN_AT_START = True

DROP = "upload-drop"
REFUSED = "upload-refused"  # {"name", "reason", "at"} of a file the browser refused before reading it
MESSAGE = "upload-message"
UPLOADED = "upload-uploaded"  # {"id", "name", "width", "height"} of the last good upload
PREVIEW = "upload-preview"
PREDICTION = "upload-prediction"
SHOW = "upload-show"
MARK = "upload-mark"  # what this view marks in the scatter; copied to HIGHLIGHT while the view is open
MARK_PREFIX = "your image"
PREVIEW_SIZE = 128

SHARE_MARK = share_mark(NAME, MARK_PREFIX)  # this view's mark in the scatter while the view is open
ACCEPTED_TYPES = "image/png,image/jpeg,.png,.jpg,.jpeg"
# A request body the server reads at most: an upload of MAX_UPLOAD_BYTES as base64 in Dash's JSON, with room.
MAX_REQUEST_BYTES = uploads.MAX_UPLOAD_BYTES * 4 // 3 + 1024**2

# Runs once per page: looks at every file dropped or chosen before dcc.Upload reads it. dcc.Upload (max_size,
# accept) refuses the same files without reading them, but says nothing; this says which file and why. The listeners
# sit on the document (capturing, so they run before dcc.Upload's own): the drop zone may not be in the page yet
# when this runs, and a view closed and opened again is a new zone.
GUARD_DROP = """
function(id) {
    if (window.featurescopeUploadGuard) { return 1; }
    window.featurescopeUploadGuard = true;
    const limit = %(limit)d;
    const inZone = target => Boolean(target && target.closest && target.closest('#' + id));
    const inspect = files => {
        for (const file of Array.from(files || [])) {
            const type = (file.type || '').toLowerCase();
            const image = type === 'image/png' || type === 'image/jpeg' || /\\.(png|jpe?g)$/i.test(file.name);
            let reason = null;
            if (!image) {
                reason = `${file.name} is not a PNG or JPEG image (${type || 'unknown type'}); drop a PNG or JPEG`;
            } else if (file.size > limit) {
                reason = `${file.name} is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${limit / 1048576} MB`;
            }
            if (reason) {
                window.dash_clientside.set_props('%(refused)s', {data: {name: file.name, reason: reason, at: Date.now()}});
            }
        }
    };
    document.addEventListener('drop', event => {
        if (inZone(event.target)) { inspect(event.dataTransfer && event.dataTransfer.files); }
    }, true);
    document.addEventListener('change', event => {
        if (inZone(event.target)) { inspect(event.target.files); }
    }, true);
    return 1;
}
""" % {"limit": uploads.MAX_UPLOAD_BYTES, "refused": REFUSED}

panel = BackgroundPanel(
    "upload-place",
    outputs=[Output(MARK, "data"), Output(PREDICTION, "children")],
    inputs=[Input(UPLOADED, "data"), Input(LAYER, "value"), Input(EMBEDDING, "value"),
            Input(FEATURES, "value")],
    view=NAME,
)


def layout(context: ViewContext) -> html.Section:
    return controls.card(
        TITLE,
        html.Div([
            dcc.Upload(id=DROP, accept=ACCEPTED_TYPES, multiple=False, max_size=uploads.MAX_UPLOAD_BYTES,
                       className="upload-drop",
                       children=html.Div(["Drag and drop a PNG or JPEG here, or ", html.A("choose a file"),
                                          html.Br(), html.Span(f"at most {uploads.MAX_UPLOAD_BYTES // 1024**2} MB",
                                                               className="hint")])),
            html.Div([
                html.Div(id=PREVIEW, className="upload-preview"),
                html.Div([
                    html.Div(id=MESSAGE),
                    html.Div(id=PREDICTION, className="upload-prediction"),
                    html.Button("show it in the panels again", id=SHOW, n_clicks=0, className="button button-small",
                                style={"display": "none"}),
                    panel.status(),
                ], className="upload-status"),
            ], className="upload-result"),
        ], className="upload-body"),
        html.P("Your image gets every panel (details, attribution, inversion, neighbours) and a star in the scatter. "
               + _preprocessing_note(context), className="hint"),
        dcc.Store(id=UPLOADED),
        dcc.Store(id=REFUSED), dcc.Store(id=f"{DROP}-guarded"),
        dcc.Store(id=MARK),
        class_name="upload",
    )


def _preprocessing_note(context: ViewContext) -> str:
    channels, height, width = context.meta.image_shape
    if context.config.data == "digits":
        return ("The model reads 8x8 digit scans: your image is turned grey, inverted when its background is light, "
                "averaged down to 8x8 and shown at 32x32.")
    return f"It is resized and centre-cropped to {width}x{height} ({'grey' if channels == 1 else 'colour'})."


def decode_contents(contents: str, name: str = "the file") -> bytes:
    """dcc.Upload's ``data:<type>;base64,<data>`` -> the file's bytes (UploadError when it is not that, or when it
    would be over the limit: that is known from the text's length, before anything is decoded)."""
    _, comma, encoded = (contents if isinstance(contents, str) else "").partition(",")
    size = len(encoded) * 3 // 4
    if size > uploads.MAX_UPLOAD_BYTES:
        raise uploads.UploadError(f"{name} is {size / 1024**2:.1f} MB; the limit is "
                                  f"{uploads.MAX_UPLOAD_BYTES // 1024**2} MB")
    try:
        if not comma:
            raise ValueError("no data: prefix")
        return base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error, AttributeError) as error:
        raise uploads.UploadError("the upload arrived damaged; try again") from error


def selection_for(saved: dict) -> dict:
    """The page-wide selection naming an upload: every panel opens for it."""
    return {"index": -1, "variant": {"kind": "upload", "id": saved["id"]}, "label": f"{MARK_PREFIX}: {saved['name']}"}


def accept(contents: str | None, filename: str | None) -> tuple[dict | None, object]:
    """(the saved upload's description or None, a message for the page) for one dropped file."""
    name = filename or "the file"
    try:
        saved = uploads.save(decode_contents(contents, name), name)
    except uploads.UploadError as error:
        return None, controls.message(str(error), "error")
    saved = {**saved, "name": name}
    return saved, controls.message(f"{name}: {saved['width']}x{saved['height']} pixels, opened in every panel.",
                                   "info")


def place_request(saved, layer, method, features):
    if not saved:
        return None
    return Request("uploads.place", {"id": saved["id"], "layer": layer, "method": method, "features": features},
                   {"name": saved["name"]})


def place_render(context: ViewContext):
    # The model's own output names where the description has them (ImageNet weights on a folder of 3 classes).
    classes = list(getattr(context.meta, "model_classes", None) or context.meta.classes)

    def render(result: dict, shown: dict) -> tuple:
        probabilities = result["probabilities"]
        names = classes + [f"output {k}" for k in range(len(classes), len(probabilities))]
        top = probabilities.argsort()[::-1][:3]
        guess = ", ".join(f"{names[k]} {theme.plain_number(100 * float(probabilities[k]), 1)}%" for k in top)
        text = [html.B("The model says: "), guess]
        warning = novelty_warning(result.get("novelty"), context.meta.count)
        text = [*text, warning] if warning is not None else text
        if result["point"] is None:
            return None, [*text, html.Br(), f"Not placed in the scatter: {result['placement_message']}"]
        x, y = result["point"]
        label = f"{MARK_PREFIX}: {shown['name']}"
        mark = {"label": label, "points": [[x, y, f"{label} · predicted {names[int(top[0])]}"]]}
        return mark, [*text, html.Br(), "The star in the scatter is where it lands."]

    return render


def novelty_warning(novelty: dict | None, count: int):
    """A plain warning when the upload is unlike the data set (``compute.neighbours.Novelty`` as a dict), else None:
    the model answers for any image, and for one far from everything it was trained on the answer means little."""
    if not novelty or not novelty.get("unlike"):
        return None
    sample = "" if novelty["reference_size"] >= count else f" (of {novelty['reference_size']:,} sampled)"
    return controls.message(
        f"This image is unlike the data set: in {novelty['layer']}'s features it lies "
        f"{theme.plain_number(novelty['distance'], 3)} from its nearest data image, farther than any of the "
        f"{count:,} images{sample} lies from its own nearest neighbour (at most "
        f"{theme.plain_number(novelty['largest'], 3)}, typically {theme.plain_number(novelty['typical'], 3)}). "
        "The model answers for any image; for one this far from what it was trained on, its answer means little.",
        "warning")


def register(app, context: ViewContext) -> None:
    panel.register(app, context, place_request, place_render(context))
    # The server reads no request body above this (Flask answers 413 before parsing it).
    limit = app.server.config.get("MAX_CONTENT_LENGTH")
    app.server.config["MAX_CONTENT_LENGTH"] = max(limit or 0, MAX_REQUEST_BYTES)
    app.clientside_callback(GUARD_DROP, Output(f"{DROP}-guarded", "data"), Input(DROP, "id"))

    @app.callback(Output(MESSAGE, "children", allow_duplicate=True), Input(REFUSED, "data"),
                  prevent_initial_call=True)
    def refused(found):
        return controls.message(found["reason"], "error") if found else no_update

    @app.callback(
        Output(UPLOADED, "data"), Output(MESSAGE, "children"), Output(SELECTION, "data", allow_duplicate=True),
        Output(DROP, "contents"), Output(PREVIEW, "children"), Output(SHOW, "style"),
        Input(DROP, "contents"), State(DROP, "filename"), prevent_initial_call=True,
    )
    def receive(contents, filename):
        if not contents:
            return (no_update,) * 6
        saved, message = accept(contents, filename)
        if saved is None:  # the last good upload stays where it was
            return no_update, message, no_update, None, no_update, no_update
        preview = html.Img(src=upload_url(saved["id"], 256), width=PREVIEW_SIZE, alt=saved["name"],
                           className="upload-preview-image")
        # Contents reset to None: dropping the same file again is a new upload event.
        return saved, message, selection_for(saved), None, preview, {}

    @app.callback(Output(SELECTION, "data", allow_duplicate=True), Input(SHOW, "n_clicks"), State(UPLOADED, "data"),
                  prevent_initial_call=True)
    def show_again(clicks, saved):
        return selection_for(saved) if clicks and saved else no_update

    app.clientside_callback(SHARE_MARK, Output(HIGHLIGHT, "data", allow_duplicate=True), Input(MARK, "data"),
                            Input(OPEN_VIEWS, "value"), State(HIGHLIGHT, "data"), prevent_initial_call=True)
