"""Shared test set-up: offline, quick profile, CPU, no spinning OpenMP threads.

These are set before torch is imported anywhere, and nbval's kernels (started with
--nbval-current-env) inherit them, so `pytest` gives the same result whether or not it
is started through `make test`.
"""
import os

os.environ.setdefault("LAB_PROFILE", "quick")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("PYTHONHASHSEED", "0")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch, request):
    """Unit tests write figures/checkpoints into a temp root, never into the repo."""
    if request.node.fspath.ext == ".py":
        monkeypatch.setenv("LAB_ROOT", str(tmp_path))
        monkeypatch.setenv("LAB_NOTEBOOK", "test")
    yield
