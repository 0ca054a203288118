"""A researcher's own torchvision model, checkpoint and image folder (real photos from scikit-image), end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from compute import attribution, data
from dashboard import state
from dashboard.callbacks import attribution as attribution_view
from dashboard.callbacks import explore, features
from dashboard.config import AppConfig


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


def test_validation_accepts_the_matching_checkpoint(photo_config):
    state.validate(photo_config)
    assert "layer3" in state.layer_names(photo_config)
    assert state.default_layer(AppConfig(model="resnet18", checkpoint=photo_config.checkpoint,
                                         data=photo_config.data)) == "avgpool"


def test_scatter_details_and_attributions_work_on_photos(photo_config):
    figure, status = explore.scatter_figure(photo_config, "layer3", "pca", "auto", "true", None)
    assert "channel means" in figure.layout.title.text  # 256 x 14 x 14 maps are embedded from their means
    title, _image, _top, maps, _sparsity = features.detail_panels(photo_config, 0, "layer3", "per-map")
    assert "the 64 most active of 256" in maps.layout.title.text
    assert attribution.suggested_params("occlusion", (3, 224, 224))[ "box"] == 56
    panels = attribution_view.attribution_panels(photo_config, 2, ["occlusion", "gradcam"], [], [], None, False,
                                                 "overlay", 0.5, False)
    assert len(panels) == 2
    occlusion_map = np.asarray(panels[0].children[0].figure.data[0].z)
    assert occlusion_map.shape == (224, 224)
