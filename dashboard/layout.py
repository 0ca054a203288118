"""The page: controls, the embedding scatter in the centre, and the linked detail panels."""
from __future__ import annotations

from dash import dcc, html

from components import controls, scatter, theme
from compute import attribution, embedding
from dashboard import ids, state
from dashboard.config import AppConfig

DEFAULT_ATTRIBUTIONS = ["occlusion", "saliency", "smoothgrad"]


def _header(config: AppConfig) -> html.Header:
    dataset = state.dataset(config)
    return html.Header([
        html.Div([html.H1("Featurescope"), html.Span("what a convolutional network has learned", className="tagline")]),
        html.Div([
            html.Span(f"model: {config.model}", className="pill"),
            html.Span(f"data: {dataset.description}", className="pill"),
            html.Span(f"device: {state.device(config)}", className="pill"),
            html.Span(id=ids.STATUS, className="pill pill-accent"),
        ], className="header-pills"),
    ])


def _toolbar(config: AppConfig) -> html.Div:
    layers = state.layer_names(config)
    return html.Div([
        controls.labelled("Layer", dcc.Dropdown(id=ids.LAYER, options=list(layers), value=state.default_layer(config),
                                                clearable=False), "any named module of the model"),
        controls.labelled("Embedding", dcc.RadioItems(
            id=ids.EMBEDDING, value=config.embedding, inline=True,
            options=[{"label": m.label, "value": name, "title": m.description} for name, m in embedding.EMBEDDERS.items()],
        )),
        controls.labelled("Features", dcc.RadioItems(
            id=ids.FEATURES, value="auto", inline=True,
            options=[{"label": "auto", "value": "auto"}, {"label": "flattened", "value": "flat"},
                     {"label": "channel means", "value": "pooled"}],
        ), "conv maps flattened, or averaged over space; auto averages very large maps"),
        controls.labelled("Colour by", dcc.RadioItems(
            id=ids.COLOR_BY, value="true", inline=True,
            options=[{"label": label, "value": value} for value, label in scatter.COLOUR_MODES.items()],
        )),
    ], className="toolbar")


def _explore_card() -> html.Section:
    return controls.card(
        "Feature distribution",
        html.P("Each point is one image, placed by its activations at the chosen layer. Click a point to inspect it.",
               className="hint"),
        controls.progress_block(ids.SCATTER_PROGRESS, ids.SCATTER_PROGRESS_TEXT, ids.SCATTER_PROGRESS_BLOCK),
        html.Div(id=ids.SCATTER_MESSAGE),
        dcc.Graph(id=ids.SCATTER, figure=scatter.empty_figure("preparing the embedding ..."),
                  config=theme.graph_config("featurescope-embedding"), className="scatter-graph"),
        class_name="explore",
    )


def _detail_card() -> html.Section:
    return controls.card(
        "Selected image",
        html.Div("Click a point in the scatter.", id=ids.DETAIL_TITLE, className="detail-title"),
        html.Div(id=ids.DETAIL_MESSAGE),
        html.Div([
            dcc.Graph(id=ids.DETAIL_IMAGE, figure=scatter.empty_figure("no image selected"),
                      config=theme.graph_config("featurescope-image")),
            dcc.Graph(id=ids.DETAIL_TOPK, figure=scatter.empty_figure(""), config=theme.graph_config("featurescope-top5")),
        ], className="detail-figures"),
        class_name="detail",
    )


def _feature_maps_card() -> html.Section:
    return controls.card(
        "Feature maps",
        html.Div([
            controls.labelled("Colour scale", dcc.RadioItems(
                id=ids.MAP_SCALE, value="shared", inline=True,
                options=[{"label": "shared", "value": "shared"}, {"label": "per map", "value": "per-map"}],
            ), "shared: one scale, raw values; per map: each map stretched to its own range"),
            html.Div(id=ids.SPARSITY, className="sparsity"),
        ], className="toolbar"),
        dcc.Graph(id=ids.FEATURE_MAPS, figure=scatter.empty_figure("click a point to see its feature maps"),
                  config=theme.graph_config("featurescope-feature-maps")),
        class_name="maps",
    )


def _method_controls(config: AppConfig) -> html.Div:
    layers = list(state.conv_layers(config))
    image_shape = state.dataset(config).image_shape
    blocks = []
    for name, method in attribution.METHODS.items():
        start = attribution.suggested_params(name, image_shape)
        blocks.append(html.Details([
            html.Summary(method.label, title=method.description),
            html.P(method.description, className="hint"),
            *[controls.param_control(p, ids.attribution_param(name, p.name), layers, start[p.name]) for p in method.params],
        ], className="method-controls", open=name in DEFAULT_ATTRIBUTIONS[:1]))
    return html.Div(blocks, className="method-blocks")


def _attribution_card(config: AppConfig) -> html.Section:
    classes = state.dataset(config).classes
    return controls.card(
        "Attribution: which pixels make the network say this",
        html.Div([
            controls.labelled("Methods", dcc.Checklist(
                id=ids.ATTRIBUTION_METHODS, value=DEFAULT_ATTRIBUTIONS, inline=True,
                options=[{"label": m.label, "value": name} for name, m in attribution.METHODS.items()],
            )),
            controls.labelled("Target class", dcc.Dropdown(
                id=ids.ATTRIBUTION_TARGET, options=[{"label": c, "value": k} for k, c in enumerate(classes)],
                placeholder="true class", clearable=True,
            ), "default: the true class"),
            controls.labelled("", dcc.Checklist(id=ids.ATTRIBUTION_USE_PREDICTED, value=[],
                                                options=[{"label": " use the predicted class", "value": "predicted"}])),
            controls.labelled("Show as", dcc.RadioItems(
                id=ids.ATTRIBUTION_DISPLAY, value="overlay", inline=True,
                options=[{"label": "heatmap", "value": "heatmap"}, {"label": "overlay", "value": "overlay"}],
            )),
            controls.labelled("Overlay opacity", dcc.Slider(id=ids.ATTRIBUTION_OPACITY, min=0, max=1, step=0.05, value=0.6,
                                                            marks=None)),
            html.Button("Sanity check: compare with the untrained model", id=ids.ATTRIBUTION_SANITY, n_clicks=0,
                        className="button", title="Adebayo et al. 2018: a map that does not change when the weights "
                                                  "are untrained does not explain what the model learned"),
        ], className="toolbar"),
        _method_controls(config),
        controls.progress_block(ids.ATTRIBUTION_PROGRESS, ids.ATTRIBUTION_PROGRESS_TEXT, ids.ATTRIBUTION_PROGRESS_BLOCK),
        html.Div(id=ids.ATTRIBUTION_MESSAGE),
        html.Div(html.P("Click a point in the scatter.", className="hint"), id=ids.ATTRIBUTION_PANELS,
                 className="attribution-panels"),
        class_name="attribution",
    )


def _inversion_card(config: AppConfig) -> html.Section:
    layers = list(state.layer_names(config))
    return controls.card(
        "Approximate inversion: what one feature channel sees",
        html.Div([
            controls.labelled("Method", dcc.RadioItems(
                id=ids.INVERSION_METHOD, value="deconvnet", inline=True,
                options=[{"label": label, "value": name} for name, label in attribution.INVERSIONS.items()],
            )),
            controls.labelled("Layer", dcc.Dropdown(id=ids.INVERSION_LAYER, options=[{"label": "(the layer above)", "value": ""}]
                                                    + layers, value="", clearable=False)),
            controls.labelled("Channel", dcc.Input(id=ids.INVERSION_CHANNEL, type="number", min=0, step=1, debounce=True,
                                                   placeholder="most active"), "empty: the most active channel"),
        ], className="toolbar"),
        controls.progress_block(ids.INVERSION_PROGRESS, ids.INVERSION_PROGRESS_TEXT, ids.INVERSION_PROGRESS_BLOCK),
        html.Div(id=ids.INVERSION_MESSAGE),
        dcc.Graph(id=ids.INVERSION_FIGURE, figure=scatter.empty_figure("click a point to reconstruct it from one channel"),
                  config=theme.graph_config("featurescope-inversion")),
        class_name="inversion",
    )


def build_layout(config: AppConfig) -> html.Div:
    """The whole page for ``config`` (options come from the method tables and the model's layers)."""
    return html.Div([
        dcc.Location(id=ids.URL, refresh=False),
        dcc.Store(id=ids.SELECTION, data=None),
        _header(config),
        _toolbar(config),
        html.Main([
            _explore_card(),
            _detail_card(),
            _feature_maps_card(),
            _attribution_card(config),
            _inversion_card(config),
        ], className="grid"),
        html.Footer("Featurescope · figures export as PNG from each plot's toolbar · the URL keeps the current view"),
    ], className="page")
