"""Tests of compute.models (built-in CNN, checkpoints, loading) and compute.predictions."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from compute import models, predictions
from compute.cache import CACHE_DIR_ENV
from compute.data import Dataset


class NotATensor:
    """A picklable python object that a weights-only load must refuse."""

    def __init__(self):
        self.value = 42


def tiny_classifier(seed: int = 0, classes: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, classes)).eval()


def tiny_dataset(count: int = 23, seed: int = 0) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand((count, 1, 5, 5), generator=generator)
    return Dataset(name="tiny", images=images, labels=torch.randint(0, 4, (count,), generator=generator),
                   classes=list("abcd"), is_test=torch.zeros(count, dtype=torch.bool), fingerprint=f"tiny:{count}:{seed}")


# ------------------------------------------------------------------------------------------ built-in model

def test_trained_model_reaches_97_percent_test_accuracy(trained_model, digits):
    assert isinstance(trained_model, models.DigitsCNN)
    assert not trained_model.training
    test = digits.is_test
    accuracy = models.accuracy(trained_model, digits.images[test], digits.labels[test])
    assert accuracy >= 0.97
    # an independent count of the same thing
    with torch.no_grad():
        predicted = trained_model(digits.images[test]).argmax(1)
    assert accuracy == pytest.approx(float((predicted == digits.labels[test]).float().mean()))


def test_checkpoints_list_epochs_0_to_10_with_epoch_0_near_chance(trained_model, cache_root):
    found = models.checkpoints("digits-cnn")
    assert [c.epoch for c in found] == list(range(11))
    assert all(c.path.is_file() for c in found)
    assert all(c.path.parent == cache_root / "checkpoints" / "digits-cnn" for c in found)
    assert found[0].test_accuracy < 0.3
    assert found[-1].test_accuracy >= 0.97
    assert models.ensure_trained("digits-cnn") == found  # already trained: nothing is redone


def test_epoch_0_weights_differ_from_the_final_ones(trained_model, digits):
    untrained = models.load("digits-cnn", epoch=0)
    final = models.load("digits-cnn")
    changed = [name for name, tensor in untrained.state_dict().items() if not torch.equal(tensor, final.state_dict()[name])]
    assert changed == list(final.state_dict())  # every weight and bias moved during training
    for name, tensor in final.state_dict().items():
        assert torch.equal(tensor, trained_model.state_dict()[name])
    test = digits.is_test
    assert models.accuracy(untrained, digits.images[test], digits.labels[test]) < 0.3


def test_an_epoch_without_checkpoint_raises_model_error(trained_model):
    with pytest.raises(models.ModelError, match="epoch 99"):
        models.load("digits-cnn", epoch=99)


def test_built_in_model_loads_a_checkpoint_file_of_its_architecture(tmp_path):
    torch.manual_seed(7)
    source = models.DigitsCNN()
    path = tmp_path / "mine.pt"
    torch.save(source.state_dict(), path)
    loaded = models.load("digits-cnn", checkpoint=str(path))
    assert not loaded.training
    for name, tensor in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)


def test_build_gives_the_untrained_architecture_with_named_layers():
    model = models.build("digits-cnn")
    names = dict(model.named_modules())
    for layer in ("conv1", "relu1", "pool1", "conv3", "fc1", "relu4", "logits"):
        assert layer in names
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    assert models.MODELS["digits-cnn"].default_layer in names
    assert models.default_dataset("digits-cnn") == "digits"
    assert models.default_dataset("resnet18") == "digits"
    with pytest.raises(models.ModelError, match="digits-cnn"):
        models.build("nope")


def test_accuracy_counts_argmax_matches():
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    assert models.accuracy(model, images, torch.tensor([0, 1, 1, 1]), batch_size=3) == pytest.approx(0.75)


# ------------------------------------------------------------------------------------------ checkpoints

def test_read_state_dict_rejects_a_missing_file(tmp_path):
    with pytest.raises(models.ModelError, match="does not exist"):
        models.read_state_dict(tmp_path / "missing.pt")
    with pytest.raises(models.ModelError):
        models.read_state_dict(tmp_path)  # a folder is no file


def test_read_state_dict_rejects_random_bytes(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(torch.randint(0, 256, (500,), dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(models.ModelError, match="noise.pt") as raised:
        models.read_state_dict(path)
    assert isinstance(raised.value, ValueError)


def test_read_state_dict_refuses_pickled_python_objects(tmp_path):
    path = tmp_path / "object.pt"
    torch.save({"weight": torch.ones(2), "payload": NotATensor()}, path)
    with pytest.raises(models.ModelError, match="Python objects .*NotATensor") as raised:
        models.read_state_dict(path)
    assert_no_unsafe_advice(raised.value)


def assert_no_unsafe_advice(error: BaseException) -> None:
    """torch's message advises weights_only=False (running code from the file): never pass it on."""
    message = str(error)
    assert "weights_only" not in message and "False" not in message and "trust" not in message, message
    assert len(message.splitlines()) == 1
    assert error.__cause__ is None and error.__suppress_context__  # not in a printed traceback either


@pytest.mark.parametrize("content", ["random", "truncated", "text"])
def test_a_corrupt_checkpoint_says_why_without_torchs_unsafe_advice(tmp_path, content):
    path = tmp_path / "broken.pt"
    if content == "random":
        path.write_bytes(torch.randint(0, 256, (500,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
                         .numpy().tobytes())
    elif content == "truncated":
        torch.save({"weight": torch.ones(100)}, path)
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_text("this is not a checkpoint\n" * 20)
    with pytest.raises(models.ModelError, match="broken.pt is not a usable checkpoint") as raised:
        models.read_state_dict(path)
    assert_no_unsafe_advice(raised.value)
    if content == "truncated":
        assert "truncated or damaged" in str(raised.value)


def test_fresh_copy_of_the_built_in_model_is_the_same_architecture_newly_initialised(trained_model):
    fresh = models.fresh_copy(trained_model, seed=0)
    assert type(fresh) is type(trained_model) and fresh is not trained_model
    assert fresh.state_dict().keys() == trained_model.state_dict().keys()
    assert not torch.equal(fresh.conv1.weight, trained_model.conv1.weight)
    torch.manual_seed(0)
    torch.testing.assert_close(fresh.state_dict(), models.DigitsCNN().state_dict())  # the seed decides
    state = torch.random.get_rng_state()
    models.fresh_copy(trained_model, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random state is untouched
    assert fresh.training == trained_model.training


def test_fresh_copy_of_a_torchvision_model_keeps_its_classes_and_normalisation(tmp_path):
    import torchvision

    torch.manual_seed(0)
    path = tmp_path / "resnet18-3.pt"
    torch.save(torchvision.models.resnet18(weights=None, num_classes=3).state_dict(), path)
    model = models.load("resnet18", checkpoint=str(path))
    fresh = models.fresh_copy(model, seed=1)
    assert isinstance(fresh, torchvision.models.ResNet) and fresh.fc.out_features == 3
    assert not torch.equal(fresh.conv1.weight, model.conv1.weight)
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    torch.testing.assert_close(fresh.state_dict(), reference.state_dict())
    image = torch.rand((1, 3, 32, 32), generator=torch.Generator().manual_seed(2))
    mean = torch.tensor(models.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(models.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(image), reference((image - mean) / std))  # the pre-hook came along


def test_fresh_copy_of_any_other_model_resets_its_parameters():
    model = tiny_classifier(seed=3)
    fresh = models.fresh_copy(model, seed=4)
    assert not torch.equal(fresh[0].weight, model[0].weight)
    torch.testing.assert_close(models.fresh_copy(model, seed=4).state_dict(), fresh.state_dict())


def test_read_state_dict_rejects_a_dict_without_tensors(tmp_path):
    path = tmp_path / "numbers.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(models.ModelError, match="state_dict"):
        models.read_state_dict(path)
    torch.save([torch.ones(2)], path)
    with pytest.raises(models.ModelError, match="state_dict"):
        models.read_state_dict(path)


def test_read_state_dict_unwraps_training_checkpoints_and_data_parallel_prefixes(tmp_path):
    weights = {"module.fc.weight": torch.ones(2, 3), "module.fc.bias": torch.zeros(2)}
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": weights}, path)
    state = models.read_state_dict(path)
    assert set(state) == {"fc.weight", "fc.bias"}
    assert torch.equal(state["fc.weight"], torch.ones(2, 3))


def test_load_state_with_a_mismatched_state_dict_names_what_differs():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    state = {"0.weight": torch.zeros(4, 3), "0.bias": torch.zeros(5), "1.weight": torch.zeros(2, 4), "extra": torch.zeros(1)}
    before = model[0].weight.detach().clone()
    with pytest.raises(models.ModelError) as raised:
        models.load_state(model, state, "bad.pt")
    message = str(raised.value)
    assert "bad.pt" in message and "Sequential" in message
    assert "missing: 1.bias" in message
    assert "unexpected: extra" in message
    assert "wrong shape: 0.bias" in message
    assert torch.equal(model[0].weight, before)  # nothing was loaded


def test_load_state_of_matching_weights_copies_them():
    source, target = nn.Linear(3, 2), nn.Linear(3, 2)
    assert models.load_state(target, source.state_dict(), "ok.pt") is target
    assert torch.equal(target.weight, source.weight)


# ------------------------------------------------------------------------------------------ other models

def test_unknown_model_name_raises_model_error_naming_digits_cnn():
    with pytest.raises(models.ModelError, match="digits-cnn") as raised:
        models.load("no-such-model")
    assert "no-such-model" in str(raised.value)


def test_torchvision_name_without_checkpoint_raises_model_error_instead_of_downloading():
    with pytest.raises(models.ModelError, match="checkpoint"):
        models.load("resnet18")


def test_torchvision_resnet18_with_a_saved_checkpoint_loads_and_predicts_3_classes(tmp_path):
    import torchvision

    torch.manual_seed(0)
    source = torchvision.models.resnet18(weights=None, num_classes=3)
    path = tmp_path / "resnet18-3.pt"
    torch.save(source.state_dict(), path)
    model = models.load("resnet18", checkpoint=str(path))
    assert not model.training
    image = torch.rand((1, 3, 64, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(image)
        # The loaded model normalises [0, 1] images itself (a forward pre-hook): compare with the source on normalised input.
        mean = torch.tensor(models.IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(models.IMAGENET_STD).view(1, 3, 1, 1)
        expected = source.eval()((image - mean) / std)
    assert logits.shape == (1, 3)
    torch.testing.assert_close(logits, expected)


def test_torchvision_checkpoint_of_another_architecture_raises_model_error(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(models.ModelError, match="tiny.pt"):
        models.load("resnet18", checkpoint=str(path))


# ------------------------------------------------------------------------------------------ predictions

def test_probabilities_rows_sum_to_one_and_argmax_matches_a_plain_forward(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    model, dataset = tiny_classifier(), tiny_dataset()
    probabilities = predictions.probabilities(model, dataset)
    assert probabilities.shape == (23, 4)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(23))
    assert bool((probabilities >= 0).all())
    with torch.no_grad():
        logits = model(dataset.images)
    assert torch.equal(probabilities.argmax(dim=1), logits.argmax(dim=1))
    torch.testing.assert_close(probabilities, torch.softmax(logits, dim=1))


def test_probabilities_are_cached_per_model_weights(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    model, dataset = tiny_classifier(), tiny_dataset()
    first = predictions.probabilities(model, dataset)
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))  # counts forward passes, i.e. real computations
    assert torch.equal(predictions.probabilities(model, dataset), first)
    assert calls == []
    with torch.no_grad():
        model[3].bias.add_(torch.tensor([5.0, 0.0, 0.0, 0.0]))
    changed = predictions.probabilities(model, dataset)
    assert len(calls) >= 1
    assert bool((changed[:, 0] > first[:, 0]).all())


def test_probabilities_of_the_trained_model_agree_with_its_accuracy(trained_model, digits):
    probabilities = predictions.probabilities(trained_model, digits)
    assert probabilities.shape == (1797, 10)
    test = digits.is_test
    accuracy = float((probabilities[test].argmax(1) == digits.labels[test]).float().mean())
    assert accuracy == pytest.approx(models.accuracy(trained_model, digits.images[test], digits.labels[test]))


def test_top_k_returns_sorted_class_probability_pairs():
    row = torch.tensor([0.1, 0.4, 0.05, 0.3, 0.15])
    pairs = predictions.top_k(row, k=3)
    assert [index for index, _ in pairs] == [1, 3, 4]
    assert [p for _, p in pairs] == pytest.approx([0.4, 0.3, 0.15])
    assert all(isinstance(index, int) and isinstance(p, float) for index, p in pairs)
    everything = predictions.top_k(row, k=10)  # k larger than the class count
    assert [index for index, _ in everything] == [1, 3, 4, 0, 2]
    values = [p for _, p in everything]
    assert values == sorted(values, reverse=True)


# ------------------------------------------------------------------------------------------ researcher's models

@pytest.fixture()
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub cache, and a network that refuses: nothing may be downloaded."""
    folder = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(folder))

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return folder


def normalised_forward(reference: nn.Module, image: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(models.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(models.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return reference.eval()((image - mean) / std)


@pytest.mark.parametrize("weights", ["DEFAULT", "ResNet18_Weights.IMAGENET1K_V1", "IMAGENET1K_V1"])
def test_torchvision_weights_are_read_from_the_hub_cache_by_enum_name(hub_dir, weights):
    import torchvision

    torch.manual_seed(3)
    source = torchvision.models.resnet18(weights=None)
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(source.state_dict(), hub_dir / "checkpoints" / "resnet18-f37072fd.pth")  # the file name of the url
    model = models.load("resnet18", weights=weights)
    for name, tensor in source.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor)
    image = torch.rand((1, 3, 64, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(image), normalised_forward(source, image))  # normalisation is the pre-hook
    assert model.input_shape == (3, 224, 224) and model.torchvision_name == "resnet18"
    assert len(model.categories) == 1000 and model.categories[0] == "tench"  # the weights' class names


def test_a_missing_weights_file_names_the_file_and_the_folder(hub_dir):
    with pytest.raises(models.ModelError) as raised:
        models.load("resnet18", weights="DEFAULT")
    message = str(raised.value)
    assert "resnet18-f37072fd.pth" in message and str(hub_dir / "checkpoints") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message and "nothing is downloaded" in message
    assert len(message.splitlines()) == 1


def test_a_hub_file_of_another_architecture_is_a_clear_error(hub_dir):
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(nn.Linear(3, 2).state_dict(), hub_dir / "checkpoints" / "resnet18-f37072fd.pth")
    with pytest.raises(models.ModelError, match="resnet18-f37072fd.pth does not match resnet18"):
        models.load("resnet18", weights="DEFAULT")


@pytest.mark.parametrize(("weights", "expected"), [
    ("ResNet50_Weights.IMAGENET1K_V2", "not for resnet18"),
    ("IMAGENET9K", "ResNet18_Weights.IMAGENET1K_V1"),
])
def test_unknown_weights_names_list_the_valid_ones(hub_dir, weights, expected):
    with pytest.raises(models.ModelError, match=expected):
        models.load("resnet18", weights=weights)


def test_random_weights_are_the_architecture_from_seed_0(hub_dir):
    import torchvision

    model = models.load("resnet18", weights="random")
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    torch.testing.assert_close(model.state_dict(), reference.state_dict())
    image = torch.rand((2, 3, 48, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(image), normalised_forward(reference, image))


def test_weights_and_checkpoint_together_or_weights_for_the_built_in_model_are_refused(tmp_path):
    with pytest.raises(models.ModelError, match="either --checkpoint or --weights"):
        models.load("resnet18", weights="DEFAULT", checkpoint=str(tmp_path / "x.pt"))
    with pytest.raises(models.ModelError, match="built in"):
        models.load("digits-cnn", weights="DEFAULT")


def test_preprocessing_comes_from_the_weights_metadata_unless_given():
    from compute.model_sources import Preprocessing, preprocessing

    assert preprocessing("resnet18", "DEFAULT") == Preprocessing(224, 256, 3)  # ResNet18_Weights.IMAGENET1K_V1
    assert preprocessing("resnet50", "IMAGENET1K_V2") == Preprocessing(224, 232, 3)
    assert preprocessing("resnet50", "random") == Preprocessing(224, 232, 3)  # the architecture's DEFAULT weights
    assert preprocessing("resnet18", "DEFAULT", size=64) == Preprocessing(64, 64, 3)
    assert preprocessing("resnet18", "DEFAULT", size=64, resize=80) == Preprocessing(64, 80, 3)
    assert preprocessing("digits-cnn") is None
    assert preprocessing("digits-cnn", size=32) == Preprocessing(32, 32, None)


FACTORY_SOURCE = '''
import torch
from torch import nn


def build():
    torch.manual_seed(11)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def not_a_model():
    return 42
'''


def test_a_module_function_builds_the_model_and_takes_a_checkpoint(tmp_path, monkeypatch):
    (tmp_path / "researcher_models.py").write_text(FACTORY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = models.load("researcher_models:build")
    torch.manual_seed(11)
    reference = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    torch.testing.assert_close(model.state_dict(), reference.state_dict())
    assert not model.training
    trained = {k: v + 1 for k, v in reference.state_dict().items()}
    torch.save(trained, tmp_path / "trained.pt")
    loaded = models.load("researcher_models:build", checkpoint=str(tmp_path / "trained.pt"))
    torch.testing.assert_close(loaded.state_dict(), trained)
    torch.save({"0.weight": torch.zeros(1)}, tmp_path / "wrong.pt")
    with pytest.raises(models.ModelError, match="wrong.pt does not match Sequential"):
        models.load("researcher_models:build", checkpoint=str(tmp_path / "wrong.pt"))
    with pytest.raises(models.ModelError, match="not a torch.nn.Module"):
        models.load("researcher_models:not_a_model")
    with pytest.raises(models.ModelError, match="has no function 'missing'"):
        models.load("researcher_models:missing")
    with pytest.raises(models.ModelError, match="cannot import no_such_package_here"):
        models.load("no_such_package_here.models:build")


def test_a_torchscript_file_loads_predicts_as_the_original_and_exposes_its_output(tmp_path):
    import torchvision

    from compute import activations

    torch.manual_seed(0)
    original = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(original), str(path))
    model = models.load(str(path))
    image = torch.rand((2, 3, 40, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(image), original(image))
    assert activations.layers(model, (3, 40, 40)) == ["logits"]  # a ScriptModule takes no hooks: only its output
    torch.testing.assert_close(activations.extract(model, image, "logits"), original(image))
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in original.parameters())
    with pytest.raises(models.ModelError, match="cannot be re-initialised"):
        models.fresh_copy(model)
    state_dict_file = tmp_path / "state.pt"
    torch.save(original.state_dict(), state_dict_file)
    with pytest.raises(models.ModelError, match="state.pt is not a TorchScript file.*--checkpoint"):
        models.load(str(state_dict_file))
