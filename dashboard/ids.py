"""Every component id, once."""
from dash import ALL

URL = "url"
SELECTION = "selection"
STATUS = "status-line"

LAYER = "layer"
EMBEDDING = "embedding-method"
FEATURES = "feature-mode"
COLOR_BY = "color-by"
SCATTER = "scatter"
SCATTER_MESSAGE = "scatter-message"
SCATTER_PROGRESS = "scatter-progress"
SCATTER_PROGRESS_TEXT = "scatter-progress-text"
SCATTER_PROGRESS_BLOCK = "scatter-progress-block"

DETAIL_TITLE = "detail-title"
DETAIL_IMAGE = "detail-image"
DETAIL_TOPK = "detail-topk"
DETAIL_MESSAGE = "detail-message"
MAP_SCALE = "map-scale"
FEATURE_MAPS = "feature-maps"
SPARSITY = "sparsity"

ATTRIBUTION_METHODS = "attribution-methods"
ATTRIBUTION_TARGET = "attribution-target"
ATTRIBUTION_USE_PREDICTED = "attribution-use-predicted"
ATTRIBUTION_DISPLAY = "attribution-display"
ATTRIBUTION_OPACITY = "attribution-opacity"
ATTRIBUTION_SANITY = "attribution-sanity"
ATTRIBUTION_PANELS = "attribution-panels"
ATTRIBUTION_MESSAGE = "attribution-message"
ATTRIBUTION_PROGRESS = "attribution-progress"
ATTRIBUTION_PROGRESS_TEXT = "attribution-progress-text"
ATTRIBUTION_PROGRESS_BLOCK = "attribution-progress-block"
ATTRIBUTION_CANCEL = "attribution-cancel"


def attribution_param(method: str, name: str) -> dict:
    """Pattern-matching id of one method's parameter control."""
    return {"type": "attribution-param", "method": method, "name": name}


ATTRIBUTION_PARAM_ANY = {"type": "attribution-param", "method": ALL, "name": ALL}

INVERSION_METHOD = "inversion-method"
INVERSION_LAYER = "inversion-layer"
INVERSION_CHANNEL = "inversion-channel"
INVERSION_FIGURE = "inversion-figure"
INVERSION_MESSAGE = "inversion-message"
INVERSION_PROGRESS = "inversion-progress"
INVERSION_PROGRESS_TEXT = "inversion-progress-text"
INVERSION_PROGRESS_BLOCK = "inversion-progress-block"
