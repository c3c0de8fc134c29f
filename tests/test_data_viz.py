"""The data figures: titles, labels, °C colour bar, one panel per class and modality."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from lab_utils.data import EMOTIONS, SynthFER, subject_split  # noqa: E402


def test_sample_grid_and_balance(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_ROOT", str(tmp_path))
    monkeypatch.setattr("lab_utils.paths._notebook", "test_data_viz")
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


def test_result_bars_draw_the_interval_columns_and_name_references_in_the_legend(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    import pandas as pd

    from lab_utils.viz import grouped_bars
    from lab_utils.viz.hybrid import plot_results
    monkeypatch.setenv("LAB_ROOT", str(tmp_path))
    table = pd.DataFrame({"accuracy": [0.5, 0.7], "f1_macro": [0.4, 0.6], "accuracy_low": [0.45, 0.6],
                          "accuracy_high": [0.52, 0.8], "f1_macro_low": [0.3, 0.55], "f1_macro_high": [0.5, 0.65],
                          "trainable_params": [10, 1000], "train_s": [1.0, 2.0]}, index=["a", "b"])
    fig = grouped_bars(table, ["accuracy", "f1_macro"], title="t", name="bars", reference={"chance": 1 / 7})
    ax = fig.axes[0]
    caps = sorted(round(y, 3) for line in ax.lines if line.get_marker() == "_" for y in line.get_ydata())
    assert caps == sorted([0.45, 0.6, 0.52, 0.8, 0.3, 0.55, 0.5, 0.65])          # each bar's interval, both ends
    assert "chance" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert not [t for t in ax.texts if "chance" in t.get_text()]                 # no label drawn over the bars
    plt.close(fig)
    fig = plot_results(table, name="results", chance=1 / 7)
    caps = sorted(round(y, 3) for line in fig.axes[0].lines if line.get_marker() == "_" for y in line.get_ydata())
    assert caps == sorted([0.45, 0.6, 0.52, 0.8, 0.3, 0.55, 0.5, 0.65])
    plt.close(fig)
