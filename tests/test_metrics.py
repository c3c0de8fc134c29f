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
