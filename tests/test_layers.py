"""Tests of compute.layers: one name per call site, one tensor per name in every path (scatter, panel, Grad-CAM)."""
from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from compute import activations, gradients, layers

SHAPE = (3, 64, 64)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Some 300 small resnet18 forwards: with two intra-op threads on a loaded 2-core machine each took ~40x longer
    (measured 2.5 s vs 0.06 s), so this module runs on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=7)
    # Random BatchNorm statistics, so a BatchNorm's output differs from its input and from the next ReLU's.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.bias.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand((3, *SHAPE), generator=torch.Generator().manual_seed(1))


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


class TwiceReLU(nn.Module):
    """One ReLU module applied twice, with a different tensor each time."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        first = self.relu(self.conv(x))
        return self.relu(first - 0.5).flatten(1)


def test_a_module_called_twice_gets_one_name_per_call_as_torchvision_names_call_sites(resnet18):
    names = activations.layers(resnet18, SHAPE)
    assert len(names) == len(set(names))
    assert names.index("layer1.0.relu") < names.index("layer1.0.conv2") < names.index("layer1.0.relu_1")
    assert "layer1.0.relu_2" not in names
    # Every ReLU call site torchvision's FX tracer names, we name the same way (and no other).
    torchvision_relus = {n for n in get_graph_node_names(resnet18.eval())[1] if n.split(".")[-1].startswith("relu")}
    assert {n for n in names if n.split(".")[-1].startswith("relu")} == torchvision_relus
    assert hook_count(resnet18) == 0 and not resnet18.training


def test_every_listed_layer_reads_the_same_tensor_in_extract_single_and_gradcam(resnet18, images):
    names = activations.layers(resnet18, SHAPE)
    # torchvision's extractor returns tensors that a later in-place ReLU overwrites (bn1 would read rectified):
    # trace a copy without in-place ReLUs.
    not_in_place = copy.deepcopy(resnet18)
    for module in not_in_place.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    reference = create_feature_extractor(not_in_place, [n for n in names if n in get_graph_node_names(resnet18)[1]])
    with torch.no_grad():
        traced = reference(images)  # torchvision's FX graph: an independent reading of each call site
    for name in names:
        scatter = activations.extract(resnet18, images, name, batch_size=2)
        panel = torch.stack([activations.single(resnet18, image, [name])[name] for image in images])
        with torch.no_grad(), gradients.capture_output(resnet18, name) as captured:
            resnet18(images)
        gradcam = captured[0]
        torch.testing.assert_close(panel, scatter, rtol=1e-5, atol=1e-5, msg=f"panel vs scatter at {name}")
        torch.testing.assert_close(gradcam, scatter, rtol=1e-5, atol=1e-5, msg=f"Grad-CAM vs scatter at {name}")
        if name in traced:
            torch.testing.assert_close(scatter, traced[name], rtol=1e-5, atol=1e-5, msg=f"torchvision at {name}")
    assert {"layer1.0.bn1", "layer1.0.relu", "layer1.0.relu_1", "layer4.1.relu_1", "fc"} <= set(traced)
    assert hook_count(resnet18) == 0


def test_the_two_calls_of_one_relu_differ_and_follow_the_block(resnet18, images):
    block = resnet18.layer1[0]
    with torch.no_grad():
        stem = resnet18.maxpool(resnet18.relu(resnet18.bn1(resnet18.conv1(images))))
        first = torch.relu(block.bn1(block.conv1(stem)))
        second = torch.relu(block.bn2(block.conv2(first)) + stem)
    torch.testing.assert_close(activations.extract(resnet18, images, "layer1.0.relu"), first)
    torch.testing.assert_close(activations.extract(resnet18, images, "layer1.0.relu_1"), second)
    torch.testing.assert_close(activations.single(resnet18, images[0], ["layer1.0.relu_1"])["layer1.0.relu_1"], second[0])
    # The in-place ReLU after a BatchNorm leaves the BatchNorm's captured output alone, in the panel path too.
    bn1 = activations.single(resnet18, images[0], ["layer1.0.bn1", "layer1.0.relu"])
    assert (bn1["layer1.0.bn1"] < 0).any()
    torch.testing.assert_close(bn1["layer1.0.relu"], bn1["layer1.0.bn1"].clamp(min=0))


def test_gradcam_defaults_to_the_last_blocks_rectified_output_on_resnet18(resnet18, images):
    assert gradients.last_conv_block(resnet18, SHAPE) == "layer4.1.relu_1"
    default = gradients.gradcam(resnet18, images[0], 3)
    torch.testing.assert_close(default, gradients.gradcam(resnet18, images[0], 3, layer="layer4.1.relu_1"))
    assert default.shape == SHAPE[1:]


def test_a_call_that_does_not_happen_is_refused_with_a_reason():
    model = TwiceReLU().eval()
    assert activations.layers(model, (1, 6, 6)) == ["conv", "relu", "relu_1"]
    with pytest.raises(layers.LayerError, match=r"'conv_1'.*'conv' runs fewer than 2 times"):
        activations.extract(model, torch.rand(2, 1, 6, 6), "conv_1")
    with pytest.raises(layers.LayerError, match="relu_2"):
        activations.single(model, torch.rand(1, 6, 6), ["relu_2"])
    with pytest.raises(layers.LayerError, match="unknown layer 'nope'"):
        activations.module(model, "nope")
    assert activations.module(model, "relu_1") is model.relu
    assert hook_count(model) == 0


def test_stop_early_after_the_first_call_skips_the_second():
    model = TwiceReLU().eval()
    x = torch.rand(2, 1, 6, 6)
    calls = []
    handle = model.relu.register_forward_hook(lambda *_: calls.append(1))
    try:
        first = layers.run_until(model, x, "relu")
        assert len(calls) == 1  # the second call of relu never ran
        calls.clear()
        both = layers.run_until(model, x, ["relu", "relu_1"])
        assert len(calls) == 2
    finally:
        handle.remove()
    with torch.no_grad():
        expected = torch.relu(model.conv(x))
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(both["relu_1"], torch.relu(expected - 0.5))
    assert hook_count(model) == 0


def test_capture_removes_its_hooks_when_the_forward_raises():
    model = TwiceReLU().eval()
    with pytest.raises(RuntimeError):
        with layers.capture(model, ["relu_1"]):
            model(torch.rand(2, 3, 6, 6))  # wrong channel count: the conv raises
    assert hook_count(model) == 0


def test_a_call_site_name_that_collides_with_a_module_name_is_refused():
    class Clash(TwiceReLU):
        def __init__(self):
            super().__init__()
            self.relu_1 = nn.Identity()

        def forward(self, x):
            return self.relu_1(super().forward(x))

    with pytest.raises(layers.LayerError, match="'relu_1', is also a module's name"):
        activations.layers(Clash().eval(), (1, 6, 6))


def test_layers_uses_the_models_input_shape_and_restores_training_mode():
    from compute import models

    model = models.build("digits-cnn").train()
    names = activations.layers(model)  # DigitsCNN declares its 1x32x32 input
    assert names[:3] == ["conv1", "relu1", "pool1"] and names[-1] == "logits"
    assert model.training and all(m.training for m in model.modules())
