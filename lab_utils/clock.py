"""The notebook's clock: each ``fit`` reports its first epoch here, and whoever listens (the
cost estimate a notebook printed before its long training, ``lab_utils.cost.print_estimate``)
turns it into the time the notebook has left. No listener: nothing happens."""
from __future__ import annotations

from typing import Callable

_listener: Callable[[float, int], bool] | None = None


def listen(report: Callable[[float, int], bool] | None) -> None:
    """``report(seconds, images)`` hears the first epoch of every training from now on, until it
    returns ``True`` (done) or another listener replaces it."""
    global _listener
    _listener = report


def first_epoch_done(seconds: float, images: int) -> None:
    """Called by ``fit`` after the first epoch of each training: its wall time and images."""
    if _listener is not None and _listener(seconds, images):
        listen(None)
