"""The selected sample as a link: ``sample=7``, an image derived from it (``variant=adversarial,method:pgd,...`` and
its ``label``) and the ``epoch`` of the model to use (see :mod:`dashboard.views.url_kinds` for the other kinds)."""
from __future__ import annotations

import dataclasses
import json
import math
import re
import string
from dataclasses import dataclass
from typing import Any

from compute.specs.adversarial import ATTACK_PARAMS, coerced
from dashboard.views.url_kinds import Kind


VARIANT_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,40}"
# A variant's parameters from a link pass the same spec as the view's controls (a link asking for 100,000 PGD steps
# gets the view's limit); the compute process clamps them again.
VARIANT_SPECS = {"adversarial": ATTACK_PARAMS}


@dataclass(frozen=True)
class Selection(Kind):
    """The selected sample: ``sample=7``, and for an image derived from it ``variant=adversarial,method:pgd,...``
    (``name:value``, each a number, null, true, false or a name) with its ``label``, and the ``epoch`` of the model
    to use."""

    count: int = 0

    def bind(self, component, meta, default):
        return dataclasses.replace(self, count=int(meta.count))

    def keys(self, key):
        return (key, "variant", "label", "epoch")

    def encode(self, key, value):
        if not value:
            return {}
        texts = {key: str(value["index"])}
        variant = value.get("variant")
        if variant:
            params = [f"{name}:{json.dumps(v) if not isinstance(v, str) else v}" for name, v in variant.items()
                      if name != "kind"]
            texts["variant"] = ",".join([variant["kind"], *params])
            if value.get("label"):
                texts["label"] = value["label"]
        if value.get("epoch") is not None:
            texts["epoch"] = str(value["epoch"])
        return texts

    def decode(self, key, query):
        index = query[key]
        if not re.fullmatch(r"\d{1,9}", index) or int(index) >= self.count:
            raise ValueError(index)
        selection: dict[str, Any] = {"index": int(index)}
        if query.get("variant"):
            kind, *params = query["variant"].split(",")
            if not re.fullmatch(VARIANT_NAME, kind):
                raise ValueError(kind)
            variant = {"kind": kind}
            for param in params:
                name, _, text = param.partition(":")
                if not re.fullmatch(VARIANT_NAME, name):
                    raise ValueError(name)
                variant[name] = _scalar(text)
            if kind in VARIANT_SPECS:
                known = {p.name for p in VARIANT_SPECS[kind]}
                clamped = coerced(VARIANT_SPECS[kind], {k: v for k, v in variant.items() if k in known})
                variant.update({k: v for k, v in clamped.items() if k in variant})
            selection["variant"] = variant
            if query.get("label"):
                selection["label"] = query["label"][:120]
        if query.get("epoch"):
            if not re.fullmatch(r"\d{1,4}", query["epoch"]):
                raise ValueError(query["epoch"])
            selection["epoch"] = int(query["epoch"])
        return selection

    def sample(self, rng):
        if rng.random() < 0.2:
            return None
        selection = {"index": rng.randrange(self.count)}
        if rng.random() < 0.5:
            selection["variant"] = {"kind": "adversarial", "method": rng.choice(["fgsm", "pgd"]),
                                    "epsilon": rng.uniform(0, 0.3), "steps": rng.randint(1, 100),
                                    "step_size": rng.choice([None, rng.uniform(0, 0.1)]),
                                    "target": rng.choice([None, rng.randint(0, 9)]), "seed": rng.randint(0, 9)}
            if rng.random() < 0.7:
                characters = string.printable[:-5] + "εé→ "  # any text: & = # % and non-ASCII included
                selection["label"] = "".join(rng.choice(characters) for _ in range(rng.randint(1, 30)))
        if rng.random() < 0.3:
            selection["epoch"] = rng.randint(0, 30)
        return selection


def _scalar(text: str):
    """A variant parameter: a JSON number, null, true or false, else the name as it is."""
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(text)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str) and re.fullmatch(VARIANT_NAME, value):
        return value
    raise ValueError(text)
