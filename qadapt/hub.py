"""Is the Hugging Face hub there? Asked once, in seconds, before any download is tried."""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub endpoint (``$HF_ENDPOINT`` or huggingface.co) accepts a TCP connection within ``timeout`` s.

    False at once when ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` is set. Cached for the process.
    """
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "") or os.environ.get("HF_DATASETS_OFFLINE", "0") not in (
        "0",
        "",
    ):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
