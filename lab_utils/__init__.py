"""Helpers for the ViT · CLIP · Fusion · FER course lab.

Import this package before torch in a notebook: it sets ``OMP_WAIT_POLICY=PASSIVE``
(unless already set) so that two processes sharing a small CPU do not make torch's
spinning OpenMP threads collapse.

Modules (by concern): ``config`` (profiles, seeds, YAML configs), ``check`` (notebook
assertions that print one stable line), ``data``, ``models`` (architectures only),
``recipes`` (how a notebook trains and uses them), ``training``, ``metrics``, ``viz``,
``cost`` (the estimate a notebook prints before it trains), ``exercises`` (the checks the
exercise cells call). The maintainers' and instructors' tools live in ``lab_tools``.
"""
import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
