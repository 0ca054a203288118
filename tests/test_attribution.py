"""Tests of compute.attribution on tiny models built here: exact cases, independent references, captum."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import Deconvolution, GuidedBackprop, IntegratedGradients, Saliency
from torch import nn

from compute import attribution as A


def small_cnn(seed: int = 0, channels: int = 3, size: int = 12, classes: int = 5, inplace: bool = False) -> nn.Module:
    """conv-relu-maxpool-conv-relu-linear with random weights, in eval mode."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(channels, 6, 3, padding=1),
        nn.ReLU(inplace=inplace),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.ReLU(inplace=inplace),
        nn.Flatten(),
        nn.Linear(8 * (size // 2) ** 2, classes),
    )
    return model.eval()


def random_image(seed: int = 1, channels: int = 3, height: int = 12, width: int = 12) -> torch.Tensor:
    return torch.rand((channels, height, width), generator=torch.Generator().manual_seed(seed))


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())


class PatchModel(nn.Module):
    """Two logits [s, -s], where s depends smoothly on the pixels of one fixed 6x6 patch only."""

    top, left, size = 4, 7, 6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patch = x[:, :, self.top:self.top + self.size, self.left:self.left + self.size]
        s = torch.tanh((patch.sum((1, 2, 3)) - 50.0) / 15.0) * 3
        return torch.stack([s, -s], 1)

    def region(self, height: int, width: int, grow: int = 0) -> torch.Tensor:
        mask = torch.zeros(height, width, dtype=torch.bool)
        top, left, end = max(0, self.top - grow), max(0, self.left - grow), self.size + grow
        mask[top:self.top + end, left:self.left + end] = True
        return mask


class PatchMask(nn.Module):
    """Zeroes a feature map outside one square of feature pixels."""

    def __init__(self, top: int, left: int, size: int):
        super().__init__()
        self.top, self.left, self.size = top, left, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros_like(x)
        mask[..., self.top:self.top + self.size, self.left:self.left + self.size] = 1
        return x * mask


class PatchConvModel(nn.Module):
    """Conv features (stride 2) kept only inside one patch, averaged into logits [s, -s]: it looks at the patch only,
    through a conv layer, so Grad-CAM applies (at the masked features)."""

    top, left, size = 4, 8, 6

    def __init__(self):
        super().__init__()
        torch.manual_seed(20)
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.relu = nn.ReLU()
        self.mask = PatchMask(self.top // 2, self.left // 2, self.size // 2)
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0] * 4, [-1.0] * 4]))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mask(self.relu(self.conv(x))).mean((2, 3)))

    region = PatchModel.region


def mass_inside(attribution: torch.Tensor, region: torch.Tensor) -> float:
    mass = attribution.abs()
    return float(mass[region].sum() / mass.sum())


# ---------------------------------------------------------------------------------------------- gradients

def test_linear_model_gradients_are_the_weights():
    torch.manual_seed(0)
    channels, height, width, classes = 3, 5, 7, 4
    model = nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, classes)).eval()
    image, target = random_image(2, channels, height, width), 2
    weights = model[1].weight.detach()[target].view(channels, height, width)

    torch.testing.assert_close(A.saliency(model, image, target, absolute=False), weights.sum(0), atol=1e-6, rtol=0)
    torch.testing.assert_close(A.saliency(model, image, target), weights.abs().amax(0), atol=1e-6, rtol=0)
    signed = A.smoothgrad(model, image, target, samples=8, absolute=False)
    torch.testing.assert_close(signed, weights.sum(0), atol=1e-6, rtol=0)
    torch.testing.assert_close(A.smoothgrad(model, image, target, samples=8), weights.abs().amax(0), atol=1e-6, rtol=0)


def test_input_gradients_are_per_item_and_leave_parameters_alone():
    model, images = small_cnn(), torch.stack([random_image(s) for s in range(5)])
    batched = A.input_gradients(model, images, 3, batch_size=2)
    for i in range(5):
        x = images[i:i + 1].clone().requires_grad_(True)
        model(x)[0, 3].backward()
        torch.testing.assert_close(batched[i], x.grad[0], atol=1e-6, rtol=1e-5)
    model.zero_grad(set_to_none=True)
    with torch.no_grad():  # a caller under no_grad still gets gradients
        A.input_gradients(model, images, torch.tensor([0, 1, 2, 3, 4]))
    assert all(p.grad is None for p in model.parameters())


def test_smoothgrad_does_not_depend_on_batch_size():
    model, image = small_cnn(), random_image()
    maps = [A.smoothgrad(model, image, 1, samples=10, seed=3, batch_size=b) for b in (1, 5, None)]
    for other in maps[1:]:
        torch.testing.assert_close(other, maps[0], atol=1e-6, rtol=1e-5)
    assert not torch.equal(maps[0], A.smoothgrad(model, image, 1, samples=10, seed=4))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_integrated_gradients_completeness(seed):
    model, image = small_cnn(seed=seed), random_image(seed + 1)
    with torch.no_grad():
        changes = model(image[None])[0] - model(torch.zeros_like(image)[None])[0]
    # The quadrature error is absolute (a few 1e-4 here), so "within 1%" needs a score that actually changes:
    # take the class whose logit moves most.
    target = int(changes.abs().argmax())
    attribution = A.integrated_gradients(model, image, target, steps=64)
    assert abs(float(attribution.sum()) - float(changes[target])) <= 0.01 * abs(float(changes[target]))


@pytest.mark.parametrize("baseline", ["zero", "mean"])
def test_integrated_gradients_matches_captum(baseline):
    model, image, target = small_cnn(seed=7), random_image(8), 4
    ours = A.integrated_gradients_attributions(model, image, target, steps=64, baseline=baseline, batch_size=17)
    start = torch.zeros_like(image) if baseline == "zero" else image.mean((1, 2), keepdim=True).expand_as(image)
    theirs = IntegratedGradients(model).attribute(
        image[None], baselines=start[None].contiguous(), target=target, n_steps=64, method="gausslegendre"
    )[0]
    torch.testing.assert_close(ours, theirs.float(), atol=1e-5, rtol=1e-3)
    torch.testing.assert_close(A.integrated_gradients(model, image, target, 64, baseline), ours.sum(0))


def test_gradient_methods_report_progress():
    seen: list[tuple[float, str]] = []
    A.integrated_gradients(small_cnn(), random_image(), 0, steps=8, batch_size=3, progress=lambda *a: seen.append(a))
    assert len(seen) == 3 and seen[-1][0] == 1.0 and all(isinstance(m, str) for _f, m in seen)


# ---------------------------------------------------------------------------------------------- occlusion

def naive_occlusion_probabilities(model, image, target, box, stride, fill):
    """One box at a time, then each pixel copies the closest centre (the lower one on a tie)."""
    channels, height, width = image.shape
    fill_value = image.mean((1, 2)) if fill is None else torch.full((channels,), float(fill))
    centres_y, centres_x = list(range(0, height, stride)), list(range(0, width, stride))
    grid = torch.zeros(len(centres_y), len(centres_x))
    for i, cy in enumerate(centres_y):
        for j, cx in enumerate(centres_x):
            copy = image.clone()
            y0, x0 = cy - box // 2, cx - box // 2
            for c in range(channels):
                copy[c, max(0, y0):min(height, y0 + box), max(0, x0):min(width, x0 + box)] = fill_value[c]
            with torch.no_grad():
                grid[i, j] = torch.softmax(model(copy[None]), 1)[0, target]
    result = torch.zeros(height, width)
    for y in range(height):
        i = min(range(len(centres_y)), key=lambda k: abs(centres_y[k] - y))
        for x in range(width):
            j = min(range(len(centres_x)), key=lambda k: abs(centres_x[k] - x))
            result[y, x] = grid[i, j]
    return result


@pytest.mark.parametrize(
    "box,stride,fill", [(1, 1, None), (3, 1, 0.0), (4, 2, None), (5, 3, 1.0), (8, 4, None), (20, 5, 0.5)]
)
def test_occlusion_matches_naive_loop(box, stride, fill):
    model, image, target = small_cnn(size=12), random_image(3, height=12, width=12), 1
    expected = naive_occlusion_probabilities(model, image, target, box, stride, fill)
    got = A.occlusion_probability_map(model, image, target, box=box, stride=stride, fill=fill, batch_size=7)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        clean = torch.softmax(model(image[None]), 1)[0, target]
    drop = A.occlusion(model, image, target, box=box, stride=stride, fill=fill)
    torch.testing.assert_close(drop, clean - expected, atol=1e-6, rtol=1e-5)


def test_occlusion_on_non_square_image_and_batch_sizes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)).eval()
    image = random_image(4, height=11, width=13)
    expected = naive_occlusion_probabilities(model, image, 2, 5, 3, None)
    maps = [A.occlusion_probability_map(model, image, 2, box=5, stride=3, batch_size=b) for b in (1, 7, None)]
    for got in maps:
        assert got.shape == (11, 13) and got.dtype == torch.float32
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(got, maps[0], atol=1e-6, rtol=0)


def test_occlusion_batches_forwards_and_reports_progress():
    model, image, calls, seen = small_cnn(), random_image(), [], []
    handle = model.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape[0]))
    try:
        A.occlusion_probability_map(model, image, 0, 3, 1, batch_size=50, progress=lambda f, _m: seen.append(f))
    finally:
        handle.remove()
    assert calls == [50, 50, 44] and seen[-1] == 1.0


# ---------------------------------------------------------------------------------------------- localisation

def test_methods_find_the_region_the_model_looks_at():
    model, image, target = PatchModel().eval(), random_image(9, height=20, width=20), 0
    region = model.region(20, 20)
    assert mass_inside(A.saliency(model, image, target), region) > 0.9
    assert mass_inside(A.smoothgrad(model, image, target, samples=16), region) > 0.9
    assert mass_inside(A.integrated_gradients(model, image, target, steps=32), region) > 0.9
    assert mass_inside(A.occlusion(model, image, target, box=1, stride=1), region) > 0.9
    # A bigger box also changes the score when centred just outside the patch, by at most box // 2 pixels.
    drop = A.occlusion(model, image, target, box=5, stride=1, fill=0.0)
    assert mass_inside(drop, model.region(20, 20, grow=2)) == pytest.approx(1.0)
    assert region.flatten()[drop.abs().argmax()]

    conv_model = PatchConvModel().eval()
    region, near = conv_model.region(20, 20), conv_model.region(20, 20, grow=2)
    cam = A.gradcam(conv_model, image, target, layer="mask")
    # The features live on a 10x10 grid: bilinear upsampling spreads each by about one pixel.
    assert mass_inside(cam, near) == pytest.approx(1.0) and mass_inside(cam, region) > 0.75
    assert region.flatten()[cam.argmax()]
    for name, attribution in (("saliency", A.saliency(conv_model, image, target)),
                              ("integrated gradients", A.integrated_gradients(conv_model, image, target, steps=16)),
                              ("occlusion", A.occlusion(conv_model, image, target, box=1, stride=1))):
        assert mass_inside(attribution, near) > 0.9, name


@pytest.mark.parametrize("layer", ["0", "1", "3", "4"])
@pytest.mark.parametrize("target", [0, 3])
def test_gradcam_matches_captums_layer_gradcam_upsampled(layer, target):
    from captum.attr import LayerAttribution, LayerGradCam

    model, image = small_cnn(seed=21), random_image(22)
    ours = A.gradcam(model, image, target, layer=layer)
    theirs = LayerGradCam(model, model[int(layer)]).attribute(image[None], target=target, relu_attributions=True)
    theirs = LayerAttribution.interpolate(theirs, tuple(image.shape[1:]), interpolate_mode="bilinear")[0, 0]
    torch.testing.assert_close(ours, theirs.detach().float(), atol=1e-6, rtol=1e-4)
    if layer in ("1", "4"):
        assert ours.max() > 0  # a rectified layer: a map worth comparing


# ---------------------------------------------------------------------------------------------- Grad-CAM

class OneChannelModel(nn.Module):
    """Only channel 2 of the conv output reaches the score."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        torch.manual_seed(10)
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.relu = nn.ReLU(inplace=inplace)

    def forward(self, x):
        score = self.relu(self.conv(x))[:, 2].mean((1, 2))
        return torch.stack([score, -score], 1)


def test_gradcam_single_relevant_channel():
    model, image = OneChannelModel().eval(), random_image(11, height=16, width=16)
    cam = A.gradcam(model, image, 0, layer="conv")
    assert cam.shape == (16, 16) and cam.dtype == torch.float32 and (cam >= 0).all() and cam.max() > 0
    with torch.no_grad():
        activation = model.conv(image[None])[0, 2]
    alpha = (activation > 0).float().mean() / activation.numel()  # mean of d mean(relu(A)) / dA
    expected = F.interpolate(F.relu(alpha * activation)[None, None], size=(16, 16), mode="bilinear")[0, 0]
    torch.testing.assert_close(cam, expected, atol=1e-6, rtol=1e-5)
    # An in-place ReLU right after the layer must not overwrite the captured activation.
    torch.testing.assert_close(A.gradcam(OneChannelModel(inplace=True).eval(), image, 0, layer="conv"), cam)


def test_gradcam_hooks_are_removed_and_errors_name_layers():
    model, image = small_cnn(), random_image()
    A.gradcam(model, image, 1, layer="3")
    assert hook_count(model) == 0
    with pytest.raises(IndexError):
        A.gradcam(model, image, 99)
    assert hook_count(model) == 0
    with pytest.raises(ValueError, match=r"'nope'.*0, 3"):
        A.gradcam(model, image, 1, layer="nope")


# ---------------------------------------------------------------------------------------------- inversion

def test_invert_shape_restores_model_and_methods_differ():
    model, image = small_cnn(inplace=True), random_image()
    deconv = A.invert(model, image, "3", 2, method="deconvnet")
    guided = A.invert(model, image, "3", 2, method="guided_backprop")
    assert deconv.shape == guided.shape == (3, 12, 12)
    assert not torch.allclose(deconv, guided)
    assert A.invert(model, image, "4", 2, keep="max").shape == (3, 12, 12)
    assert hook_count(model) == 0 and all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
    with pytest.raises(ValueError, match="channel 8"):
        A.invert(model, image, "3", 8)
    with pytest.raises(ValueError, match="unknown layer"):
        A.invert(model, image, "missing", 0)
    with pytest.raises(ValueError, match="unknown inversion"):
        A.invert(model, image, "3", 0, method="lrp")
    assert hook_count(model) == 0 and all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))


@pytest.mark.parametrize("method", ["deconvnet", "guided_backprop"])
@pytest.mark.parametrize("keep", ["channel", "max"])
def test_invert_matches_hand_computed_transposed_convs(method, keep):
    torch.manual_seed(12)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1), nn.ReLU()).eval()
    image = random_image(13, height=9, width=9)
    with torch.no_grad():
        pre1 = model[0](image[None])
        pre2 = model[2](model[1](pre1))
    channel = int(pre2[0].flatten(1).amax(1).argmax())  # a live channel, else every inversion is zero
    seed = torch.zeros_like(pre2)
    seed[0, channel] = F.relu(pre2[0, channel])
    if keep == "max":
        seed = torch.where(seed == seed.max(), seed, 0)
    back = F.conv_transpose2d(seed, model[2].weight, padding=1)  # top ReLU: seed is already >= 0 and masked
    back = F.relu(back) * (pre1 > 0) if method == "guided_backprop" else F.relu(back)
    expected = F.conv_transpose2d(back, model[0].weight, padding=1)[0]
    assert expected.abs().sum() > 0
    torch.testing.assert_close(A.invert(model, image, "3", channel, method=method, keep=keep), expected)


@pytest.mark.parametrize("method,reference", [("guided_backprop", GuidedBackprop), ("deconvnet", Deconvolution)])
def test_invert_at_the_logits_matches_captum(method, reference):
    model, image = small_cnn(seed=14), random_image(15)
    with torch.no_grad():
        logits = model(image[None])[0]
    target = int(logits.argmax())
    assert logits[target] > 0  # invert seeds with the activation itself, captum with 1: scale by a positive logit
    ours = A.invert(model, image, "6", target, method=method)
    theirs = reference(model).attribute(image[None].clone().requires_grad_(True), target=target)[0].detach()
    torch.testing.assert_close(ours / logits[target], theirs, atol=1e-6, rtol=1e-4)
    assert ours.abs().sum() > 0


def test_most_active_channel():
    model, image = small_cnn(), random_image()
    with torch.no_grad():
        activation = model[:2](image[None])[0]
    assert A.most_active_channel(model, image, "1") == int(activation.mean((1, 2)).argmax())
    assert A.most_active_channel(model, image, "6") == int(model(image[None])[0].argmax())


# ---------------------------------------------------------------------------------------------- registry

def reference_saliency(model, image, target, absolute=True):
    """captum's Saliency (its own gradient call), reduced over channels as the map is: max |g| or the signed sum."""
    gradient = Saliency(model).attribute(image[None].clone().requires_grad_(True), target=target, abs=False)[0].detach()
    return gradient.abs().amax(0) if absolute else gradient.sum(0)


def reference_smoothgrad(model, image, target, samples=32, sigma=0.15, absolute=True, seed=0):
    """A naive loop of captum saliency maps over noisy copies, the noise drawn here by the documented convention:
    N(0, (sigma * (max - min of the image))^2) from a CPU generator seeded with ``seed``."""
    value_range = float(image.max() - image.min())
    noise = torch.randn((samples, *image.shape), generator=torch.Generator().manual_seed(seed)) * sigma * value_range
    return torch.stack([reference_saliency(model, image + n, target, absolute) for n in noise]).mean(0)


def reference_integrated_gradients(model, image, target, steps=32, baseline="zero"):
    start = torch.zeros_like(image) if baseline == "zero" else image.mean((1, 2), keepdim=True).expand_as(image)
    attribution = IntegratedGradients(model).attribute(image[None], baselines=start[None].contiguous(), target=target,
                                                       n_steps=steps, method="gausslegendre")
    return attribution[0].sum(0).float()


def reference_gradcam(model, image, target, layer):
    from captum.attr import LayerAttribution, LayerGradCam

    cam = LayerGradCam(model, model.get_submodule(layer)).attribute(image[None], target=target, relu_attributions=True)
    return LayerAttribution.interpolate(cam, tuple(image.shape[1:]), interpolate_mode="bilinear")[0, 0].detach()


def reference_occlusion(model, image, target, box=8, stride=2):
    """The drop against the naive one-box-at-a-time loop, filled with the image mean (no data mean is given)."""
    with torch.no_grad():
        clean = torch.softmax(model(image[None]), 1)[0, target]
    return clean - naive_occlusion_probabilities(model, image, target, box, stride, None)


# Every registered method with its defaults, against an implementation that shares no code with it. small_cnn's
# last conv block ends in the ReLU "4": Grad-CAM's default layer.
REFERENCES = {
    "occlusion": reference_occlusion,
    "saliency": reference_saliency,
    "smoothgrad": reference_smoothgrad,
    "integrated_gradients": reference_integrated_gradients,
    "gradcam": lambda model, image, target: reference_gradcam(model, image, target, "4"),
}


@pytest.mark.parametrize("name", sorted(A.METHODS))
def test_each_registered_method_with_its_defaults_matches_an_independent_reference(name):
    model, image = small_cnn(size=16), random_image(16, height=16, width=16)
    method = A.METHODS[name]
    assert name in REFERENCES, f"add an independent reference for {name}"
    result = method(model, image, 3, **method.defaults())  # the table's entries are callable, as the README says
    assert result.shape == (16, 16) and result.dtype == torch.float32 and result.device.type == "cpu"
    expected = REFERENCES[name](model, image, 3)
    assert expected.abs().max() > 0  # a map worth comparing
    torch.testing.assert_close(result, expected.float(), atol=1e-5, rtol=1e-4)
    explained = method.explain(model, image, 3, **method.defaults())
    assert {spec.key for spec in method.maps} <= set(explained) and "map" in explained
    for spec in method.maps:
        assert explained[spec.key].shape == (16, 16) and spec.scale in ("auto", "signed", "probability")
    torch.testing.assert_close(explained["map"], expected.float(), atol=1e-5, rtol=1e-4)


def test_registered_methods_cover_the_menu():
    assert {"occlusion", "saliency", "smoothgrad", "integrated_gradients", "gradcam"} <= set(A.METHODS)
    assert set(A.INVERSIONS) == {"deconvnet", "guided_backprop"}


def test_methods_table_is_callable_as_the_readme_promises():
    model, image = small_cnn(), random_image()
    torch.testing.assert_close(A.METHODS["saliency"](model, image, 2), reference_saliency(model, image, 2))
    torch.testing.assert_close(A.METHODS["saliency"](model, image, 2, absolute=False),
                               reference_saliency(model, image, 2, absolute=False))
    torch.testing.assert_close(A.METHODS["smoothgrad"](model, image, 2, samples=4, sigma=0.3, seed=7),
                               reference_smoothgrad(model, image, 2, samples=4, sigma=0.3, seed=7),
                               atol=1e-6, rtol=1e-5)


class CubicModel(nn.Module):
    """Score 0 = sum over pixels of x^3 / 3, score 1 its negative: the input gradient is x^2, so it changes with the
    input and the noise's size shows in SmoothGrad: E[(x + n)^2] = x^2 + s^2 for n ~ N(0, s^2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = (x ** 3 / 3).sum((1, 2, 3))
        return torch.stack([score, -score], 1)


@pytest.mark.parametrize("low,high", [(0.0, 1.0), (0.0, 4.0), (-2.0, 0.5)])
def test_smoothgrad_noise_scale_is_sigma_times_the_value_range_on_a_model_whose_gradient_changes(low, high):
    """The signed SmoothGrad map of the cubic model, summed over C channels, is sum_c (x_c^2) + C s^2 in expectation;
    its average excess over the noiseless map estimates s^2, which must be (sigma * (high - low))^2 (Smilkov et al.
    2017: noise level = sigma / (x_max - x_min)). 3 x 16 x 16 pixels x 64 samples: the estimate's relative standard
    error is about 0.6 %; a noise not scaled by the range (s = sigma) is off by the factor (high - low)^2."""
    channels, sigma, samples = 3, 0.2, 64
    image = low + (high - low) * random_image(30, channels, 16, 16)
    image[0, 0, 0], image[0, 0, 1] = low, high  # the range is exactly high - low
    model = CubicModel()
    smooth = A.smoothgrad(model, image, 0, samples=samples, sigma=sigma, absolute=False, seed=1)
    excess = float((smooth - (image ** 2).sum(0)).mean()) / channels
    expected = (sigma * (high - low)) ** 2
    assert excess == pytest.approx(expected, rel=0.05)
    # The same by a naive Monte Carlo loop with its own noise: the map is an average, not a single draw.
    generator = torch.Generator().manual_seed(99)
    naive = torch.stack([((image + torch.randn(image.shape, generator=generator) * sigma * (high - low)) ** 2).sum(0)
                         for _ in range(samples)]).mean(0)
    assert float((naive - (image ** 2).sum(0)).mean()) / channels == pytest.approx(expected, rel=0.05)
    # Saliency is the noiseless gradient x^2 (no noise term at all).
    torch.testing.assert_close(A.saliency(model, image, 0, absolute=False), (image ** 2).sum(0), atol=1e-5, rtol=1e-5)


def test_occlusion_explains_signed_drop_probability_and_clean_from_one_pass():
    model, image, target = small_cnn(), random_image(), 1
    batches = []
    handle = model.register_forward_hook(lambda _m, inputs, _o: batches.append(inputs[0].shape[0]))
    try:
        explained = A.METHODS["occlusion"].explain(model, image, target, box=3, stride=2, fill="zero", batch_size=7)
    finally:
        handle.remove()
    assert sum(batches) == 6 * 6 + 1  # 36 boxes and the clean image: no second pass for the probabilities
    probability = naive_occlusion_probabilities(model, image, target, 3, 2, 0.0)
    with torch.no_grad():
        clean = float(torch.softmax(model(image[None]), 1)[0, target])
    torch.testing.assert_close(explained["probability"], probability, atol=1e-6, rtol=1e-5)
    assert explained["clean"] == pytest.approx(clean, rel=1e-6)
    torch.testing.assert_close(explained["map"], clean - probability, atol=1e-6, rtol=1e-5)
    assert (explained["map"] < 0).any() or (explained["map"] > 0).any()
    assert [(spec.key, spec.scale) for spec in A.METHODS["occlusion"].maps] == [("probability", "probability"),
                                                                               ("map", "signed")]


def test_occlusion_drop_is_negative_where_occluding_raises_the_probability():
    model, image = small_cnn(seed=3), random_image(4)
    with torch.no_grad():
        target = int(model(image[None])[0].argmin())  # an unlikely class: some boxes make it likelier
    explained = A.METHODS["occlusion"].explain(model, image, target, box=4, stride=1, fill="zero")
    assert (explained["map"] < 0).any()
    assert float(explained["map"].max()) <= explained["clean"] + 1e-7  # the drop can never exceed p_clean


def test_suggested_params_scale_occlusion_to_the_image_and_keep_defaults_elsewhere():
    assert A.suggested_params("occlusion", (1, 32, 32))["box"] == 8
    assert A.suggested_params("occlusion", (3, 224, 224))["box"] == 56
    assert A.suggested_params("occlusion", (3, 224, 224))["stride"] == 14
    assert A.suggested_params("occlusion", (3, 2000, 300))["box"] == 64  # clamped by the Param's own bound
    assert A.suggested_params("occlusion", (3, 8, 8))["stride"] == 1
    assert A.suggested_params("saliency", (3, 224, 224)) == A.METHODS["saliency"].defaults()
    assert A.METHODS["occlusion"].suggest((3, 64, 64)) == {"box": 16, "stride": 4}


def test_attribution_map_returns_the_explained_dict_and_caches_it(tmp_path, monkeypatch):
    from compute.cache import CACHE_DIR_ENV

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    model, image = small_cnn(), random_image()
    first = A.attribution_map(model, image, 2, "occlusion", {"box": 3, "stride": 3, "fill": "zero"})
    assert set(first) == {"map", "probability", "clean"}
    calls = []
    monkeypatch.setattr(A, "occlusion_probability_map", lambda *a, **k: calls.append(1))
    again = A.attribution_map(model, image, 2, "occlusion", {"box": 3, "stride": 3, "fill": "zero"})
    assert calls == [] and torch.equal(again["map"], first["map"]) and again["clean"] == first["clean"]
    assert set(A.attribution_map(model, image, 2, "saliency", {})) == {"map"}


def test_map_spec_scales_are_checked():
    with pytest.raises(ValueError, match="scale"):
        A.MapSpec("map", "title", "rainbow")


def test_smoothgrad_noise_is_drawn_on_the_models_device_from_a_seeded_generator():
    from compute.gradients import smoothgrad_noise

    model, image = small_cnn(), random_image()
    noise = smoothgrad_noise(image, 6, 0.2, seed=5)
    assert noise.device == image.device and noise.shape == (6, *image.shape)
    torch.testing.assert_close(noise, smoothgrad_noise(image, 6, 0.2, seed=5))
    value_range = float(image.max() - image.min())
    expected = torch.randn((6, *image.shape), generator=torch.Generator().manual_seed(5)) * 0.2 * value_range
    torch.testing.assert_close(noise, expected)
    # SmoothGrad is the mean saliency over exactly these noisy copies (a naive loop, one at a time).
    naive = torch.stack([A.saliency(model, image + n, 2) for n in noise]).mean(0)
    torch.testing.assert_close(A.smoothgrad(model, image, 2, samples=6, sigma=0.2, seed=5), naive, atol=1e-6, rtol=1e-5)


def test_param_defaults_are_valid():
    for method in A.METHODS.values():
        assert method.label and method.description
        for param in method.params:
            if param.kind in ("int", "float"):
                assert param.low <= param.default <= param.high, param
            elif param.kind == "choice":
                assert param.default in param.choices, param
            elif param.kind == "bool":
                assert isinstance(param.default, bool), param
            else:
                assert param.kind == "layer" and isinstance(param.default, str), param
            assert param.coerce(param.default) == param.default


def test_occlusion_fill_choices():
    model, image = small_cnn(), random_image()
    run = A.METHODS["occlusion"].function
    for fill, value in (("image mean", None), ("zero", 0.0), ("one", 1.0)):
        expected = A.occlusion(model, image, 0, box=3, stride=2, fill=value)
        torch.testing.assert_close(run(model, image, 0, box=3, stride=2, fill=fill), expected)
    data_mean = tuple(0.1 * (c + 1) for c in range(image.shape[0]))
    expected = A.occlusion(model, image, 0, box=3, stride=2, fill=data_mean)
    torch.testing.assert_close(run(model, image, 0, box=3, stride=2, fill="data mean", data_mean=data_mean), expected)
    # Per-channel fill: the occluded pixels of channel c hold data_mean[c] (independent check, box covers all).
    covered = A.occlusion_probability_map(model, image, 0, box=99, stride=64, fill=data_mean)
    flat = torch.stack([torch.full(image.shape[1:], v) for v in data_mean])
    assert torch.allclose(covered, torch.softmax(model(flat[None]), 1)[0, 0].detach().expand_as(covered))


def test_rank_correlation():
    values = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    assert A.rank_correlation(values, values) == pytest.approx(1.0)
    assert A.rank_correlation(values, -values) == pytest.approx(-1.0)
    assert A.rank_correlation(values, values.exp()) == pytest.approx(1.0)  # ranks only
    assert A.rank_correlation(values, torch.zeros(8, 8)) == 0.0


def test_gradcam_defaults_to_the_rectified_output_of_the_last_conv():
    from compute.gradients import last_conv_block

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 1, 8, 8))
    # The call order comes from a forward, so the input shape is needed (Grad-CAM passes its image's).
    assert last_conv_block(model, (1, 8, 8)) == "3"
    bare = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 2))
    assert last_conv_block(bare, (1, 8, 8)) == "0"
    image = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(A.gradcam(model, image, 1), A.gradcam(model, image, 1, layer="3"))
