"""Classification metrics against hand computations (lab_utils.metrics)."""
import numpy as np
import pytest
import torch

from lab_utils.metrics import accuracy, confusion, macro_f1, per_class_f1


def test_accuracy_and_macro_f1_by_hand():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    assert accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    # per class: F1_0 = 2·(1/2·1/2)/(1) = 0.5, F1_1 = 2·(2/3·1)/(5/3) = 0.8, F1_2 = 2·(1·1/2)/(3/2) = 2/3
    assert per_class_f1(y_true, y_pred, 3) == pytest.approx([0.5, 0.8, 2 / 3])
    assert macro_f1(torch.tensor(y_true), torch.tensor(y_pred)) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_macro_f1_counts_missing_classes_when_asked():
    assert macro_f1([0, 0], [0, 0]) == 1.0
    assert macro_f1([0, 0], [0, 0], num_classes=2) == 0.5


def test_confusion_rows_are_true_classes():
    cm = confusion([0, 0, 1, 2], [0, 1, 1, 1], num_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    norm = confusion([0, 0, 1, 2], [0, 1, 1, 1], num_classes=3, normalize="true")
    assert np.allclose(norm.sum(1), 1)


def test_calibration_table_and_ece_by_hand():
    """Four predictions in two confidence bins, worked out by hand: bin (0.5, 0.6] holds two
    at 0.55 with one right (gap 0.05), bin (0.9, 1.0] two at 0.95 with both right (gap 0.05);
    ECE = (2 · 0.05 + 2 · 0.05) / 4 = 0.05."""
    from lab_utils.metrics import calibration_table
    from lab_utils.viz import calibration_table as from_viz

    probs = np.array([[0.55, 0.45], [0.45, 0.55], [0.95, 0.05], [0.05, 0.95]])
    labels = np.array([0, 0, 0, 1])
    table = calibration_table(probs, labels)
    assert from_viz is calibration_table                      # one home, re-exported for plots
    assert table["count"].tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    assert table.loc[5, "accuracy"] == 0.5 and table.loc[9, "accuracy"] == 1.0
    assert table.attrs["ece"] == pytest.approx(0.05)
    assert calibration_table(torch.tensor([[1.0, 0.0]]), torch.tensor([0])).attrs["ece"] == pytest.approx(0.0)


def test_pinned_share_counts_rows_handed_to_one_input():
    from lab_utils.metrics import pinned_share

    w = torch.tensor([[0.5, 0.5], [0.95, 0.05], [0.02, 0.98], [0.7, 0.3]])
    assert pinned_share(w) == 0.5 and pinned_share(w, level=0.99) == 0.0 and pinned_share(w, 0.7) == 0.75
    with pytest.raises(ValueError, match="rows sum to 1"):
        pinned_share(torch.tensor([[0.5, 0.6]]))
