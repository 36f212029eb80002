"""Is the Hugging Face hub there, and is a repository already in the local cache?

Offline, huggingface_hub spends half a minute or more on retries (and prints
them) before it gives up; one quick connection attempt lets loaders say what
to download at once, and load a cached copy without asking the hub.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse


PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def hub_reachable(timeout: float = 3.0) -> bool:
    """False when HF_HUB_OFFLINE is set or no connection to the hub opens; behind a proxy a direct
    connection proves nothing, so there the answer is True and huggingface_hub finds out itself."""
    if os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on"):
        return False
    if any(os.environ.get(name) for name in PROXIES):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
    except (OSError, TypeError):
        return False
    return True


def cached(repo_id: str, files: tuple[str, ...]) -> bool:
    """All of `files` of `repo_id` are in the local hub cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return all(isinstance(try_to_load_from_cache(repo_id, f), str) for f in files)
    except Exception:  # not a valid repo id: from_pretrained will say so
        return False
