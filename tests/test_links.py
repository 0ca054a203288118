"""Every view is a link: the URL round trip of every view's state, the page built from a link, bad links."""
from __future__ import annotations

import random
from urllib.parse import parse_qsl

import flask
import pytest

from dashboard.app import _page
from dashboard.views import VIEWS, links, tour
from dashboard.views.links import NOTICE, Entry, all_entries, decode, encode, resolve

ROUNDS = 400


@pytest.fixture(scope="module")
def page(context):
    return _page(context)


@pytest.fixture(scope="module")
def resolved(page, context):
    return resolve(page(), all_entries(VIEWS), context.meta)


def _component(tree, component_id):
    for component in tree._traverse():
        if getattr(component, "id", None) == component_id:
            return component
    raise KeyError(component_id)


def _built_from(page, context, search: str):
    """The page as the layout route builds it for a browser at ``/?search`` (the page's URL is the referrer)."""
    server = flask.Flask(__name__)
    with server.test_request_context("/_dash-layout", headers={"Referer": f"http://localhost/{search}"}):
        return links.restoring(page, context)()


def test_every_declared_entry_is_a_control_of_the_page(context, page, resolved):
    entries = all_entries(VIEWS)
    assert [item.key for item in resolved] == [entry.key for entry in entries]
    keys = {item.key for item in resolved}
    # One entry per piece of state the issue names, from every view.
    for key in ("layer", "embedding", "features", "color", "sample", "views", "methods", "target", "sanity",
                "occlusion.box", "smoothgrad.sigma", "gradcam.layer", "inversion.channel", "maximize.kind",
                "maximize.jitter.pixels", "maximize.run.steps", "weights.layer", "channels.channel",
                "evolution.run", "attack.epsilon", "attack.method", "tour", "neighbours.count", "gallery.drag",
                "export.format", "thumbnails.size"):
        assert key in keys, key


def test_keys_declared_twice_are_refused():
    class View:
        URL_STATE = [Entry("layer", "x")]

    with pytest.raises(ValueError, match="layer"):
        all_entries([View, View])


def _state(resolved, values: dict) -> dict:
    return {item.key: values.get(item.key, item.default) for item in resolved}


def _same(a, b) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return a == b  # a number box holds 1 and 1.0 alike (JSON does not tell them apart)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_random_states_of_every_view_round_trip_through_the_url(resolved):
    rng = random.Random(20)
    for _ in range(ROUNDS):
        # Each entry at its default or a random value of its domain (about half of them changed per state).
        values = {item.key: item.kind.sample(rng) for item in resolved if rng.random() < 0.5}
        search = encode(resolved, values)
        decoded, ignored = decode(resolved, search)
        assert ignored == [], (search, ignored)
        expected, got = _state(resolved, values), _state(resolved, decoded)
        for key in expected:
            assert _same(got[key], expected[key]), (key, expected[key], got[key], search)


def test_the_default_state_is_the_bare_url(resolved):
    assert encode(resolved, {}) == ""
    assert decode(resolved, "") == ({}, [])


def test_values_are_written_as_short_readable_keys(resolved):
    search = encode(resolved, {"layer": "pool3", "sample": {"index": 7}, "views": ["attribution", "inversion"],
                               "occlusion.box": 5, "target": 3, "sanity": 1})
    assert dict(parse_qsl(search[1:])) == {"layer": "pool3", "sample": "7", "views": "attribution,inversion",
                                           "occlusion.box": "5", "target": "3", "sanity": "1"}


def test_an_adversarial_selection_and_an_epoch_are_kept(resolved):
    selection = {"index": 12, "variant": {"kind": "adversarial", "method": "pgd", "epsilon": 8 / 255, "steps": 10,
                                          "step_size": None, "target": 3, "seed": 0},
                 "label": "adversarial, PGD 8/255", "epoch": 2}
    search = encode(resolved, {"sample": selection})
    assert "variant=adversarial,method:pgd,epsilon:0.03137254901960784,steps:10," in search
    decoded, ignored = decode(resolved, search)
    assert ignored == [] and decoded["sample"] == selection


def test_old_explore_links_still_open_their_view(resolved):
    decoded, ignored = decode(resolved, "?layer=pool3&embedding=pca&features=auto&color=correct&sample=7"
                                        "&views=inversion")
    assert ignored == []
    assert decoded == {"layer": "pool3", "embedding": "pca", "features": "auto", "color": "correct",
                       "sample": {"index": 7}, "views": ["inversion"]}


def test_the_page_built_from_a_link_holds_its_values(page, context):
    tree = _built_from(page, context, "?layer=pool3&sample=7&views=attribution,inversion&methods=occlusion,gradcam"
                                      "&occlusion.box=5&gradcam.layer=conv2&target=3&sanity=1&inversion.channel=4"
                                      "&attack.epsilon=12.5&tour=2")
    assert _component(tree, "layer").value == "pool3"
    assert _component(tree, "selection").data == {"index": 7}
    assert _component(tree, "open-views").value == ["attribution", "inversion"]
    assert _component(tree, "attribution-methods").value == ["occlusion", "gradcam"]
    assert _component(tree, {"type": "attribution-param", "method": "occlusion", "name": "box"}).value == 5
    assert _component(tree, {"type": "attribution-param", "method": "gradcam", "name": "layer"}).value == "conv2"
    assert _component(tree, "attribution-target").value == 3
    assert _component(tree, "attribution-sanity").n_clicks == 1
    assert _component(tree, "inversion-channel").value == 4
    assert _component(tree, "adversarial-epsilon").value == 12.5
    assert _component(tree, tour.STEP).data == 2
    assert _component(tree, NOTICE).children is None


def test_an_invalid_link_opens_the_default_view_with_a_notice(page, context):
    default = page()
    tree = _built_from(page, context, "?layer=no-such-layer&sample=99999999&views=attribution,gone&target=42"
                                      "&occlusion.box=abc&smoothgrad.sigma=9&variant=adversarial&color=correct"
                                      "&tour=99&%3Cscript%3E=1")
    for component_id in ("layer", "open-views", "attribution-target"):
        assert getattr(_component(tree, component_id), "value", None) == getattr(_component(default, component_id),
                                                                                  "value", None)
    assert _component(tree, "selection").data is None
    assert _component(tree, "color-by").value == "correct"  # the valid part of the link still applies
    text = str(_component(tree, NOTICE).children.children)
    for key in ("layer", "sample", "views", "target", "occlusion.box", "smoothgrad.sigma", "tour", "<script>"):
        assert f"“{key}”" in text, key


def test_a_variant_without_its_sample_is_ignored(resolved):
    assert decode(resolved, "?variant=adversarial,method:pgd&label=x&color=correct") == (
        {"color": "correct"}, ["variant", "label"])


@pytest.mark.parametrize("search", ["?", "?&&", "?sample=", "?sample=-1", "?sample=1e3", "?opacity=nan",
                                    "?opacity=inf", "?sample=3&variant=adversarial,method:pgd,x:{}",
                                    "?channels.channel=conv1:x", "?evolution.run=../../etc", "?a=%ff%fe"])
def test_malformed_links_never_raise(resolved, search):
    values, ignored = decode(resolved, search)
    assert all(key in {item.key for item in resolved} for key in values)


def test_every_tour_step_is_a_valid_link(resolved, context):
    steps = tour.steps_for({view.NAME for view in VIEWS})
    assert [step.title.split()[0] for step in steps][:3] == ["Features", "The", "Filters"]
    for number in range(1, len(steps) + 1):
        link = tour.step_link(steps, number, list(context.meta.layers))
        decoded, ignored = decode(resolved, link)
        assert ignored == [], (number, link, ignored)
        assert decoded["tour"] == number
        assert steps[number - 1].view in decoded.get("views", []) or steps[number - 1].view == "explore"


def test_the_tour_banner_says_where_it_is_and_links_both_ways(context):
    steps = tour.steps_for({view.NAME for view in VIEWS})
    children, style = tour.banner(steps, 2, list(context.meta.layers))
    assert style == {}
    assert f"step 2 of {len(steps)}" in str(children[0])
    back, forward = children[-1].children[-1].children
    assert back.href.endswith("tour=1") and forward.href.endswith("tour=3")
    assert tour.banner(steps, None, [])[1] == {"display": "none"}
    first, _ = tour.banner(steps, 1, [])
    first_back = first[-1].children[-1].children[0]
    assert not hasattr(first_back, "href") or first_back.href is None


@pytest.mark.parametrize("number", range(1, len(tour.STEPS) + 1))
def test_a_bare_step_link_is_the_whole_step(page, context, number):
    """``?tour=N`` alone opens step N as Next does: its views, its image, its settings; the link's own keys win."""
    steps = tour.steps_for({view.NAME for view in VIEWS})
    step = steps[number - 1]
    bare = _built_from(page, context, f"?tour={number}")
    full = _built_from(page, context, tour.step_link(steps, number, list(context.meta.layers)))
    resolved = resolve(full, all_entries(VIEWS), context.meta)
    for item in resolved:
        component_id = item.entry.component
        assert getattr(_component(bare, component_id), item.entry.prop, None) == \
            getattr(_component(full, component_id), item.entry.prop, None), item.key
    assert _component(bare, "open-views").value == step.query["views"].split(",")
    assert step.view in _component(bare, "open-views").value
    assert _component(bare, "selection").data == {"index": step.query["sample"]}
    assert _component(bare, NOTICE).children is None
    mine = _built_from(page, context, f"?tour={number}&sample=3&views=weights")
    assert _component(mine, "selection").data == {"index": 3}
    assert _component(mine, "open-views").value == ["weights"]
