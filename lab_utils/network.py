"""Whether this machine may and can download: the environment's offline switches and one quick
connection attempt, so that loading fails in seconds instead of retrying downloads. The
models ask here (``lab_utils.models.pretrained``); the profile plays no part.
"""
from __future__ import annotations

import os
import socket
from urllib.parse import urlparse


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set (1, true, yes, on): no downloads."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def reachable(url: str, timeout: float = 3.0) -> bool:
    """One TCP connection attempt to ``url``'s host, so that a machine without network fails
    in seconds instead of retrying downloads."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub (``HF_ENDPOINT``, default huggingface.co) answers (``reachable``)."""
    return reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"), timeout)
