"""Tests of compute.activations on tiny models built here: hooks, early stop, batching and plain-forward references."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from compute import activations as A
from compute import device


class Boom(nn.Module):
    """A layer that fails whenever it is run (and counts the attempts)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        raise RuntimeError("boom: this layer must not run")


class Nested(nn.Module):
    """Named submodules two levels deep, used through an explicit forward."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.block = nn.Module()
        self.block.conv = nn.Conv2d(4, 5, 3, padding=1)
        self.block.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(5, 3)
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        x = self.stem(x)
        x = self.block.act(self.block.conv(x))
        return self.head(self.pool(x).flatten(1))


def small_cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 5),
    ).eval()


def images(count: int = 7, seed: int = 1) -> torch.Tensor:
    return torch.rand((count, 3, 8, 8), generator=torch.Generator().manual_seed(seed))


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_layers_lists_the_call_sites_of_one_forward_in_call_order_without_the_root():
    # "block" is a plain holder never called, "unused" never runs: neither computes a tensor, so neither is listed.
    assert A.layers(Nested(), (3, 6, 6)) == ["stem", "stem.0", "stem.1", "block.conv", "block.act", "pool", "head"]
    assert A.layers(nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), nn.Linear(2, 1))) == ["0", "0.0", "0.1", "1"]
    assert A.layers(nn.Linear(2, 2)) == []


def test_module_finds_nested_layers_by_dotted_name():
    model = Nested()
    assert A.module(model, "block.conv") is model.block.conv
    assert A.module(model, "stem.1") is model.stem[1]


@pytest.mark.parametrize("name", ["nope", "block.nope", ""])
def test_unknown_layer_raises_layer_error_naming_the_valid_layers(name):
    model = Nested()
    with pytest.raises(A.LayerError) as raised:
        A.extract(model, torch.rand(2, 3, 6, 6), name, batch_size=2)
    assert isinstance(raised.value, ValueError)
    message = str(raised.value)
    for valid in ("stem.0", "block.conv", "head"):
        assert valid in message
    assert hook_count(model) == 0


def test_unknown_layer_message_is_shortened_for_large_models():
    model = nn.Sequential(*[nn.Identity() for _ in range(40)])
    with pytest.raises(A.LayerError, match=r"0, 1, 2, .*29 \.\.\.") as raised:
        A.module(model, "40")
    assert ", 30" not in str(raised.value)


def test_extract_equals_a_plain_forward_through_the_first_layers():
    model, batch = small_cnn(), images()
    for k in range(len(model)):
        expected = model[: k + 1](batch)
        got = A.extract(model, batch, str(k), batch_size=4)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected.detach())
        assert not got.requires_grad
        assert got.device.type == "cpu"


def test_extract_of_nested_layers_matches_an_explicit_computation():
    torch.manual_seed(3)
    model, batch = Nested().eval(), images(5)
    with torch.no_grad():
        stem = model.stem(batch)
        conv = model.block.conv(stem)
    torch.testing.assert_close(A.extract(model, batch, "block.conv", batch_size=2), conv)
    torch.testing.assert_close(A.extract(model, batch, "stem", batch_size=2), stem)
    torch.testing.assert_close(A.extract(model, batch, "head", batch_size=2), model(batch).detach())


def test_extract_leaves_no_hooks_after_a_normal_call():
    model = small_cnn()
    for batch_size in (2, None):
        A.extract(model, images(), "3", batch_size=batch_size)
        assert hook_count(model) == 0
    A.single(model, images(1)[0], ["1", "4"])
    assert hook_count(model) == 0


@pytest.mark.parametrize("batch_size", [2, None])
def test_extract_leaves_no_hooks_after_an_exception_inside_the_forward(batch_size):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), Boom(), nn.Linear(4, 2))
    with pytest.raises(RuntimeError, match="boom"):
        A.extract(model, torch.rand(3, 4), "2", batch_size=batch_size)
    assert model[1].calls >= 1  # the exception really came from inside the forward
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    with pytest.raises(RuntimeError, match="boom"):
        A.single(model, torch.rand(4), ["0", "2"])
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_hooks_registered_by_the_user_are_kept():
    model, seen = small_cnn(), []
    handle = model[1].register_forward_hook(lambda _m, _i, output: seen.append(output.shape))
    A.extract(model, images(4), "1", batch_size=2)
    assert len(model[1]._forward_hooks) == 1
    assert len(seen) == 2  # the user's hook ran once per batch
    handle.remove()
    assert hook_count(model) == 0


def test_early_stop_does_not_run_later_layers():
    torch.manual_seed(0)
    boom = Boom()
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), boom, nn.Linear(6, 2))
    batch = torch.rand(5, 4)
    got = A.extract(model, batch, "1", batch_size=2)
    torch.testing.assert_close(got, torch.relu(model[0](batch)).detach())
    assert boom.calls == 0
    torch.testing.assert_close(A.run_until(model, batch, "0"), model[0](batch))
    assert boom.calls == 0
    assert hook_count(model) == 0


def test_run_until_a_layer_the_forward_never_uses_raises_layer_error():
    model = Nested()
    with pytest.raises(A.LayerError, match="unused"):
        A.run_until(model, torch.rand(1, 3, 6, 6), "unused")
    assert hook_count(model) == 0


def test_pooled_equals_the_spatial_mean_of_the_full_maps():
    model, batch = small_cnn(), images()
    for layer in ("0", "2", "4"):
        full = A.extract(model, batch, layer, batch_size=3)
        pooled = A.extract(model, batch, layer, pooled=True, batch_size=3)
        assert full.ndim == 4 and pooled.shape == full.shape[:2]
        torch.testing.assert_close(pooled, full.mean(dim=(2, 3)))


def test_pooled_leaves_linear_outputs_unchanged():
    model, batch = small_cnn(), images()
    torch.testing.assert_close(A.extract(model, batch, "6", pooled=True, batch_size=3), model(batch).detach())


@pytest.mark.parametrize("layer", ["0", "4", "6"])
def test_result_is_independent_of_batch_size(layer):
    model, batch = small_cnn(), images(7)
    results = [A.extract(model, batch, layer, batch_size=size) for size in (1, 3, None, 100)]
    for result in results[1:]:
        assert result.shape == results[0].shape
        assert len(result) == 7
        torch.testing.assert_close(result, results[0], rtol=1e-5, atol=1e-6)


def test_batch_size_override_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("FEATURESCOPE_BATCH_SIZE", "2")
    assert device.batch_size_for(torch.device("cpu"), 10) == 2
    monkeypatch.setenv("FEATURESCOPE_BATCH_SIZE", "0")
    assert device.batch_size_for(torch.device("cpu"), 10) == 1
    monkeypatch.delenv("FEATURESCOPE_BATCH_SIZE")
    assert 1 <= device.batch_size_for(torch.device("cpu"), 10**12) <= 1024
    assert device.batch_size_for(torch.device("cpu"), 10**12) == 1  # a huge item still gets a batch of one


def test_activation_floats_counts_every_leaf_output_and_the_input():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    # input 16, conv 32, relu 32, flatten 32, linear 3
    assert device.activation_floats(model, (1, 4, 4)) == 16 + 32 + 32 + 32 + 3
    assert hook_count(model) == 0


def test_progress_reports_increasing_fractions_ending_at_one():
    reports = []
    A.extract(small_cnn(), images(7), "0", batch_size=3, progress=lambda fraction, text: reports.append((fraction, text)))
    fractions = [fraction for fraction, _ in reports]
    assert fractions == pytest.approx([3 / 7, 6 / 7, 1.0])
    assert all("0" in text for _, text in reports)


def test_extract_of_no_images_raises_value_error():
    with pytest.raises(ValueError, match="no images"):
        A.extract(small_cnn(), torch.zeros((0, 3, 8, 8)), "0", batch_size=4)


def test_extract_accepts_a_lazy_indexable_of_images():
    class Lazy:
        """Indexable by slices like FolderImages, not a tensor."""

        def __init__(self, data):
            self.data, self.shape, self.sliced = data, data.shape, []

        def __len__(self):
            return len(self.data)

        def __getitem__(self, index):
            self.sliced.append(index)
            return self.data[index]

    model, batch = small_cnn(), images(5)
    lazy = Lazy(batch)
    torch.testing.assert_close(A.extract(model, lazy, "3", batch_size=2), A.extract(model, batch, "3", batch_size=5))
    assert lazy.sliced == [slice(0, 2), slice(2, 4), slice(4, 6)]


def test_single_returns_layer_outputs_and_logits_equal_to_a_plain_forward():
    model = small_cnn()
    image = images(1)[0]
    result = A.single(model, image, ["1", "3", "5"])
    assert set(result) == {"1", "3", "5", "__logits__"}
    batch = image.unsqueeze(0)
    with torch.no_grad():
        for name, k in (("1", 1), ("3", 3), ("5", 5)):
            expected = model[: k + 1](batch)[0]
            assert result[name].shape == expected.shape
            torch.testing.assert_close(result[name], expected)
        torch.testing.assert_close(result["__logits__"], model(batch)[0])
    assert hook_count(model) == 0


def test_single_rejects_unknown_layers_before_running():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), Boom())
    with pytest.raises(A.LayerError):
        A.single(model, torch.rand(4), ["0", "missing"])
    assert model[1].calls == 0
    assert hook_count(model) == 0


def test_cpu_batches_are_capped_where_bigger_ones_only_add_page_faults():
    assert device.batch_size_for(torch.device("cpu"), 1) == device.CPU_MAX_BATCH
    assert device.batch_size_for(torch.device("cpu"), 1, maximum=64) == 64


def test_bf16_extraction_stays_within_the_stated_tolerance_on_the_built_in_model(trained_model, digits):
    images = digits.images[:128]
    for layer in A.layers(trained_model):
        exact = A.extract(trained_model, images, layer, batch_size=64)
        rounded = A.extract(trained_model, images, layer, batch_size=64, dtype="bf16")
        assert rounded.dtype == torch.float32 and rounded.shape == exact.shape
        error = float((rounded - exact).abs().max() / exact.abs().max())
        assert 0 < error <= A.BF16_TOLERANCE, (layer, error)  # 0 <: bf16 really ran
    with pytest.raises(ValueError, match="unknown dtype"):
        A.extract(trained_model, images, "relu2", dtype="fp8")


def test_extract_from_host_memory_on_the_default_device_equals_the_cpu_result():
    """On a GPU this runs the pinned, prefetching path (copies overlapped with compute); on the CPU the plain one."""
    from compute.device import pick_device

    model, batch = small_cnn(), images(23)
    expected = A.extract(model, batch, "4", batch_size=5)
    on_device = small_cnn().to(pick_device("auto"))
    for size in (4, 5, 23):
        for pooled in (False, True):
            got = A.extract(on_device, batch, "4", batch_size=size, pooled=pooled)
            assert got.device.type == "cpu" and not got.is_pinned()
            torch.testing.assert_close(got, expected.mean((2, 3)) if pooled else expected, rtol=1e-4, atol=1e-5)
    # Images already on the device take the direct path, with the same result.
    torch.testing.assert_close(A.extract(on_device, batch.to(pick_device("auto")), "4", batch_size=4), expected,
                               rtol=1e-4, atol=1e-5)
