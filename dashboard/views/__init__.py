"""The views table: one unit per view (its layout, its ids, its callbacks), in page order.

Each view module has ``NAME``, ``TITLE``, ``OPENABLE`` (shown in the view switcher and run only while open),
``layout(context)`` and ``register(app, context)``; adding a view is one module and one line here.
"""
from dashboard.views import attribution, details, explore, inversion

VIEWS = (explore, details, attribution, inversion)
from dashboard.views import maximize; VIEWS += (maximize,)  # noqa: E402,E702
from dashboard.views import channels, weights; VIEWS += (weights, channels)  # noqa: E402,E702
from dashboard.views import evolution; VIEWS += (evolution,)  # noqa: E402,E702
from dashboard.views import adversarial; VIEWS += (adversarial,)  # noqa: E402,E702
from dashboard.views import theme_switch; VIEWS += (theme_switch,)  # noqa: E402,E702
from dashboard.views import tour; VIEWS += (tour,)  # noqa: E402,E702
from dashboard.views import thumbnail_overlay, code, export; VIEWS += (thumbnail_overlay, code, export)  # noqa: E402,E702
from dashboard.views import upload, neighbours, gallery; VIEWS += (upload, neighbours, gallery)  # noqa: E402,E702
from dashboard.views import faithfulness; VIEWS = (*VIEWS[:VIEWS.index(attribution) + 1], faithfulness, *VIEWS[VIEWS.index(attribution) + 1:])  # noqa: E402,E702
