"""Tests for lab_utils.viz.vit (notebook 01's figures) and the ViT forward benchmark script."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lab_utils.models.vit import VisionTransformer  # noqa: E402
from lab_utils.paths import outputs_dir  # noqa: E402
from lab_utils.viz.vit import (plot_cls_attention, plot_patch_grid, plot_patch_sequence,  # noqa: E402
                               plot_position_similarity)


def test_patch_figures_are_saved():
    img = torch.rand(3, 32, 48)
    fig = plot_patch_grid(img, 8, name="grid")
    assert "4×6 = 24 patches of 8×8" in fig.axes[0].get_title()
    fig2 = plot_patch_sequence(img, 8, n_show=5, name="seq")
    assert len(fig2.axes) == 5 + 1 + 1  # thumbnails, matrix, colorbar
    assert (outputs_dir("test") / "grid.png").is_file() and (outputs_dir("test") / "seq.png").is_file()
    plot_patch_grid(img, 16, name=None)  # widget use: nothing saved
    assert not (outputs_dir("test") / "None.png").exists()
    with pytest.raises(ValueError, match="resize to"):
        plot_patch_grid(img, 10)
    plt.close("all")


def test_position_similarity_and_attention_figures():
    model = VisionTransformer(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=4, intermediate_size=64).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x, output_attentions=True)
    fig = plot_position_similarity(model.pos_embed, (4, 4), name="pos")
    assert len(fig.axes) == 16 + 1
    fig = plot_cls_attention(x[0], [a[:1] for a in out.attentions], (4, 4), name="attn")
    titles = [ax.get_title() for ax in fig.axes]
    assert {"input", "head 4", "mean of 4 heads", "rollout, 2 layers"} <= set(titles)
    assert (outputs_dir("test") / "pos.png").is_file() and (outputs_dir("test") / "attn.png").is_file()
    with pytest.raises(ValueError, match="grid 3×3 needs 9"):
        plot_position_similarity(model.pos_embed, (3, 3))
    plt.close("all")


def test_benchmark_script_runs_on_the_quick_preset(capsys):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "vit_forward.py"
    spec = importlib.util.spec_from_file_location("vit_forward", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        ratio = module.main(["--preset", "quick", "--batch", "2", "--warmup", "1", "--runs", "2",
                             "--threads", str(threads)])
    finally:
        torch.set_num_threads(threads)
    assert ratio > 0
    text = capsys.readouterr().out
    assert "ratio from-scratch / transformers" in text
    diff = float(text.split("max |last_hidden_state difference| = ")[1].split()[0])
    assert diff < 1e-4
