"""Tests for notebook 01's "one backbone, three tasks" figure: patch_token_pca and plot_task_readouts."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lab_utils.models.vit import VisionTransformer  # noqa: E402
from lab_utils.paths import outputs_dir  # noqa: E402
from lab_utils.viz.vit import patch_token_pca, plot_task_readouts  # noqa: E402


def test_patch_token_pca_is_an_rgb_grid_in_unit_range_and_stable():
    torch.manual_seed(0)
    grid = torch.randn(3, 5, 16)
    rgb = patch_token_pca(grid)
    assert rgb.shape == (3, 5, 3)
    assert rgb.min() >= 0 and rgb.max() <= 1
    assert np.allclose(rgb.min(axis=(0, 1)), 0) and np.allclose(rgb.max(axis=(0, 1)), 1)
    np.testing.assert_allclose(patch_token_pca(-grid), rgb, atol=1e-6)  # sign of the tokens does not matter
    assert patch_token_pca(grid, n_components=2).shape == (3, 5, 2)
    with pytest.raises(ValueError, match="components"):
        patch_token_pca(torch.randn(1, 2, 16))  # 2 tokens cannot give 3 components


def test_task_readouts_figure_shows_the_grid_and_is_saved():
    model = VisionTransformer(image_size=(32, 48), patch_size=8, hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=4, intermediate_size=64).eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        hidden = model(x).last_hidden_state  # [1, 1 + 4·6, 32]
    fig = plot_task_readouts(x[0], hidden, (4, 6), name="task_readouts_test")
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert images[1].shape == (4, 6, 3)  # the patch-token grid, (H/P, W/P, RGB)
    assert images[2].shape == (2, 32)  # [CLS] and the mean patch token, D values each
    assert (outputs_dir("test") / "task_readouts_test.png").is_file()
    plot_task_readouts(x[0], hidden[0], (4, 6), name=None)  # (1+N, D) works too; nothing saved
    assert not (outputs_dir("test") / "None.png").exists()
    with pytest.raises(ValueError, match="grid 3×3 needs 10"):
        plot_task_readouts(x[0], hidden, (3, 3))
    plt.close("all")
