"""Tests of compute/weights.py (kernels, their grid, smoothness, diversity, the jobs) and components/weights.py."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from compute import weights
from compute.activations import LayerError
from compute.jobs.table import run
from compute.specs.source import Source
from components import weights as figures


def tiny_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.Flatten(), nn.Linear(6 * 4 * 4, 5))


def gaussian_kernel(size: int = 3, sigma: float = 1.0) -> torch.Tensor:
    offsets = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    line = torch.exp(-offsets**2 / (2 * sigma**2))
    return (line[:, None] * line[None, :])[None, None]  # (1, 1, size, size)


def quadrature_smoothness(kernel: np.ndarray, radius: float = 0.25) -> float:
    """Reference: the kernel's continuous spectrum (its DTFT, summed directly over the taps) integrated over the
    disc |f| <= radius in polar coordinates (Gauss-Legendre in the radius, the trapezoid rule in the angle, both
    exact to ~1e-12 for a smooth periodic integrand), over its integral over the whole square (Parseval: the
    squared weights). No Bessel function and no FFT grid: independent of the code under test."""
    rho, rho_weights = np.polynomial.legendre.leggauss(48)
    rho, rho_weights = radius * (rho + 1) / 2, radius * rho_weights / 2
    theta = np.linspace(0, 2 * np.pi, 256, endpoint=False)
    fy = (rho[:, None] * np.sin(theta)[None, :]).ravel()
    fx = (rho[:, None] * np.cos(theta)[None, :]).ravel()
    rows, columns = np.meshgrid(np.arange(kernel.shape[1]), np.arange(kernel.shape[2]), indexing="ij")
    phase = np.exp(-2j * np.pi * (fy[:, None] * rows.ravel()[None, :] + fx[:, None] * columns.ravel()[None, :]))
    power = sum(np.abs(phase @ channel.ravel()) ** 2 for channel in kernel).reshape(len(rho), len(theta))
    low = (power.mean(axis=1) * 2 * np.pi * rho * rho_weights).sum()
    return float(low / np.square(kernel).sum())


# ---------------------------------------------------------------------------------------------- kernels

def test_kernels_are_the_conv_weights_out_in_kh_kw():
    model = tiny_model()
    found = weights.kernels(model, "2")
    assert found.shape == (6, 4, 3, 3)
    assert torch.equal(found, model[2].weight.detach())
    assert weights.conv_layers(model) == ["0", "2"]


def test_linear_layer_is_refused_with_the_reason_and_the_conv_layers():
    with pytest.raises(LayerError) as error:
        weights.kernels(tiny_model(), "4")
    message = str(error.value)
    assert "fully connected" in message and "spatial" in message
    assert "Conv layers of this model: 0, 2" in message


def test_layer_without_weights_names_the_conv_layers():
    with pytest.raises(LayerError, match="not a conv layer; conv layers of this model: 0, 2"):
        weights.kernels(tiny_model(), "1")
    with pytest.raises(LayerError, match="unknown layer"):
        weights.kernels(tiny_model(), "nope")


# ------------------------------------------------------------------------------------------ kernel grid

def test_auto_mode_is_colour_for_three_inputs_grey_for_one_norm_for_more():
    assert weights.kernel_grid(torch.randn(4, 3, 5, 5)).shape == (4, 5, 5, 3)
    assert weights.kernel_grid(torch.randn(4, 1, 3, 3)).shape == (4, 3, 3)
    assert weights.resolve_mode(torch.randn(4, 1, 3, 3)) == "channel"
    assert weights.resolve_mode(torch.randn(4, 16, 3, 3)) == "norm"
    assert weights.kernel_grid(torch.randn(4, 16, 3, 3), "channel", input_channel=7).shape == (4, 3, 3)
    with pytest.raises(ValueError, match="3 input channels"):
        weights.kernel_grid(torch.randn(4, 16, 3, 3), "rgb")
    with pytest.raises(ValueError, match="input channel 16 does not exist"):
        weights.kernel_grid(torch.randn(4, 16, 3, 3), "channel", input_channel=16)
    with pytest.raises(ValueError, match="unknown kernel display mode"):
        weights.kernel_grid(torch.randn(4, 16, 3, 3), "fancy")


def test_each_filter_is_normalised_on_its_own_with_zero_at_mid_grey():
    torch.manual_seed(1)
    base = torch.randn(2, 3, 3, 3)
    scaled = torch.cat([base[:1] * 100.0, base[1:] * 0.01])  # filters a factor 10^4 apart
    grid = weights.kernel_grid(scaled, "rgb")
    np.testing.assert_allclose(grid, weights.kernel_grid(base, "rgb"), atol=1e-6)
    assert grid.min() >= 0 and grid.max() <= 1
    for k in range(2):  # the largest |weight| reaches 0 or 1, and the map is w / max|w| around 0.5
        expected = 0.5 + 0.5 * base[k] / base[k].abs().max()
        np.testing.assert_allclose(grid[k], expected.permute(1, 2, 0).numpy(), atol=1e-6)
        assert np.isclose(np.abs(grid[k] - 0.5).max(), 0.5)
    zero = torch.zeros(1, 1, 3, 3)
    np.testing.assert_array_equal(weights.kernel_grid(zero), np.full((1, 3, 3), 0.5, dtype=np.float32))


def test_channel_mode_shows_the_chosen_input_channel_and_norm_mode_the_norm_over_inputs():
    torch.manual_seed(2)
    w = torch.randn(3, 5, 3, 3)
    channel = weights.kernel_grid(w, "channel", input_channel=4)
    norm = weights.kernel_grid(w, "norm")
    for k in range(3):
        np.testing.assert_allclose(channel[k], (0.5 + 0.5 * w[k, 4] / w[k, 4].abs().max()).numpy(), atol=1e-6)
        taps = np.array([[np.sqrt(sum(float(w[k, c, i, j]) ** 2 for c in range(5))) for j in range(3)] for i in range(3)])
        np.testing.assert_allclose(norm[k], taps / taps.max(), atol=1e-5)


# ------------------------------------------------------------------------------- smoothness and diversity

def test_smoothness_is_higher_for_a_gaussian_than_for_white_noise():
    torch.manual_seed(3)
    gaussian = weights.smoothness(gaussian_kernel())[0]
    assert gaussian > 0.75
    checkerboard = torch.tensor([[1.0, -1, 1], [-1, 1, -1], [1, -1, 1]])[None, None]
    assert weights.smoothness(checkerboard)[0] < 0.02
    for size in (3, 5, 7):
        noise_scores = weights.smoothness(torch.randn(4000, 1, size, size))
        assert noise_scores.max() < weights.smoothness(gaussian_kernel(size))[0]
        # White noise scores pi/16 on average, whatever the kernel size (4,000 draws: standard error < 0.002).
        assert noise_scores.mean() == pytest.approx(np.pi / 16, abs=0.006)
        assert weights.noise_smoothness() == pytest.approx(np.pi / 16, abs=1e-12)
    uniform = weights.smoothness(nn.Conv2d(1, 4000, 5).weight)  # PyTorch's default initialisation: uniform noise
    assert uniform.mean() == pytest.approx(np.pi / 16, abs=0.006)


def test_smoothness_matches_the_integral_of_the_continuous_spectrum():
    torch.manual_seed(4)
    for shape in ((7, 3, 5, 5), (5, 1, 3, 3), (3, 2, 7, 7), (2, 1, 3, 5)):
        w = torch.randn(*shape)
        expected = [quadrature_smoothness(w[k].double().numpy()) for k in range(shape[0])]
        np.testing.assert_allclose(weights.smoothness(w), expected, rtol=1e-5)
    assert np.isnan(weights.smoothness(torch.zeros(1, 1, 3, 3))[0])


def test_smoothness_does_not_depend_on_padding():
    """A kernel set inside a larger kernel of zeros (which a padded FFT of another size would sample differently:
    the old 16-point grid gave random 3x3 kernels 0.146, a 256-point one 0.152) keeps its share exactly."""
    torch.manual_seed(5)
    small = torch.randn(20, 2, 3, 3)
    for size, corner in ((9, (0, 0)), (9, (3, 2)), (17, (7, 11))):
        large = torch.zeros(20, 2, size, size)
        large[:, :, corner[0]:corner[0] + 3, corner[1]:corner[1] + 3] = small
        np.testing.assert_allclose(weights.smoothness(large), weights.smoothness(small), rtol=1e-5)


def test_diversity_is_zero_for_identical_filters_one_for_orthogonal_ones():
    same = torch.randn(1, 2, 3, 3).repeat(5, 1, 1, 1)
    assert weights.diversity(same) == pytest.approx(0.0, abs=1e-9)
    orthogonal = torch.eye(9).reshape(9, 1, 3, 3)
    assert weights.diversity(orthogonal) == pytest.approx(1.0, abs=1e-9)
    torch.manual_seed(5)
    w = torch.randn(6, 2, 3, 3)
    flat = w.reshape(6, -1).double()
    pairs = [1 - float(flat[i] @ flat[j] / (flat[i].norm() * flat[j].norm())) for i, j in itertools.combinations(range(6), 2)]
    assert weights.diversity(w) == pytest.approx(np.mean(pairs), abs=1e-9)
    assert np.isnan(weights.diversity(torch.randn(1, 1, 3, 3)))


# -------------------------------------------------------------------------------------------------- jobs

def test_kernels_job_on_the_built_in_model(trained_model):
    result = run(Source(), "weights.kernels", {"layer": "conv1"})
    assert result["mode"] == "channel" and result["input_channel"] == 0
    assert result["shape"] == (16, 1, 5, 5) and result["grid"].shape == (16, 5, 5)
    expected = weights.kernels(trained_model, "conv1")
    np.testing.assert_allclose(result["grid"], weights.kernel_grid(expected), atol=1e-6)
    np.testing.assert_allclose(result["smoothness"], weights.smoothness(expected), atol=1e-6)
    assert result["conv_layers"] == ["conv1", "conv2", "conv3"]
    deeper = run(Source(), "weights.kernels", {"layer": "conv2", "epoch": 0, "mode": "channel", "input_channel": 3})
    assert deeper["grid"].shape == (32, 3, 3) and deeper["epoch"] == 0
    with pytest.raises(LayerError, match="fully connected"):
        run(Source(), "weights.kernels", {"layer": "fc1"})


def test_training_raises_smoothness_while_filters_stay_nearly_orthogonal(trained_model):
    """Measured on the built-in model (epochs 0 -> 10): smoothness rises in every conv layer (conv1 0.20 -> 0.80,
    conv2 0.20 -> 0.39, conv3 0.19 -> 0.29; white noise 0.196); diversity stays near 1: random filters are already
    nearly orthogonal (0.98-1.00), and training leaves them so (0.95-1.02; conv1's opposite edges pass 1)."""
    from compute import models

    epochs = [c.epoch for c in models.checkpoints("digits-cnn")]
    for layer in ("conv1", "conv2", "conv3"):
        result = run(Source(), "weights.evolution", {"layer": layer})
        assert result["epochs"] == epochs and result["labels"][0] == "epoch 0"
        assert result["grids"].shape[0] == len(epochs) == result["smoothness"].shape[0]
        assert result["mean_smoothness"][-1] > result["mean_smoothness"][0] + 0.05
        assert result["mean_smoothness"][0] == pytest.approx(result["noise_smoothness"], abs=0.03)
        assert abs(result["diversity"][0] - 1) < 0.05 and abs(result["diversity"][-1] - 1) < 0.1
        assert result["test_accuracy"][-1] > 0.9 > result["test_accuracy"][0]
        first = run(Source(), "weights.kernels", {"layer": layer, "epoch": 0})
        np.testing.assert_allclose(result["grids"][0], first["grid"], atol=1e-6)


def orientation_coherence(kernel: np.ndarray) -> float:
    """How much one direction dominates a kernel's gradients (the structure tensor's coherence, ((l1 - l2) /
    (l1 + l2))^2): near 1 for an edge or a bar, near 0 for a round blob; white-noise 5x5 kernels pass 0.5 9% of the
    time."""
    dx = (kernel[:, 1:] - kernel[:, :-1])[:-1]
    dy = (kernel[1:, :] - kernel[:-1, :])[:, :-1]
    tensor = np.array([[np.sum(dx * dx), np.sum(dx * dy)], [np.sum(dx * dy), np.sum(dy * dy)]])
    low, high = np.linalg.eigvalsh(tensor)
    return float(((high - low) / (high + low)) ** 2)


def test_the_first_layer_teaches_the_filters_slide(trained_model):
    """The built-in model's conv1 (5x5): white noise before training, smooth oriented stroke detectors after.
    Measured (seed 0, 2 threads): mean smoothness 0.200 untrained, 0.805 trained, against 0.196 for white noise (a
    margin of 0.61 over noise; the smallest filter 0.75); 12 of 16 filters oriented (coherence > 0.5; 1 untrained);
    test accuracy 99.4%."""
    from compute import models

    noise = weights.noise_smoothness()
    untrained, trained = models.load("digits-cnn", epoch=0), trained_model
    before = weights.smoothness(weights.kernels(untrained, "conv1"))
    after = weights.smoothness(weights.kernels(trained, "conv1"))
    assert weights.kernels(trained, "conv1").shape == (16, 1, 5, 5)
    assert before.mean() == pytest.approx(noise, abs=0.03)
    assert after.mean() > noise + 0.45 and after.min() > noise + 0.2
    oriented = [orientation_coherence(k[0]) > 0.5 for k in weights.kernels(trained, "conv1").numpy()]
    assert sum(oriented) >= 8
    assert models.checkpoints("digits-cnn")[-1].test_accuracy >= 0.97


# ----------------------------------------------------------------------------------------------- figures

def tile_channels(trace) -> np.ndarray:
    """The output channels a kernel-grid trace draws (customdata[..., 0], gaps excluded)."""
    index = np.asarray(trace.customdata, dtype=float)[..., 0]
    return np.unique(index[np.isfinite(index)]).astype(int)


@pytest.mark.parametrize("grid, mode, trace_type", [
    (np.random.default_rng(0).random((16, 3, 3)), "channel", "heatmap"),
    (np.random.default_rng(1).random((10, 7, 7, 3)), "rgb", "image"),
    (np.random.default_rng(2).random((64, 3, 3)), "norm", "heatmap"),
])
def test_kernel_grid_figure_has_one_tile_per_filter(grid, mode, trace_type):
    figure = figures.kernel_grid_figure(grid, "conv9", mode, input_channel=2)
    (trace,) = figure.data
    assert trace.type == trace_type
    np.testing.assert_array_equal(tile_channels(trace), np.arange(len(grid)))
    index = np.asarray(trace.customdata, dtype=float)[..., 0]
    assert int(np.isfinite(index).sum()) == (grid[..., 0].size if mode == "rgb" else grid.size)  # every pixel once
    assert "layer conv9" in trace.hovertemplate and "output channel %{customdata[0]" in trace.hovertemplate
    expected_input = {"channel": "input channel 2", "rgb": "R, G, B", "norm": "all input channels"}[mode]
    assert expected_input in trace.hovertemplate


def test_kernel_grid_figure_places_each_filter_in_its_tile():
    grid = np.random.default_rng(3).random((5, 3, 3)).astype(np.float32)
    trace = figures.kernel_grid_figure(grid, "conv1", "channel", 0).data[0]
    z = np.asarray(trace.z, dtype=float)
    index = np.asarray(trace.customdata, dtype=float)[..., 0]
    for k in range(5):
        np.testing.assert_allclose(np.sort(z[index == k]), np.sort(grid[k].ravel()), atol=1e-6)


def test_before_after_figure_shows_both_grids_side_by_side():
    before, after = np.zeros((8, 3, 3)), np.ones((8, 3, 3))
    figure = figures.before_after_figure(before, after, "conv2", "channel", 1, titles=("epoch 0", "epoch 10"))
    assert len(figure.data) == 2
    assert [trace.xaxis for trace in figure.data] == ["x", "x2"]
    for trace, grid in zip(figure.data, (before, after)):
        np.testing.assert_array_equal(tile_channels(trace), np.arange(8))
        z = np.asarray(trace.z, dtype=float)
        assert set(np.unique(z[np.isfinite(z)])) == {float(grid.flat[0])}
    assert [a.text for a in figure.layout.annotations][:2] == ["epoch 0", "epoch 10"]
    with pytest.raises(ValueError, match="differ in shape"):
        figures.before_after_figure(before, np.ones((4, 3, 3)), "conv2", "channel")


def test_evolution_figure_plots_the_numbers_per_epoch_and_marks_the_selected_one():
    labels = ["epoch 0", "epoch 1", "epoch 2"]
    figure = figures.evolution_figure(labels, np.array([0.2, 0.25, 0.3]), np.array([1.0, 0.97, 0.96]),
                                      noise_smoothness=0.19, test_accuracy=np.array([0.1, 0.8, 0.95]), selected=1)
    values = {trace.name: list(trace.y) for trace in figure.data}
    assert values["smoothness (mean over filters)"] == [0.2, 0.25, 0.3]
    assert values["diversity (mean cosine distance)"] == [1.0, 0.97, 0.96]
    assert values["test accuracy"] == [0.1, 0.8, 0.95]
    assert list(figure.layout.xaxis.ticktext) == labels
    assert any(shape.x0 == 1 and shape.x1 == 1 for shape in figure.layout.shapes)  # the selected epoch
    assert any(shape.y0 == 0.19 and shape.y1 == 0.19 for shape in figure.layout.shapes)
