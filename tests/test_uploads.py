"""Uploads: bad files are refused with a clear message; a PNG or JPEG becomes a model input and opens every panel."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from compute import upload_inputs, uploads
from compute.jobs import variants
from compute.jobs.table import run
from compute import upload_inputs
from compute.jobs import variants
from compute.jobs.workspace import workspace
from compute.specs.source import Source
from dashboard.views import upload as upload_view


def png_bytes(pixels: np.ndarray, format: str = "PNG") -> bytes:  # noqa: A002
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format)
    return buffer.getvalue()


def paper_digit(index: int) -> np.ndarray:
    """scikit-learn's 8x8 digit ``index`` drawn as a person would: dark ink on white paper, 64x64 pixels."""
    from sklearn.datasets import load_digits

    scan = load_digits().images[index] / 16.0
    ink = np.kron(scan, np.ones((8, 8)))  # each scan cell an 8x8 block
    return np.round((1.0 - ink) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def uploaded_digit(trained_model):
    return uploads.save(png_bytes(paper_digit(13)), "thirteen.png")


def test_a_file_over_the_limit_is_refused_with_the_limit():
    with pytest.raises(uploads.UploadError, match="limit is 10 MB"):
        uploads.save(b"\x89PNG" + bytes(uploads.MAX_UPLOAD_BYTES), "huge.png")


def test_a_file_that_is_no_image_is_refused():
    with pytest.raises(uploads.UploadError, match="not an image"):
        uploads.save(b"just some text, not pixels", "notes.png")


def test_another_image_format_is_refused_by_name():
    with pytest.raises(uploads.UploadError, match="GIF image; upload a PNG or JPEG"):
        uploads.save(png_bytes(np.zeros((8, 8), np.uint8), "GIF"), "anim.gif")


def test_a_truncated_png_is_reported_as_damaged():
    whole = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    with pytest.raises(uploads.UploadError, match="damaged"):
        uploads.save(whole[: len(whole) // 2], "broken.png")


def test_the_same_file_is_the_same_upload(uploaded_digit):
    again = uploads.save(png_bytes(paper_digit(13)), "copy.png")
    assert again["id"] == uploaded_digit["id"]
    assert uploads.upload_path(again["id"]).exists()
    with pytest.raises(ValueError):
        uploads.upload_path("../../etc/passwd")


def test_a_digit_on_paper_becomes_the_data_sets_own_image(uploaded_digit, digits, trained_model):
    """Inverted, averaged to 8x8 and upsampled, a drawing of scan 13 is the data set's image 13."""
    image = variants.image(workspace(Source()), -1, {"kind": "upload", "id": uploaded_digit["id"]})
    assert image.shape == digits.images[13].shape
    np.testing.assert_allclose(image.numpy(), digits.images[13].numpy(), atol=0.01)
    with torch.no_grad():
        predicted = trained_model(torch.stack([image, digits.images[13]])).argmax(1)
    assert predicted[0] == predicted[1]


def test_a_colour_image_for_a_folder_model_is_resized_and_centre_cropped():
    picture = np.zeros((40, 80, 3), np.uint8)
    picture[:, 20:60] = [0, 255, 0]  # the centre square is green, the sides black
    saved = uploads.save(png_bytes(picture, "JPEG"), "wide.jpg")
    tensor = upload_inputs.as_input(uploads.load(saved["id"]), (3, 20, 20))
    assert tensor.shape == (3, 20, 20)
    assert tensor[1].mean() > 0.95 and tensor[0].max() < 0.1  # only the green middle is left after the crop


def test_every_panel_opens_for_an_upload(uploaded_digit, digits):
    variant = {"kind": "upload", "id": uploaded_digit["id"]}
    expected = variants.image(workspace(Source()), -1, variant).numpy()
    details = run(Source(), "details.panels", {"index": -1, "variant": variant, "layer": "conv2"})
    np.testing.assert_array_equal(details["image"], expected)
    assert details["probabilities"].shape == (10,)
    maps = run(Source(), "attribution.maps", {"index": -1, "variant": variant, "use_predicted": True,
                                               "methods": {"saliency": {}}})
    assert maps["maps"]["saliency"]["map"].shape == expected.shape[1:]
    inversion = run(Source(), "inversion.reconstruct", {"index": -1, "variant": variant, "layer": "conv1"})
    assert inversion["reconstruction"].shape[-2:] == expected.shape[1:]
    neighbours = run(Source(), "neighbours.nearest", {"index": -1, "variant": variant, "layer": "fc1", "k": 5})
    assert 13 in neighbours["indices"].tolist()  # its own original is among the nearest


def test_an_upload_is_placed_into_the_scatter(uploaded_digit, digits, trained_model):
    result = run(Source(), "uploads.place", {"id": uploaded_digit["id"], "layer": "fc1", "method": "pca"})
    scatter = run(Source(), "explore.scatter", {"layer": "fc1", "method": "pca"})
    # PCA places exactly: the drawing of image 13 lands where image 13 is (up to the 8-bit drawing).
    np.testing.assert_allclose(result["point"], scatter["coords"][13], atol=0.05 * np.ptp(scatter["coords"]))
    assert result["placement_message"] is None
    assert abs(result["probabilities"].sum() - 1) < 1e-5


def test_the_page_says_what_is_wrong_and_keeps_the_last_good_upload():
    saved, message = upload_view.accept("data:image/png;base64,%%%not-base64", "x.png")
    assert saved is None and "damaged" in str(message)
    text = base64.b64encode(b"plain text").decode()
    saved, message = upload_view.accept(f"data:text/plain;base64,{text}", "notes.txt")
    assert saved is None and "notes.txt is not an image" in str(message)


def test_a_good_drop_selects_the_upload_for_every_panel():
    encoded = base64.b64encode(png_bytes(paper_digit(3))).decode()
    saved, message = upload_view.accept(f"data:image/png;base64,{encoded}", "three.png")
    assert saved["width"] == 64 and "three.png" in str(message)
    selection = upload_view.selection_for(saved)
    assert selection == {"index": -1, "variant": {"kind": "upload", "id": saved["id"]},
                         "label": "your image: three.png"}
    request = upload_view.place_request(saved, "fc1", "pca", "auto")
    assert request.job == "uploads.place" and request.params["id"] == saved["id"]


def test_an_image_folder_with_a_torchvision_model_gets_every_piece(tmp_path):
    """The researcher's path: a generated folder, resnet18 with random weights at 64 px; thumbnails are the folder's
    images, the upload is preprocessed like them and placed, neighbours and the export name the files."""
    for name, colour in (("reds", (230, 30, 30)), ("blues", (30, 30, 230))):
        (tmp_path / name).mkdir()
        for k in range(6):
            pixels = np.zeros((40, 50, 3), np.uint8)
            pixels[5 + k:30, 10:40] = colour
            Image.fromarray(pixels).save(tmp_path / name / f"{k}.png")
    source = Source(model="resnet18", weights="random", data=str(tmp_path), image_size=32)
    dataset = workspace(source).dataset
    assert dataset.image_shape == (3, 32, 32)

    thumbs = run(source, "images.thumbnails", {"indices": [7], "size": 32})
    np.testing.assert_array_equal(thumbs["images"][0], np.round(dataset.image(7).permute(1, 2, 0).numpy() * 255))

    picture = np.zeros((40, 50, 3), np.uint8)
    picture[5:30, 10:40] = (230, 30, 30)
    saved = uploads.save(png_bytes(picture), "red.png")
    same = [str(path) for path in dataset.images.paths].index(str(tmp_path / "reds" / "0.png"))
    image = variants.image(workspace(source), -1, {"kind": "upload", "id": saved["id"]})
    np.testing.assert_allclose(image.numpy(), dataset.image(same).numpy(), atol=1 / 255)  # the same file, same input

    placed = run(source, "uploads.place", {"id": saved["id"], "layer": "avgpool", "method": "pca"})
    scatter = run(source, "explore.scatter", {"layer": "avgpool", "method": "pca"})
    np.testing.assert_allclose(placed["point"], scatter["coords"][same], atol=1e-3 * (1 + np.ptp(scatter["coords"])))

    found = run(source, "neighbours.nearest", {"index": -1, "variant": {"kind": "upload", "id": saved["id"]},
                                               "layer": "avgpool", "k": 3})
    assert found["indices"][0] == same and found["distances"][0] < 1e-3

    names = run(source, "images.selection", {"indices": [0, 11]})["names"]
    assert names == [str(tmp_path / "blues" / "0.png"), str(tmp_path / "reds" / "5.png")]


def test_the_placed_upload_is_a_star_named_with_the_models_guess(context):
    probabilities = np.full(10, 0.01, np.float32)
    probabilities[7] = 0.91
    result = {"probabilities": probabilities, "point": [1.5, -2.0], "placement_message": None}
    mark, text = upload_view.place_render(context)(result, {"name": "seven.png"})
    assert mark == {"label": "your image: seven.png", "points": [[1.5, -2.0, "your image: seven.png · predicted 7"]]}
    assert "7 91%" in str(text)
    unplaced, text = upload_view.place_render(context)({**result, "point": None, "placement_message": "no"}, {"name": "x"})
    assert unplaced is None and "Not placed in the scatter: no" in str(text)


def test_an_upload_over_the_limit_is_refused_before_it_is_decoded(monkeypatch):
    import base64

    from dashboard.views import upload

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("the upload was decoded")

    monkeypatch.setattr(base64, "b64decode", no_decoding)
    contents = "data:image/png;base64," + "A" * (40 * 1024**2)  # 30 MB once decoded
    saved, message = upload.accept(contents, "big.png")
    assert saved is None and "big.png is 30.0 MB; the limit is 10 MB" in str(message)



def rescanned_digit(index: int, shift: tuple[int, int]) -> np.ndarray:
    """Scan ``index`` drawn on paper again, placed half a scan cell off and with paper grain: a new scan of a
    handwritten digit, not one of the data set's own images."""
    drawn = paper_digit(index).astype(np.float64)
    drawn = np.roll(drawn, shift, axis=(0, 1))
    grain = np.random.default_rng(index).normal(0, 12, drawn.shape)
    return np.clip(np.round(drawn + grain), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("layer", ["relu2", "relu1"])
def test_a_photo_of_an_astronaut_is_unlike_the_digits_and_new_scans_of_digits_are_not(trained_model, layer):
    from skimage import data as pictures

    astronaut = uploads.save(png_bytes(pictures.astronaut()), "astronaut.png")
    found = run(Source(), "uploads.place", {"id": astronaut["id"], "layer": layer, "method": "pca"})["novelty"]
    assert found["unlike"] and found["share_closer"] == 1.0 and found["layer"] == layer
    assert found["distance"] > found["largest"] > found["typical"]
    for index, shift in ((13, (3, 4)), (100, (4, -3)), (777, (-4, 2)), (1200, (2, 4))):
        scan = uploads.save(png_bytes(rescanned_digit(index, shift)), f"scan-{index}.png")
        found = run(Source(), "uploads.place", {"id": scan["id"], "layer": layer, "method": "pca"})["novelty"]
        assert not found["unlike"], (index, found)
    exact = run(Source(), "uploads.place", {"id": uploads.save(png_bytes(paper_digit(13)), "13.png")["id"],
                                            "layer": layer, "method": "pca"})["novelty"]
    assert exact["nearest"] == 13 and exact["distance"] < exact["typical"]  # the data set's own image 13


def test_the_page_warns_beside_the_prediction_when_the_image_is_unlike_the_data(context):
    probabilities = np.full(10, 0.01, np.float32)
    probabilities[7] = 0.91
    novelty = {"distance": 34.6, "nearest": 5, "typical": 11.8, "largest": 23.8, "share_closer": 1.0,
               "reference_size": context.meta.count, "unlike": True, "layer": "relu2"}
    result = {"probabilities": probabilities, "point": [1.5, -2.0], "placement_message": None, "novelty": novelty}
    _, text = upload_view.place_render(context)(result, {"name": "astronaut.png"})
    warnings = [part for part in text if getattr(part, "className", "") == "message message-warning"]
    assert len(warnings) == 1 and text.index(warnings[0]) == 2  # right after the prediction
    said = warnings[0].children
    assert said.startswith("This image is unlike the data set: in relu2's features it lies 34.6 from its nearest")
    assert f"than any of the {context.meta.count:,} images lies from its own nearest neighbour (at most 23.8" in said
    _, text = upload_view.place_render(context)({**result, "novelty": {**novelty, "unlike": False}}, {"name": "7.png"})
    assert not [part for part in text if getattr(part, "className", "") == "message message-warning"]


def test_titles_name_your_image_never_index_minus_one(uploaded_digit, context):
    from dashboard.views import attribution as attribution_view
    from dashboard.views import details as details_view
    from dashboard.views import inversion as inversion_view

    selection = upload_view.selection_for({**uploaded_digit, "name": "thirteen.png"})
    request = attribution_view.attribution_request(context)(selection, ["saliency"], [], None, [], "heatmap", 0.6,
                                                            0, [])
    panels, _ = attribution_view.attribution_render(context)(run(Source(), request.job, request.params),
                                                             request.context)
    titles = [panels[0].children[0].figure.layout.title.text]
    request = inversion_view.inversion_request(selection, "deconvnet", "conv1", None, "relu2")
    figure, _ = inversion_view.inversion_render(run(Source(), request.job, request.params), request.context)
    titles.append(figure.layout.title.text)
    request = details_view.details_request(selection, "conv2", "shared")
    rendered = details_view.details_render(context)(run(Source(), request.job, request.params), request.context)
    titles += [rendered[0][0].children, rendered[1].layout.title.text]
    for title in titles:
        assert "your image: thirteen.png" in title and "#-1" not in title
    assert rendered[3].layout.title.text == "layer conv2 · (32, 16, 16) · your image"  # the feature maps
    from dashboard.views.context import image_name

    assert image_name(-1, " (your image: a.png) · model of epoch 3") == "your image: a.png · model of epoch 3"
    assert image_name(-1) == "your image" and image_name(12, " (adversarial)") == "image #12 (adversarial)"
