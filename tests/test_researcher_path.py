"""A researcher's own torchvision model, checkpoint and image folder (real photos from scikit-image), end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from compute import attribution, data
from compute.workspace import run
from dashboard.config import AppConfig
from dashboard.views import attribution as attribution_view
from dashboard.views import details, explore
from dashboard.views.context import Meta, ViewContext


@pytest.fixture(scope="module")
def photo_config(tmp_path_factory, cache_root):
    from skimage import data as photos

    root = tmp_path_factory.mktemp("photos")
    for label, names in {"animal": ["chelsea", "astronaut"], "object": ["coffee", "rocket"]}.items():
        (root / label).mkdir()
        for name in names:
            Image.fromarray(getattr(photos, name)()).save(root / label / f"{name}.jpg")
    torch.manual_seed(0)
    checkpoint = root.parent / "resnet18.pt"
    torch.save(torchvision.models.resnet18(weights=None, num_classes=2).state_dict(), checkpoint)
    return AppConfig(model="resnet18", checkpoint=str(checkpoint), data=str(root), layer="layer3",
                     cache_dir=str(cache_root))


def test_photos_load_lazily_at_224_pixels(photo_config):
    dataset = data.load(photo_config.data)
    assert dataset.classes == ["animal", "object"] and len(dataset) == 4
    assert tuple(dataset.images[1:3].shape) == (2, 3, 224, 224)
    assert 0.0 <= float(dataset.images[0].min()) and float(dataset.images[0].max()) <= 1.0


def describe(config: AppConfig) -> dict:
    return run(config.source(), "describe", {})


def test_the_description_accepts_the_matching_checkpoint(photo_config):
    description = describe(photo_config)
    assert "layer3" in description["layers"] and description["default_layer"] == "layer3"
    unset = AppConfig(model="resnet18", checkpoint=photo_config.checkpoint, data=photo_config.data)
    assert describe(unset)["default_layer"] == "avgpool"


def test_scatter_details_and_attributions_work_on_photos(photo_config):
    context = ViewContext(photo_config, None, Meta.from_description(describe(photo_config)))
    source = photo_config.source()
    request = explore.scatter_request("layer3", "pca", "auto", "true", None)
    figure, _status = explore.scatter_render(context)(run(source, request.job, request.params), request.context)
    assert "channel means" in figure.layout.title.text  # 256 x 14 x 14 maps are embedded from their means
    request = details.details_request({"index": 0}, "layer3", "per-map")
    *_, maps, _sparsity = details.details_render(context)(run(source, request.job, request.params), request.context)
    assert "the 64 most active of 256" in maps.layout.title.text
    assert attribution.suggested_params("occlusion", (3, 224, 224))["box"] == 56
    request = attribution_view.attribution_request(context)({"index": 2}, ["occlusion", "gradcam"], [], None, [],
                                                            "overlay", 0.5, 0, [])
    result = run(source, request.job, request.params)
    panels, _notes = attribution_view.attribution_render(context)(result, request.context)
    assert len(panels) == 2
    occlusion_drop = [t for t in panels[0].children[0].figure.data if t.type == "heatmap"][-1]
    assert np.asarray(occlusion_drop.z).shape == (224, 224)
    np.testing.assert_allclose(np.asarray(occlusion_drop.z, dtype=np.float32), result["maps"]["occlusion"]["map"],
                               atol=1e-6)
