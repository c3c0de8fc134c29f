"""Schemas of the lab's YAML configs, one per family (``configs/<family>.yml``).

A schema is a dict: a key maps to a ``Field`` (a value) or to a nested dict (a section).
``Field(type, default=..., choices=..., low=..., high=..., low_open=..., high_open=...)``:
``type`` is ``int``, ``float``, ``str`` or ``bool``; floats accept YAML strings such as
``2e-5`` (PyYAML reads those as strings) and come out as numbers. Each family owner adds
its own ``SCHEMAS["<family>"] = {...}`` block below.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

_MISSING = object()


@dataclass(frozen=True)
class Field:
    type: type
    default: Any = _MISSING
    choices: Sequence[Any] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False   # True: value must be > low (not >=)
    high_open: bool = False  # True: value must be < high
    doc: str = ""

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    def coerce(self, value: Any, key: str, source: str) -> Any:
        from .config import ConfigError

        kind = self.type.__name__
        if self.type is float and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        ok = (isinstance(value, self.type) and not (self.type is not bool and isinstance(value, bool)))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConfigError(f"{source}: {key!r} must be of type {kind}, got {value!r} "
                              f"({type(value).__name__}).")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{source}: {key!r} = {value!r} is not allowed. Allowed: "
                              f"{', '.join(map(repr, self.choices))}.")
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            op = ">" if self.low_open else "≥"
            raise ConfigError(f"{source}: {key!r} = {value!r} is out of range: it must be {op} {self.low}.")
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            op = "<" if self.high_open else "≤"
            raise ConfigError(f"{source}: {key!r} = {value!r} is out of range: it must be {op} {self.high}.")
        return value


SCHEMAS: dict[str, dict] = {}

# Seed 000: the hybrid ViT + CLIP experiment (configs/model.yml, notebook 03).
SCHEMAS["model"] = {
    "vit": {"model_name": Field(str, doc="hub id or local directory of a ViTModel")},
    "clip": {"model_name": Field(str, doc="OpenAI short name (ViT-B/32), hub id or local dir")},
    "fusion": {"method": Field(str, choices=("concat", "attention"))},
    "batch_size": Field(int, low=1),
    "learning_rate": Field(float, low=0, low_open=True),
    "epochs": Field(int, low=1),
    "patience": Field(int, low=1),
    "val_split": Field(float, low=0, high=1, low_open=True, high_open=True),
    "seed": Field(int, low=0),
}
