"""The views table: one unit per view (its layout, its ids, its callbacks), in page order.

Each view module has ``NAME``, ``TITLE``, ``OPENABLE`` (shown in the view switcher and run only while open),
``layout(context)`` and ``register(app, context)``; adding a view is one module and one entry here. Page-wide ids
(the selection, the layer, the scatter) live in :mod:`dashboard.views.context`, so views never import each other.
"""
from dashboard.views import (adversarial, attribution, channels, code, details, evolution, explore, export,
                             faithfulness, gallery, inversion, maximize, neighbours, theme_switch, thumbnail_overlay,
                             tour, upload, weights)

VIEWS = (
    explore, details, attribution, faithfulness, inversion, maximize, weights, channels, evolution, adversarial,
    theme_switch, tour, thumbnail_overlay, code, export, upload, neighbours, gallery,
)
