"""The tables the web server reads (compute/specs): plain data whose entries name their functions, and parameter
specs that turn anything from a form or a link into a valid value."""
from __future__ import annotations

import pytest

from compute.specs import adversarial, attribution, embedding, maximize, models
from compute.specs.params import Method, Param, resolve


@pytest.mark.parametrize("text, expected", [("false", False), ("False", False), ("0", False), ("off", False),
                                            ("no", False), ("true", True), ("1", True), ("on", True),
                                            (True, True), (False, False), (0, False), (1, True)])
def test_a_boolean_from_a_link_or_a_form_means_what_it_says(text, expected):
    # bool("false") is True: a link's "absolute=false" once switched the option on.
    assert Param("absolute", "bool", True).coerce(text) is expected


def test_numbers_are_clamped_and_choices_fall_back_to_the_default():
    steps = Param("steps", "int", 10, low=1, high=200)
    assert steps.coerce("100000") == 200 and steps.coerce(-5) == 1 and steps.coerce("") == 10
    assert Param("method", "choice", "fgsm", choices=("fgsm", "pgd")).coerce("rm -rf") == "fgsm"


TABLES = {
    "attribution": attribution.METHODS, "embedding": embedding.EMBEDDERS, "objectives": maximize.OBJECTIVES,
    "parameterizations": maximize.PARAMETERIZATIONS, "transforms": maximize.TRANSFORMS,
    "regularizers": maximize.REGULARIZERS,
}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_entry_names_a_function_that_exists(table):
    for name, entry in TABLES[table].items():
        assert isinstance(entry.implementation, str), f"{table}.{name}: the table must stay plain data"
        assert callable(entry.function), f"{table}.{name}: {entry.implementation} does not resolve"
        for reference in entry.code_references():
            assert callable(reference)
    for name, spec in models.MODELS.items():
        assert isinstance(spec.build, type)


def test_a_reference_that_does_not_exist_says_which():
    with pytest.raises(AttributeError):
        resolve("compute.gradients:no_such_function")
    assert resolve(len) is len
    method = Method("compute.gradients:saliency", "Saliency")
    from compute import gradients

    assert method.function is gradients.saliency


def test_the_attack_spec_clamps_what_a_link_asks_for():
    asked = {"method": "pgd", "epsilon": 3.0, "steps": 100000, "step_size": None, "seed": -4, "other": "kept"}
    clamped = adversarial.coerced(adversarial.ATTACK_PARAMS, asked)
    assert clamped == {"method": "pgd", "epsilon": 1.0, "steps": adversarial.MAX_STEPS, "step_size": None, "seed": 0,
                       "other": "kept"}
    assert adversarial.epsilons([0.5, 0.1, 0.1, -1, 7] + [k / 100 for k in range(40)])[:3] == (0.0, 0.01, 0.02)
    assert len(adversarial.epsilons([k / 100 for k in range(40)])) == adversarial.MAX_EPSILONS
