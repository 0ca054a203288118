"""The rectifier rule (compute.rectifiers) and the three places that use it: Grad-CAM's default layer, the deconvnet
and guided-backprop inversions, and the dead-channel table; on torchvision's MobileNetV2 (ReLU6) with random weights,
against captum, and on small models with activations that are not rectifiers."""
from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from captum.attr import Deconvolution, GuidedBackprop, LayerAttribution, LayerGradCam
from torch import nn

from compute import attribution as A
from compute import rectifiers
from compute.channels import channel_layers
from compute.gradients import last_conv_block

SHAPE = (3, 64, 64)


@pytest.fixture(scope="module")
def mobilenet() -> nn.Module:
    """MobileNetV2 with random weights whose BatchNorms were fitted (train mode, one batch of random images) with a
    scale of 3: about half of every ReLU6's inputs are negative and 2-4 % reach the cap of 6, so both ends of ReLU6
    matter. (With the default statistics the activations vanish within a few blocks.)"""
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=5)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # a plain average of the batch statistics
            module.reset_running_stats()
            with torch.no_grad():
                module.weight.fill_(3.0)
    model.train()
    with torch.no_grad():
        model(torch.rand((16, *SHAPE), generator=torch.Generator().manual_seed(2)))
    return model.eval()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(SHAPE, generator=torch.Generator().manual_seed(1))


class Cap(nn.Module):
    """min(x, ceiling) with its ordinary gradient."""

    def __init__(self, ceiling: float):
        super().__init__()
        self.ceiling = ceiling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(max=self.ceiling)


def relu_then_cap(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every ReLU6 spelled as nn.ReLU followed by a cap at 6: the same function, in the form
    captum's GuidedBackprop and Deconvolution (which change nn.ReLU modules only) take."""
    spelled = copy.deepcopy(model)
    for parent in list(spelled.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(parent, name, nn.Sequential(nn.ReLU(), Cap(6.0)))
    return spelled.eval()


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())


def saturated_share(model: nn.Module, image: torch.Tensor) -> float:
    """The share of ReLU6 inputs at or above the cap on ``image``."""
    above, total = [], []

    def count(_module, inputs, _output):
        above.append(int((inputs[0] >= 6).sum()))
        total.append(inputs[0].numel())

    copied = copy.deepcopy(model)
    for module in copied.modules():
        if isinstance(module, nn.ReLU6):
            module.inplace = False
            module.register_forward_hook(count)
    with torch.no_grad():
        copied(image[None])
    return sum(above) / sum(total)


# ---------------------------------------------------------------------------------------------- the rule

@pytest.mark.parametrize("module, expected", [
    (nn.ReLU(), True), (nn.ReLU6(), True), (nn.ReLU(inplace=True), True), (nn.Hardtanh(0.0, 2.0), True),
    (nn.LeakyReLU(), False), (nn.SiLU(), False), (nn.GELU(), False), (nn.Hardswish(), False), (nn.ELU(), False),
    (nn.Hardtanh(), False), (nn.Sigmoid(), False), (nn.Conv2d(1, 1, 1), False),
])
def test_the_relu_family_is_rectifiers_and_nothing_else(module, expected):
    assert rectifiers.is_rectifier(module) == expected
    assert rectifiers.is_activation(module) == (expected or not isinstance(module, (nn.Sigmoid, nn.Conv2d)))


def test_the_ceiling_of_each_rectifier():
    assert rectifiers.ceiling(nn.ReLU()) == float("inf")
    assert rectifiers.ceiling(nn.ReLU6()) == 6.0
    assert rectifiers.ceiling(nn.Hardtanh(0.0, 2.5)) == 2.5
    assert rectifiers.ceiling(nn.SiLU()) is None


# ---------------------------------------------------------------------------------------------- MobileNetV2 (ReLU6)

def test_mobilenet_v2_gradcam_defaults_to_the_last_blocks_relu6_and_matches_captum(mobilenet, image):
    # features.18 is Conv2dNormActivation(320 -> 1280): conv, BatchNorm, ReLU6. Before the rule counted ReLU6 the
    # default fell back to the conv's raw output, "features.18.0".
    assert last_conv_block(mobilenet, SHAPE) == "features.18.2"
    with torch.no_grad():
        target = int(mobilenet(image[None])[0].argmax())
    ours = A.gradcam(mobilenet, image, target)
    layer = mobilenet.features[18][2]
    theirs = LayerGradCam(mobilenet, layer).attribute(image[None], target=target, relu_attributions=True)
    theirs = LayerAttribution.interpolate(theirs, SHAPE[1:], interpolate_mode="bilinear")[0, 0].detach()
    assert theirs.max() > 0
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("method, reference", [("guided_backprop", GuidedBackprop), ("deconvnet", Deconvolution)])
def test_mobilenet_v2_inversions_at_the_logits_match_captum_on_relu_then_cap(mobilenet, image, method, reference):
    assert saturated_share(mobilenet, image) > 0.01  # the cap is reached: a wrong cap rule would show
    with torch.no_grad():
        logits = mobilenet(image[None])[0]
    target = int(logits.argmax())
    assert logits[target] > 0  # invert seeds with the logit itself, captum with 1: scale by a positive logit
    ours = A.invert(mobilenet, image, "classifier.1", target, method=method) / logits[target]
    spelled = relu_then_cap(mobilenet)
    theirs = reference(spelled).attribute(image[None].clone().requires_grad_(True), target=target)[0].detach()
    assert theirs.abs().sum() > 0
    # 50 layers in float32, summed in another order: errors of a few 1e-6 of the largest value.
    torch.testing.assert_close(ours, theirs, atol=1e-5 * float(theirs.abs().max()), rtol=1e-4)
    # Not the plain gradient (what the inversion silently became while only nn.ReLU was a rectifier).
    plain = A.input_gradients(mobilenet, image[None], target)[0]
    assert (ours - plain).abs().max() > 0.1 * plain.abs().max()
    assert hook_count(mobilenet) == 0
    assert all(m.inplace for m in mobilenet.modules() if isinstance(m, nn.ReLU6))  # restored


def test_mobilenet_v2_guided_backprop_of_an_inner_block_matches_captum(mobilenet, image):
    """keep="max" seeds one activation of features.4: captum's target (c, h, w) on the network cut after that block."""
    layer, block = "features.4", 4
    channel = A.most_active_channel(mobilenet, image, layer)
    with torch.no_grad():
        activation = mobilenet.features[:block + 1](image[None])[0, channel]
    peak = int(activation.argmax())
    h, w = divmod(peak, activation.shape[1])
    ours = A.invert(mobilenet, image, layer, channel, method="guided_backprop", keep="max") / activation[h, w]
    cut = nn.Sequential(*relu_then_cap(mobilenet).features[:block + 1]).eval()
    theirs = GuidedBackprop(cut).attribute(image[None].clone().requires_grad_(True), target=(channel, h, w))[0]
    assert theirs.abs().sum() > 0
    torch.testing.assert_close(ours, theirs.detach(), atol=1e-6, rtol=1e-4)


def test_mobilenet_v2_dead_table_rows_are_its_relu6_sites(mobilenet):
    expected = [name for name, module in mobilenet.named_modules() if isinstance(module, nn.ReLU6)]
    assert len(expected) == 35 and channel_layers(mobilenet, SHAPE) == expected


# ---------------------------------------------------------------------------------------------- other activations

def block_model(activation: nn.Module) -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), activation, nn.Conv2d(4, 6, 3, padding=1),
                         nn.BatchNorm2d(6), copy.deepcopy(activation), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(6, 3)).eval()


@pytest.mark.parametrize("activation", [nn.SiLU(), nn.GELU(), nn.LeakyReLU(0.1), nn.Hardswish()],
                         ids=lambda a: type(a).__name__)
def test_inversions_refuse_activations_that_are_not_rectifiers_and_name_them(activation):
    model, image = block_model(activation), torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(4))
    kind = type(activation).__name__
    for method in A.INVERSIONS:
        with pytest.raises(rectifiers.NotRectifiedError, match=rf"{kind}: 2 \({kind}\), 5 \({kind}\).*saliency"):
            A.invert(model, image, "3", 0, method=method)
    assert isinstance(rectifiers.NotRectifiedError("x"), ValueError)  # a user's error, shown as its message
    assert hook_count(model) == 0


@pytest.mark.parametrize("activation", [nn.SiLU(), nn.GELU()], ids=lambda a: type(a).__name__)
def test_gradcam_defaults_to_the_activation_after_the_last_conv_whatever_its_kind(activation):
    """The block's output (after conv and BatchNorm) is its activation, rectifier or not: Grad-CAM rectifies itself."""
    model, image = block_model(activation), torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(5))
    assert last_conv_block(model, (3, 12, 12)) == "5"
    theirs = LayerGradCam(model, model[5]).attribute(image[None], target=1, relu_attributions=True)
    theirs = LayerAttribution.interpolate(theirs, (12, 12), interpolate_mode="bilinear")[0, 0].detach()
    torch.testing.assert_close(A.gradcam(model, image, 1), theirs, atol=1e-6, rtol=1e-4)


def test_gates_keep_their_ordinary_gradient_and_do_not_block_the_inversions():
    """A squeeze-excitation-like Sigmoid gate in a ReLU network: the inversion runs and equals captum's (which leaves
    the Sigmoid alone too)."""

    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(6)
            self.conv, self.relu, self.gate = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Sigmoid()
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

        def forward(self, x):
            features = self.relu(self.conv(x))
            return self.head(features * self.gate(features.mean((2, 3), keepdim=True)))

    model, image = Gated().eval(), torch.rand(3, 10, 10, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        logits = model(image[None])[0]
    target = int(logits.argmax())
    assert logits[target] > 0
    ours = A.invert(model, image, "head.2", target, method="guided_backprop") / logits[target]
    theirs = GuidedBackprop(model).attribute(image[None].clone().requires_grad_(True), target=target)[0].detach()
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-4)
