"""Attribution and inversion panels of the selected image (background callbacks with progress bars)."""
from __future__ import annotations

import torch
from dash import ALL, Input, Output, State, dcc, html, no_update

from components import attribution as figures
from components import controls, theme
from compute import activations, attribution
from dashboard import ids, state
from dashboard.callbacks.common import error_message, progress_reporter, selected_index
from dashboard.config import AppConfig


def method_params(method: str, values: list, control_ids: list[dict], config: AppConfig) -> dict:
    """The parameters of ``method`` from the pattern-matched controls, coerced to their specs."""
    spec = attribution.METHODS[method]
    by_name = {p.name: p for p in spec.params}
    raw = attribution.suggested_params(method, state.dataset(config).image_shape)
    raw.update({cid["name"]: controls.control_value(by_name[cid["name"]], value)
                for cid, value in zip(control_ids, values) if cid["method"] == method and cid["name"] in by_name})
    params = spec.coerce(raw)
    if method == "occlusion":
        params["data_mean"] = tuple(state.dataset(config).channel_mean)
    return params


def choose_target(config: AppConfig, index: int, target, use_predicted) -> tuple[int, str]:
    """The class to explain: the predicted one when asked, else the dropdown's, else the true class."""
    dataset = state.dataset(config)
    if use_predicted:
        with torch.no_grad():
            logits = state.model(config)(dataset.image(index)[None].to(state.device(config)))
        return int(logits.argmax()), "predicted"
    if isinstance(target, int) and 0 <= target < len(dataset.classes):
        return target, "chosen"
    return int(dataset.labels[index]), "true"


def _graph(method: str, variant: str, figure) -> dcc.Graph:
    return dcc.Graph(id={"type": "attribution-graph", "method": method, "variant": variant}, figure=figure,
                     config=theme.graph_config(f"featurescope-{method}-{variant}"))


def _panel_figure(method: str, values: torch.Tensor, image, class_name: str, display: str, opacity: float,
                  title: str, clean_probability: float):
    if method == "occlusion":
        probability = (clean_probability - values).numpy()
        return figures.occlusion_figure(probability, image, class_name, display, opacity, title)
    return figures.attribution_figure(values.numpy(), image, title, display, opacity)


def attribution_panels(config: AppConfig, index: int, methods: list[str], values: list, control_ids: list[dict],
                       target, use_predicted, display: str, opacity: float, sanity: bool, progress=None) -> list:
    """One panel per chosen method (and, for the sanity check, its twin on the untrained model)."""
    report = progress or (lambda _f, _t: None)
    dataset = state.dataset(config)
    model = state.model(config)
    image = dataset.image(index)
    target_index, reason = choose_target(config, index, target, use_predicted)
    class_name = dataset.classes[target_index]
    with torch.no_grad():
        clean = float(torch.softmax(model(image[None].to(state.device(config))), 1)[0, target_index])
    models = [("trained", model)] + ([("untrained", state.untrained_model(config))] if sanity else [])
    steps = max(1, len(methods) * len(models))
    panels = []
    for m, method in enumerate(m for m in attribution.METHODS if m in methods):
        params = method_params(method, values, control_ids, config)
        label = attribution.METHODS[method].label
        maps = {}
        for k, (variant, net) in enumerate(models):
            done = (m * len(models) + k) / steps

            def step(fraction, text, done=done):
                report(done + fraction / steps, f"{label}: {text}")

            report(done, f"{label} ({variant} model)")
            maps[variant] = attribution.attribution_map(net, image, target_index, method, params, progress=step)
        graphs = [_graph(method, "trained", _panel_figure(
            method, maps["trained"], image.numpy(), class_name, display, opacity,
            f"{label} · class {class_name} ({reason})", clean))]
        if sanity:
            rho = attribution.rank_correlation(maps["trained"], maps["untrained"])
            with torch.no_grad():
                clean_untrained = float(torch.softmax(models[1][1](image[None].to(state.device(config))), 1)[0, target_index])
            graphs.append(_graph(method, "untrained", _panel_figure(
                method, maps["untrained"], image.numpy(), class_name, display, opacity,
                f"untrained model · rank correlation ρ = {rho:.2f}", clean_untrained)))
        panels.append(html.Div(graphs, className="attribution-panel", **{"data-method": method}))
    report(1.0, "done")
    return panels


def inversion_figure(config: AppConfig, index: int, method: str, layer: str, channel) -> tuple:
    """(figure, channel used) of the deconvnet / guided-backprop reconstruction from one channel."""
    dataset = state.dataset(config)
    model = state.model(config)
    image = dataset.image(index)
    activations.module(model, layer)
    if channel is None or channel == "":
        channel = attribution.most_active_channel(model, image, layer)
        how = "most active channel"
    else:
        channel, how = int(channel), "channel"
    reconstruction = attribution.cached_inversion(model, image, layer, channel, method)
    title = f"{attribution.INVERSIONS[method]} · layer {layer}, {how} {channel} · image #{index}"
    return figures.inversion_figure(reconstruction.numpy(), image.numpy(), title), channel


def register(app, config: AppConfig) -> None:
    @app.callback(
        Output(ids.ATTRIBUTION_PANELS, "children"),
        Output(ids.ATTRIBUTION_MESSAGE, "children"),
        Input(ids.SELECTION, "data"),
        Input(ids.ATTRIBUTION_METHODS, "value"),
        Input(ids.ATTRIBUTION_PARAM_ANY, "value"),
        Input(ids.ATTRIBUTION_TARGET, "value"),
        Input(ids.ATTRIBUTION_USE_PREDICTED, "value"),
        Input(ids.ATTRIBUTION_DISPLAY, "value"),
        Input(ids.ATTRIBUTION_OPACITY, "value"),
        Input(ids.ATTRIBUTION_SANITY, "n_clicks"),
        State(ids.ATTRIBUTION_PARAM_ANY, "id"),
        prevent_initial_call=True,  # nothing is selected yet; a selection from the URL still triggers it
        background=True,
        interval=250,
        progress=[Output(ids.ATTRIBUTION_PROGRESS, "value"), Output(ids.ATTRIBUTION_PROGRESS_TEXT, "children")],
        running=[(Output(ids.ATTRIBUTION_PROGRESS_BLOCK, "style"), {"display": "flex"}, {"display": "none"})],
    )
    def update_attribution(set_progress, selection, methods, values, target, use_predicted, display, opacity,
                           sanity_clicks, control_ids):
        index = selected_index(selection)
        if index is None:
            return no_update, None
        if not methods:
            return [], controls.message("Pick at least one method.", "info")
        try:
            panels = attribution_panels(config, index, methods, values, control_ids, target, bool(use_predicted),
                                        display, float(opacity if opacity is not None else 0.6),
                                        bool(sanity_clicks and sanity_clicks % 2), progress_reporter(set_progress))
        except Exception as error:
            return no_update, error_message(error)
        return panels, None

    app.clientside_callback(
        """function(n) { return (n % 2) ? 'button button-active' : 'button'; }""",
        Output(ids.ATTRIBUTION_SANITY, "className"),
        Input(ids.ATTRIBUTION_SANITY, "n_clicks"),
    )

    @app.callback(
        Output(ids.INVERSION_FIGURE, "figure"),
        Output(ids.INVERSION_CHANNEL, "placeholder"),
        Output(ids.INVERSION_MESSAGE, "children"),
        Input(ids.SELECTION, "data"),
        Input(ids.INVERSION_METHOD, "value"),
        Input(ids.INVERSION_LAYER, "value"),
        Input(ids.INVERSION_CHANNEL, "value"),
        Input(ids.LAYER, "value"),
        prevent_initial_call=True,
        background=True,
        interval=250,
        progress=[Output(ids.INVERSION_PROGRESS, "value"), Output(ids.INVERSION_PROGRESS_TEXT, "children")],
        running=[(Output(ids.INVERSION_PROGRESS_BLOCK, "style"), {"display": "flex"}, {"display": "none"})],
    )
    def update_inversion(set_progress, selection, method, inversion_layer, channel, explore_layer):
        index = selected_index(selection)
        if index is None:
            return no_update, no_update, None
        progress_reporter(set_progress)(0.1, f"projecting one channel back to the image ({method})")
        try:
            figure, used = inversion_figure(config, index, method, inversion_layer or explore_layer, channel)
        except Exception as error:
            return no_update, no_update, error_message(error)
        return figure, f"most active: {used}" if channel in (None, "") else "most active", None
