"""An image folder's mean colour is its own (not ImageNet's): measured from its images, sampled above a size, and
used by occlusion's "data mean" fill and maximization's centre."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from compute import data
from compute.data_mean import data_mean, folder_mean, sample_indices
from compute.jobs.table import run
from compute.jobs.workspace import workspace
from compute.specs.source import Source

IMAGENET_MEAN = (0.485, 0.456, 0.406)
# Solid colours (a solid image stays solid when resized and cropped), of several shapes, in two classes.
COLOURS = {"cats": [(250, 10, 30), (200, 40, 0), (255, 255, 5)], "dogs": [(0, 0, 250), (20, 220, 90), (9, 0, 1)]}
SHAPES = [(20, 30), (31, 17), (16, 16)]


@pytest.fixture(scope="module")
def solid_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("solid")
    for name, colours in COLOURS.items():
        (root / name).mkdir()
        for k, (colour, (width, height)) in enumerate(zip(colours, SHAPES)):
            Image.new("RGB", (width, height), colour).save(root / name / f"{k}.png")
    return root


def expected_mean(colours) -> tuple[float, ...]:
    return tuple(np.asarray(colours, dtype=np.float64).mean(axis=0) / 255.0)


ALL = [colour for colours in COLOURS.values() for colour in colours]


def test_a_folders_mean_is_the_mean_of_its_own_images(solid_folder):
    dataset = data.load_folder(solid_folder, size=16)
    assert dataset.channel_mean == ()  # unknown until measured, never ImageNet's
    got = data_mean(dataset)
    assert got == pytest.approx(expected_mean(ALL), abs=1e-9)
    assert max(abs(a - b) for a, b in zip(got, IMAGENET_MEAN)) > 0.05
    # Every pixel of a decoded image is its colour: the mean over the images as the model sees them.
    decoded = torch.stack([dataset.images[i] for i in range(len(dataset))]).double().mean(dim=(0, 2, 3))
    assert got == pytest.approx(tuple(decoded.tolist()), abs=1e-6)  # float32 pixels


def test_a_data_set_in_memory_keeps_its_stored_mean(digits):
    assert data_mean(digits) == pytest.approx(tuple(digits.images.double().mean(dim=(0, 2, 3)).tolist()), abs=1e-6)


def test_a_large_folder_is_measured_on_a_seeded_sample_of_distinct_images(solid_folder):
    chosen = sample_indices(6, limit=4, seed=0)
    assert len(set(chosen.tolist())) == 4 and list(chosen) == sorted(chosen) and chosen.max() < 6
    np.testing.assert_array_equal(chosen, sample_indices(6, limit=4, seed=0))
    np.testing.assert_array_equal(sample_indices(3, limit=4), [0, 1, 2])  # a small folder: every image
    dataset = data.load_folder(solid_folder, size=16)
    got = folder_mean(dataset, limit=4, seed=0)
    assert got == pytest.approx(expected_mean([ALL[i] for i in chosen]), abs=1e-9)


def test_the_mean_is_measured_again_when_the_folder_changes(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "a" / "one.png")
    assert data_mean(data.load_folder(tmp_path, size=8)) == pytest.approx((1.0, 0.0, 0.0))
    Image.new("RGB", (8, 8), (0, 0, 255)).save(tmp_path / "a" / "two.png")
    assert data_mean(data.load_folder(tmp_path, size=8)) == pytest.approx((0.5, 0.0, 0.5))


@pytest.fixture(scope="module")
def folder_source(solid_folder) -> Source:
    return Source(model="resnet18", weights="random", data=str(solid_folder), image_size=32)


def test_occlusions_data_mean_fill_is_the_folders_mean(folder_source):
    """One box over the whole image: the occluded copy is a solid image of the fill, so p(class) everywhere is the
    model's probability for a solid image of the folder's mean colour."""
    result = run(folder_source, "attribution.maps", {
        "index": 0, "target": 0, "methods": {"occlusion": {"box": 64, "stride": 32, "fill": "data mean"}}})
    model = workspace(folder_source).model()

    def probability_of_solid(colour) -> float:
        solid = torch.tensor(colour, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, 32, 32)
        with torch.no_grad():
            return float(torch.softmax(model(solid), 1)[0, 0])

    probability = result["maps"]["occlusion"]["probability"]
    expected = probability_of_solid(expected_mean(ALL))
    np.testing.assert_allclose(probability, np.full((32, 32), expected), rtol=1e-5, atol=1e-6)
    assert abs(expected - probability_of_solid(IMAGENET_MEAN)) > 1e-4  # the test can tell the two means apart


def test_maximizations_centre_is_the_folders_mean(folder_source):
    result = run(folder_source, "maximize.run", {"objective": ["class", 1], "steps": 1, "parameterization": "pixels"})
    assert result["settings"]["center"] == pytest.approx(expected_mean(ALL), abs=1e-6)
