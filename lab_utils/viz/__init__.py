"""Every plot a notebook shows; each also saved under ``outputs/<notebook>/``.

Names are imported lazily from the module that defines them (``core`` for the shared
plots, one module per notebook family for the rest), so ``from lab_utils.viz import X``
only imports what it needs.
"""
from __future__ import annotations

import importlib

from .core import (grouped_bars, image_grid, plot_confusion_matrix, plot_history,  # noqa: F401
                   save_figure)

# name -> submodule of lab_utils.viz that defines it (one line per public name)
_LAZY: dict[str, str] = {
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'lab_utils.viz' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
