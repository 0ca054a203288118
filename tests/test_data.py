"""Tests of compute.data: the digits table entry and lazily loaded image folders."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from compute import data

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 128, 0)


def write_png(path, colour, size=(20, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture()
def two_classes(tmp_path):
    """cats/ (3 red images, one nested with an upper-case suffix), dogs/ (2 blue), an empty and a hidden folder."""
    root = tmp_path / "pets"
    write_png(root / "cats" / "a.png", RED)
    write_png(root / "cats" / "b.png", RED, size=(9, 30))
    write_png(root / "cats" / "nested" / "c.PNG", RED)
    write_png(root / "dogs" / "x.png", BLUE)
    write_png(root / "dogs" / "y.png", BLUE, size=(16, 16))
    (root / "dogs" / "notes.txt").write_text("not an image")
    (root / "empty").mkdir()
    (root / ".hidden").mkdir()
    write_png(root / ".hidden" / "z.png", GREEN)
    return root


def test_digits_has_1797_images_of_shape_1x32x32_in_the_unit_range(digits):
    assert len(digits) == 1797
    assert digits.name == "digits"
    assert isinstance(digits.images, torch.Tensor)
    assert digits.images.shape == (1797, 1, 32, 32)
    assert digits.image_shape == (1, 32, 32)
    assert digits.images.dtype == torch.float32
    assert float(digits.images.min()) >= 0.0 and float(digits.images.max()) <= 1.0
    assert float(digits.images.max()) > 0.9  # really scaled to [0, 1], not [0, 1/16]


def test_digits_labels_are_int64_in_ten_classes(digits):
    assert digits.labels.dtype == torch.int64
    assert digits.labels.shape == (1797,)
    assert digits.classes == [str(d) for d in range(10)]
    assert sorted(digits.labels.unique().tolist()) == list(range(10))
    assert all(int((digits.labels == k).sum()) > 150 for k in range(10))


def test_digits_images_are_the_sklearn_scans_upsampled(digits):
    from sklearn.datasets import load_digits

    scans = load_digits().images / 16.0
    # Averaging each 4x4 block of the bilinear 32x32 image gives back roughly the 8x8 scan.
    blocks = digits.images[:, 0].numpy().reshape(1797, 8, 4, 8, 4).mean(axis=(2, 4))
    assert np.corrcoef(blocks.ravel(), scans.ravel())[0, 1] > 0.95
    np.testing.assert_array_equal(digits.labels.numpy(), load_digits().target)


def test_digits_test_split_is_a_fixed_stratified_fifth(digits):
    assert digits.is_test.dtype == torch.bool
    assert int(digits.is_test.sum()) == 360
    again = data.DATASETS["digits"].loader()  # a second, uncached load
    assert again is not digits
    assert torch.equal(again.is_test, digits.is_test)
    assert again.fingerprint == digits.fingerprint
    labels = digits.labels
    for k in range(10):
        in_class = labels == k
        share = float((digits.is_test & in_class).sum()) / float(in_class.sum())
        assert share == pytest.approx(0.2, abs=0.01)


def test_load_by_name_is_cached(digits):
    # Not "is digits": the session's fixture may have left the small LRU while other tests loaded other data sets.
    assert data.load("digits") is data.load("digits")
    assert torch.equal(data.load("digits").images, digits.images)


def test_dataset_image_returns_one_image_and_rejects_out_of_range(digits):
    torch.testing.assert_close(digits.image(5), digits.images[5])
    with pytest.raises(IndexError, match="1797"):
        digits.image(1797)
    with pytest.raises(IndexError):
        digits.image(-1)


def test_unknown_data_set_name_raises_data_error_naming_digits():
    with pytest.raises(data.DataError, match="digits") as raised:
        data.load("no-such-data-set")
    assert isinstance(raised.value, ValueError)
    assert "no-such-data-set" in str(raised.value)


def test_load_folder_finds_classes_labels_and_shape(two_classes):
    dataset = data.load_folder(two_classes, size=16)
    assert dataset.classes == ["cats", "dogs"]  # sorted; empty and hidden folders left out
    assert dataset.labels.dtype == torch.int64
    assert dataset.labels.tolist() == [0, 0, 0, 1, 1]
    assert len(dataset) == 5 and len(dataset.images) == 5
    assert dataset.image_shape == (3, 16, 16)
    assert dataset.images.shape == (5, 3, 16, 16)
    assert [p.name for p in dataset.images.paths] == ["a.png", "b.png", "c.PNG", "x.png", "y.png"]
    assert dataset.is_test.shape == (5,) and dataset.is_test.dtype == torch.bool
    assert dataset.fingerprint.startswith("folder:16:")


def test_folder_images_are_loaded_on_indexing_by_int_slice_and_list(two_classes):
    dataset = data.load_folder(two_classes, size=16)
    first = dataset.images[0]
    assert first.shape == (3, 16, 16) and first.dtype == torch.float32
    torch.testing.assert_close(first, torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 16, 16))
    tall = dataset.images[np.int64(1)]  # 9x30: resized and centre-cropped to a square
    assert tall.shape == (3, 16, 16)
    torch.testing.assert_close(tall, first)
    dogs = dataset.images[3:5]
    assert dogs.shape == (2, 3, 16, 16)
    torch.testing.assert_close(dogs, torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(2, 3, 16, 16))
    chosen = dataset.images[[4, 0]]
    assert chosen.shape == (2, 3, 16, 16)
    torch.testing.assert_close(chosen[0], dogs[1])
    torch.testing.assert_close(chosen[1], first)
    assert dataset.images[5:9].shape == (0, 3, 16, 16)
    torch.testing.assert_close(dataset.image(3), dogs[0])


def test_image_to_tensor_resizes_the_shorter_side_and_centre_crops():
    pixels = np.zeros((10, 30, 3), dtype=np.uint8)
    pixels[:, 10:20] = 255  # a white middle third
    tensor = data.image_to_tensor(Image.fromarray(pixels), 10)
    assert tensor.shape == (3, 10, 10)
    torch.testing.assert_close(tensor, torch.ones(3, 10, 10))


def test_folder_fingerprint_changes_when_a_file_changes(two_classes):
    before = data.load_folder(two_classes, size=16).fingerprint
    assert data.load_folder(two_classes, size=16).fingerprint == before
    assert data.load_folder(two_classes, size=8).fingerprint != before
    target = two_classes / "dogs" / "x.png"
    write_png(target, GREEN, size=(21, 12))
    os.utime(target, ns=(1, 1))
    assert data.load_folder(two_classes, size=16).fingerprint != before


def test_flat_folder_is_one_unlabelled_class(tmp_path):
    write_png(tmp_path / "one.png", RED)
    write_png(tmp_path / "two.jpeg", BLUE)
    dataset = data.load_folder(tmp_path, size=8)
    assert dataset.classes == ["unlabelled"]
    assert dataset.labels.tolist() == [0, 0]
    assert dataset.images[:].shape == (2, 3, 8, 8)


def test_load_by_folder_path_uses_load_folder(two_classes):
    dataset = data.load(str(two_classes))
    assert dataset.classes == ["cats", "dogs"]
    assert dataset.image_shape == (3, 224, 224)


def test_a_corrupt_file_is_skipped_at_load_and_named_relative_to_the_folder(two_classes):
    (two_classes / "dogs" / "broken.png").write_bytes(np.random.default_rng(0).bytes(300))
    (two_classes / "cats" / "nested" / "empty.jpg").write_bytes(b"")
    truncated = (two_classes / "dogs" / "x.png").read_bytes()
    (two_classes / "dogs" / "half.png").write_bytes(truncated[: len(truncated) // 2])
    dataset = data.load_folder(two_classes, size=8)
    assert sorted(dataset.skipped) == ["cats/nested/empty.jpg", "dogs/broken.png", "dogs/half.png"]
    assert len(dataset) == 5 and dataset.classes == ["cats", "dogs"]
    assert [p.name for p in dataset.images.paths] == ["a.png", "b.png", "c.PNG", "x.png", "y.png"]
    assert dataset.labels.tolist() == [0, 0, 0, 1, 1]
    assert "3 unreadable files skipped" in dataset.description
    assert dataset.images[:].shape == (5, 3, 8, 8)  # the rest loads
    assert data.load_folder(two_classes.parent / "pets", size=8).skipped == dataset.skipped
    clean = two_classes.parent / "clean"
    write_png(clean / "a" / "one.png", RED)
    assert data.load_folder(clean, size=8).skipped == [] and "skipped" not in data.load_folder(clean).description


def test_a_folder_of_only_unreadable_files_raises_data_error_naming_them(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(data.DataError, match="no readable images.*a/bad.png"):
        data.load_folder(tmp_path)


def test_a_file_that_breaks_after_loading_does_not_stop_an_extraction(two_classes):
    from torch import nn

    from compute import activations

    dataset = data.load_folder(two_classes, size=8)
    names = [p.name for p in dataset.images.paths]
    broken = names.index("x.png")
    (two_classes / "dogs" / "x.png").write_bytes(b"overwritten by something else")
    with pytest.raises(data.DataError, match="dogs/x.png is not a readable image"):  # one image: a clear error
        dataset.image(broken)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 64, 2)).eval()
    reports = []
    with pytest.warns(UserWarning, match="dogs/x.png"):
        features = activations.extract(model, dataset.images, "0", batch_size=2,
                                       progress=lambda fraction, text: reports.append(text))
    assert features.shape == (5, 2, 8, 8)
    assert dataset.images.unreadable == ["dogs/x.png"]
    assert "1 unreadable image(s) left blank: dogs/x.png" in reports[-1]
    with torch.no_grad():  # the broken one was read as a blank image, the others as themselves
        torch.testing.assert_close(features[broken], model[0](torch.zeros(1, 3, 8, 8))[0])
        torch.testing.assert_close(features[0], model[0](dataset.images[0][None])[0])


def test_empty_folder_raises_data_error(tmp_path):
    with pytest.raises(data.DataError, match="no images"):
        data.load_folder(tmp_path)
    (tmp_path / "class_a").mkdir()
    (tmp_path / "class_a" / "readme.txt").write_text("text only")
    with pytest.raises(data.DataError, match="no images"):
        data.load_folder(tmp_path)


def test_missing_folder_raises_data_error(tmp_path):
    with pytest.raises(data.DataError, match="not a folder"):
        data.load_folder(tmp_path / "missing")


# ------------------------------------------------------------------------------------------ stored data sets

def write_idx(path, array: np.ndarray) -> None:
    """An MNIST idx file: magic (0, 0, 0x08 = uint8, dims), big-endian sizes, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root, folder: str, train: int = 12, test: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (train + test, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, train + test).astype(np.uint8)
    raw = root / folder / "raw"
    write_idx(raw / "train-images-idx3-ubyte", images[:train])
    write_idx(raw / "train-labels-idx1-ubyte", labels[:train])
    write_idx(raw / "t10k-images-idx3-ubyte", images[train:])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[train:])
    return images, labels


@pytest.fixture()
def no_network(monkeypatch):
    import torchvision

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", refuse)
    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", refuse)


@pytest.mark.parametrize(("name", "folder", "first_class"), [("mnist", "MNIST", "0 - zero"),
                                                               ("fashion-mnist", "FashionMNIST", "T-shirt/top")])
def test_mnist_and_fashion_mnist_load_from_idx_files_on_disk(tmp_path, no_network, name, folder, first_class):
    images, labels = write_mnist(tmp_path, folder)
    dataset = data.load(f"{name}:{tmp_path}")
    assert len(dataset) == 17 and dataset.image_shape == (1, 28, 28) and dataset.classes[0] == first_class
    np.testing.assert_array_equal(dataset.labels.numpy(), labels)
    assert dataset.is_test.tolist() == [False] * 12 + [True] * 5
    np.testing.assert_array_equal(dataset.images[:].numpy(), images[:, None] / np.float32(255))
    torch.testing.assert_close(dataset.image(13), torch.from_numpy(images[13][None] / np.float32(255)))
    assert dataset.images[[3, 1]].shape == (2, 1, 28, 28)
    assert dataset.images[dataset.is_test].shape == (5, 1, 28, 28)


def test_preprocessing_resizes_and_repeats_grey_images_for_an_rgb_model(tmp_path, no_network):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional

    images, _ = write_mnist(tmp_path, "MNIST")
    dataset = data.load(f"mnist:{tmp_path}", data.Preprocessing(size=32, resize=36, channels=3))
    assert dataset.image_shape == (3, 32, 32) and dataset.images.shape == (17, 3, 32, 32)
    grey = torch.from_numpy(images[:4, None] / np.float32(255))
    expected = functional.center_crop(functional.resize(grey, 36, InterpolationMode.BILINEAR, antialias=True), [32, 32])
    torch.testing.assert_close(dataset.images[:4], expected.clamp(0, 1).expand(-1, 3, -1, -1))
    assert float(dataset.images[:].min()) >= 0.0 and float(dataset.images[:].max()) <= 1.0
    assert dataset.fingerprint != data.load(f"mnist:{tmp_path}").fingerprint


def write_cifar(root, per_batch: int = 3, seed: int = 0):
    """CIFAR-10's python layout: five training batches, a test batch and the meta file, as pickled dicts."""
    import pickle

    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    pixels, labels = [], []
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, per_batch).tolist(), "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        pixels.append(batch["data"])
        labels += batch["labels"]
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}, protocol=2))
    return np.concatenate(pixels).reshape(-1, 3, 32, 32), np.array(labels)


def test_cifar10_loads_from_its_pickled_batches_on_disk(tmp_path, no_network):
    pixels, labels = write_cifar(tmp_path)
    dataset = data.load(f"cifar10:{tmp_path}")
    assert len(dataset) == 18 and dataset.image_shape == (3, 32, 32) and dataset.classes[3] == "cat"
    np.testing.assert_array_equal(dataset.labels.numpy(), labels)
    assert dataset.is_test.tolist() == [False] * 15 + [True] * 3
    np.testing.assert_array_equal(dataset.images[:].numpy(), pixels / np.float32(255))
    assert dataset.channel_mean == pytest.approx(tuple(pixels.mean(axis=(0, 2, 3)) / 255))


def test_a_cifar_batch_holding_code_is_refused(tmp_path, no_network):
    import pickle

    write_cifar(tmp_path)

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": Payload()}))
    with pytest.raises(data.DataError, match="refused to unpickle builtins.print"):
        data.load(f"cifar10:{tmp_path}")


@pytest.mark.parametrize(("name", "expected"), [("cifar10", "cifar-10-batches-py"), ("mnist", "MNIST/raw"),
                                                ("fashion-mnist", "FashionMNIST/raw")])
def test_a_stored_set_not_on_disk_names_where_to_put_it_and_downloads_nothing(tmp_path, no_network, name, expected):
    with pytest.raises(data.DataError) as raised:
        data.load(f"{name}:{tmp_path}")
    message = str(raised.value)
    assert f"{tmp_path}/{expected}" in message and "--download" in message and len(message.splitlines()) == 1


def test_folder_preprocessing_is_the_weights_transforms_without_normalisation(tmp_path):
    from torchvision.models import ResNet18_Weights

    rng = np.random.default_rng(1)
    photo = Image.fromarray(rng.integers(0, 256, (300, 420, 3), dtype=np.uint8))
    photo.save(tmp_path / "photo.png")
    transforms = ResNet18_Weights.IMAGENET1K_V1.transforms()  # resize 256, crop 224, then normalise
    mean, std = torch.tensor(transforms.mean).view(3, 1, 1), torch.tensor(transforms.std).view(3, 1, 1)
    expected = transforms(photo) * std + mean
    dataset = data.load_folder(tmp_path, size=224, resize=256)
    torch.testing.assert_close(dataset.images[0], expected, atol=1e-5, rtol=0)
    assert dataset.fingerprint.startswith("folder:224:256:")
