"""Where the lab's folders are: the repository root, ``outputs/``, ``checkpoints/``, ``data/``.

The root is found from the working directory (a notebook runs in ``notebooks/``), so it
works the same for an editable install, a plain ``pip install`` on Colab, and tests.
``LAB_ROOT`` overrides it.
"""
from __future__ import annotations

import os
from pathlib import Path

_MARKERS = ("pyproject.toml", "notebooks")
_notebook: str | None = None    # the notebook being run: set once, by setup_notebook


def set_notebook(name: str | None) -> None:
    """Name the notebook this process runs (``setup_notebook`` does): its figures and its
    outcome record go to ``outputs/<name>/``. ``None``: no notebook (tests, scripts)."""
    global _notebook
    _notebook = name


def current_notebook() -> str | None:
    """The notebook ``set_notebook`` named, or ``None``."""
    return _notebook


def repo_root() -> Path:
    """The lab's root folder: ``$LAB_ROOT``, else the nearest parent of the working
    directory holding ``pyproject.toml`` and ``notebooks/``, else the working directory."""
    env = os.environ.get("LAB_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if all((folder / m).exists() for m in _MARKERS):
            return folder
    return here


def outputs_dir(notebook: str | None = None) -> Path:
    """``outputs/`` or ``outputs/<notebook>/`` (created)."""
    path = repo_root() / "outputs"
    if notebook:
        path = path / notebook
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoints_dir() -> Path:
    """``checkpoints/`` (created): weights that later notebooks reuse."""
    path = repo_root() / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """``data/``: where real datasets go (see data/README.md). Never written to by loaders."""
    return repo_root() / "data"


def configs_dir() -> Path:
    """``configs/``: the YAML files of every experiment family."""
    return repo_root() / "configs"


def rel(path: str | os.PathLike) -> str:
    """``path`` relative to the repository root (for printing: the same on every machine)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(repo_root()))
    except ValueError:
        return str(path)


def is_local_dir(name_or_path: str | os.PathLike) -> bool:
    """Whether a model name is an existing local folder (``save_pretrained`` output) rather
    than a hub id."""
    return Path(str(name_or_path)).expanduser().is_dir()
