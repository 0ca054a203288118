"""One module per view; each has ``register(app, config)``."""
from dashboard.callbacks import attribution, explore, features

VIEWS = (explore, features, attribution)


def register_all(app, config) -> None:
    for view in VIEWS:
        view.register(app, config)
