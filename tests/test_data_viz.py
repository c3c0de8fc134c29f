"""The data figures: titles, labels, °C colour bar, one panel per class and modality."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from lab_utils.data import EMOTIONS, SynthFER, subject_split  # noqa: E402


def test_sample_grid_and_balance(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_ROOT", str(tmp_path))
    monkeypatch.setenv("LAB_NOTEBOOK", "test_data_viz")
    from lab_utils.viz import plot_class_balance, plot_sample_grid
    ds = SynthFER(140, 32, seed=0)
    fig = plot_sample_grid(ds, per_class=1)
    axes = [a for a in fig.axes if a.images and a.get_label() != "<colorbar>"]
    assert len(axes) == 2 * len(EMOTIONS)  # every class, both modalities
    assert [a.get_title() for a in fig.axes[:7]] == list(EMOTIONS)
    cbar = fig.axes[-1]
    assert "°C" in cbar.get_ylabel()
    assert fig._suptitle.get_text()
    tr, va, te = subject_split(ds)
    fig2 = plot_class_balance({"train": tr, "val": va, "test": te})
    ax = fig2.axes[0]
    assert ax.get_ylabel() == "number of images" and ax.get_title()
    assert len(ax.patches) == 3 * 7 and sum(p.get_height() for p in ax.patches) == 140
    assert (tmp_path / "outputs" / "test_data_viz" / "sample_grid.png").exists()
    plt.close("all")
