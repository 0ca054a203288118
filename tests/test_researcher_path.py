"""A researcher's own torchvision model, checkpoint and image folder (real photos from scikit-image), end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from compute import attribution, data
from compute.jobs.table import run
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
    request = explore.scatter_request("layer3", "pca", "auto")
    placed, _status = explore.scatter_render(context)(run(source, request.job, request.params), request.context)
    assert "channel means" in placed["title"]  # 256 x 14 x 14 maps are embedded from their means
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


# ------------------------------------------------------------------------------------------ models and data of one's own

@pytest.fixture(scope="module")
def generated_folder(tmp_path_factory):
    """24 JPEGs of 500x375 in three classes, and one corrupt file."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("generated")
    for k in range(24):
        folder = root / f"class_{k % 3}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(folder / f"{k:02d}.jpg")
    (root / "class_0" / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def test_random_resnet18_on_a_generated_folder_streams_its_features_for_the_scatter(generated_folder, cache_root):
    from compute import extraction
    from compute.jobs import workspace

    config = AppConfig(model="resnet18", weights="random", data=str(generated_folder), image_size=64,
                       cache_dir=str(cache_root))
    description = describe(config)
    assert description["image_shape"] == [3, 64, 64] and description["count"] == 24
    assert description["skipped"] == ["class_0/corrupt.jpg"] and description["default_layer"] == "avgpool"
    # random weights get a head of the data's class count, so every prediction names one of its classes
    assert description["model_classes"] == ["class_0", "class_1", "class_2"]
    result = run(config.source(), "explore.scatter", {"layer": "layer4", "method": "pca", "features": "pooled"})
    assert result["coords"].shape == (24, 2) and result["mode"] == "pooled"
    assert set(result["predicted"].tolist()) <= {0, 1, 2}
    space = workspace.workspace(config.source())
    directory = extraction.features_directory(space.model(), space.dataset, "layer4", "pooled")
    streamed = np.load(directory / "features.npy")
    assert streamed.shape == (24, 512)
    from compute import activations

    expected = activations.extract(space.model(), space.dataset.images, "layer4", pooled=True)
    np.testing.assert_allclose(streamed, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_mnist_on_disk_feeds_the_built_in_model_at_32_pixels(tmp_path, cache_root, trained_model):
    from tests.test_data import write_mnist

    write_mnist(tmp_path, "MNIST")
    config = AppConfig(data=f"mnist:{tmp_path}", image_size=32, cache_dir=str(cache_root))
    description = describe(config)
    assert description["image_shape"] == [1, 32, 32] and description["count"] == 17
    assert description["classes"][0] == "0 - zero"


def test_a_torchscript_file_and_a_module_function_describe(tmp_path, cache_root, generated_folder, monkeypatch):
    torch.manual_seed(0)
    original = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    torch.jit.save(torch.jit.script(original), str(tmp_path / "model.pt"))
    scripted = describe(AppConfig(model=str(tmp_path / "model.pt"), data=str(generated_folder), image_size=64))
    assert scripted["layers"] == ["logits"] and scripted["default_layer"] == "logits"
    (tmp_path / "builders.py").write_text("import torchvision\n\ndef small():\n"
                                          "    return torchvision.models.resnet18(weights=None, num_classes=3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    built = describe(AppConfig(model="builders:small", data=str(generated_folder), image_size=64))
    assert "layer4" in built["layers"] and built["layer_shapes"]["layer4"] == [512, 2, 2]


def test_faithfulness_curves_of_a_random_resnet18_on_colour_224_pixel_images(generated_folder, cache_root):
    from dashboard.views import faithfulness as faithfulness_view
    from tests.test_views_faithfulness import setting_controls

    config = AppConfig(model="resnet18", weights="random", data=str(generated_folder), image_size=224,
                       cache_dir=str(cache_root))
    context = ViewContext(config, None, Meta.from_description(describe(config)))
    assert context.meta.image_shape == [3, 224, 224]
    values, ids = setting_controls(steps=4, random_orders=1, road=True)
    request = faithfulness_view.curves_request(context)({"index": 1}, ["saliency", "gradcam"], [], None, [], values,
                                                        [], ids)
    result = run(config.source(), request.job, request.params)
    assert result["image"].shape == (3, 224, 224)
    assert result["kinds"] == ["deletion", "insertion", "road_morf", "road_lerf"]
    for kind, points in (("deletion", 5), ("insertion", 5), ("road_morf", 4), ("road_lerf", 4)):
        for name in ("saliency", "gradcam"):
            curve = result["curves"][kind][name]
            assert curve.shape == (points,) and np.all((curve >= 0) & (curve <= 1))
    # deletion starts, and insertion ends, at the clean image: the same probability for both maps
    assert result["curves"]["deletion"]["saliency"][0] == pytest.approx(result["curves"]["deletion"]["gradcam"][0])
    figure, _table, verdict, _notes = faithfulness_view.curves_render(context)(result, request.context)
    assert len(figure.data) == 4 * 3
    assert "most faithful" in verdict.children or "no map beats" in verdict.children
    step = faithfulness_view.step_request({"points": [{"customdata": ["gradcam", "road_lerf", 2]}]}, None,
                                          {"key": "k", "context": request.context})
    pictured = run(config.source(), step.job, step.params)
    assert pictured["image"].shape == (3, 224, 224)
    assert pictured["probability"] == pytest.approx(float(result["curves"]["road_lerf"]["gradcam"][2]), abs=1e-5)
