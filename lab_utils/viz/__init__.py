"""Every plot a notebook shows; each also saved under ``outputs/<notebook>/``.

Names are imported lazily from the module that defines them (``core`` for the shared
plots, one module per notebook family for the rest), so ``from lab_utils.viz import X``
only imports what it needs.
"""
from __future__ import annotations

import importlib

from .core import (grouped_bars, image_grid, plot_confusion_matrix, plot_history,  # noqa: F401
                   plot_shares_per_class, save_figure)

# name -> submodule of lab_utils.viz that defines it (one line per public name)
_LAZY: dict[str, str] = {
    "plot_similarity_matrix": "clip", "plot_clip_training": "clip", "plot_recall_bars": "clip", "plot_text_to_image": "clip", "plot_image_to_text": "clip", "plot_loss_bugs": "clip",
    "plot_patch_grid": "vit", "plot_patch_sequence": "vit", "plot_position_similarity": "vit",
    "plot_cls_attention": "vit", "patch_token_pca": "vit", "plot_task_readouts": "vit",
    "plot_sample_grid": "data", "plot_class_balance": "data", "plot_thermal_profile": "data",
    "plot_lr_schedule": "fer", "plot_per_class_f1": "fer", "plot_misclassified": "fer", "calibration_table": "fer", "plot_reliability": "fer", "plot_confusion_grid": "fer", "plot_modality_weights": "fer", "plot_checkpointing": "fer",
    "plot_branch_inputs": "hybrid", "plot_results": "hybrid", "plot_tsne": "hybrid", "plot_branch_attention": "hybrid",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'lab_utils.viz' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
