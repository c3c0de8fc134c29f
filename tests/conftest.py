"""Unit-test fixtures (the environment itself is set by the root conftest.py)."""
import pytest
import torch

from lab_utils import paths

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    """Unit tests write figures/checkpoints into a temp root, never into the repo."""
    monkeypatch.setenv("LAB_ROOT", str(tmp_path))
    monkeypatch.setattr(paths, "_notebook", "test")
