"""Parameter tables (lab_utils.models.summary): the one table behind every parameter_summary()."""

import torch
from torch import nn

from lab_utils.models.summary import format_parameter_table, parameter_table


def two_part_model():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))      # 16 + 10 parameters
    model[0].requires_grad_(False)
    model.scale = nn.Parameter(torch.zeros(()))                    # one more, in no part below
    return model


def test_one_row_per_part_and_a_total_for_the_whole_model():
    model = two_part_model()
    table = parameter_table({"encoder": model[0], "no such part": None, "head": model[1]}, model)
    assert list(table.index) == ["encoder", "head", "total"]        # None: no row
    assert list(table.columns) == ["trainable", "frozen", "total"]
    assert table.loc["encoder"].tolist() == [0, 16, 16]
    assert table.loc["head"].tolist() == [10, 0, 10]
    assert table.loc["total"].tolist() == [11, 16, 27]              # the whole model, scale included


def test_a_lone_parameter_counts_through_a_parameter_list():
    model = two_part_model()
    table = parameter_table({"scale": nn.ParameterList([model.scale])}, model)
    assert table.loc["scale"].tolist() == [1, 0, 1]
    model.scale.requires_grad_(False)
    assert parameter_table({"scale": nn.ParameterList([model.scale])}, model).loc["scale"].tolist() == [0, 1, 1]


def test_the_printed_table_has_separators_and_the_trainable_share():
    model = nn.Linear(1000, 3)                                    # 3,003 parameters
    model.bias.requires_grad_(False)
    text = format_parameter_table(parameter_table({"weight and bias": model}, model))
    assert text.splitlines() == ["                trainable frozen total",
                                 "weight and bias     3,000      3 3,003",
                                 "total               3,000      3 3,003",
                                 "Trainable: 3,000 of 3,003 parameters (99.9%)"]
