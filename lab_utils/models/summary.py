"""Parameter counts of a model part by part: the table behind every model's ``parameter_summary()``.

``count_parameters(module)`` (``models.pretrained``) counts one module; ``parameter_table`` puts
one such count per named part in a DataFrame with a ``total`` row for the whole model, and
``format_parameter_table`` writes it with thousands separators and the trainable share.
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd
from torch import nn

from .pretrained import count_parameters

COLUMNS = ["trainable", "frozen", "total"]


def parameter_table(parts: Mapping[str, nn.Module | None], whole: nn.Module) -> pd.DataFrame:
    """``count_parameters`` of each named part, one row each (a part that is ``None``, one the
    model does not have, gets no row), then a ``total`` row counting every parameter of ``whole``
    — whether or not the parts cover it. A lone ``nn.Parameter`` counts as a part when wrapped in
    ``nn.ParameterList([p])``."""
    rows = {name: count_parameters(part) for name, part in parts.items() if part is not None}
    rows["total"] = count_parameters(whole)
    return pd.DataFrame(rows).T[COLUMNS]


def format_parameter_table(table: pd.DataFrame) -> str:
    """``table`` (from ``parameter_table``) with thousands separators, then a line
    ``Trainable: n of N parameters (x.x%)``."""
    total = table.loc["total"]
    return (table.to_string(formatters={c: "{:,}".format for c in table.columns})
            + f"\nTrainable: {total.trainable:,} of {total.total:,} parameters "
              f"({100 * total.trainable / total.total:.1f}%)")
