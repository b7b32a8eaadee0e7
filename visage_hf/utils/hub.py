"""Reaching the Hugging Face Hub: tell "offline" apart from other failures, quickly and the same way everywhere.

`visage generate`, `visage convert-original` and the demo app load models from the Hub by id. Without network,
the Hub libraries retry for tens of seconds and then raise errors of several kinds; these two checks let every
entry point say in one line, within seconds, what to do instead.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from huggingface_hub import constants
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

__all__ = ["hub_reachable", "is_network_error"]


def is_network_error(error: BaseException) -> bool:
    """Whether ``error`` (or an exception it was raised from) means the Hub could not be reached."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError)):
            return True
        if type(error).__module__.startswith(("httpx", "httpcore", "requests", "urllib3")):
            return True
        error = error.__cause__ or error.__context__
    return False


def hub_reachable(timeout: float = 5.0) -> bool:
    """A quick TCP check of the Hub endpoint, so that no network fails in seconds instead of after retries.

    Skipped (True) when a proxy is configured or HF_HUB_OFFLINE is set (the Hub libraries handle those)."""
    if constants.HF_HUB_OFFLINE or any(
        os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
    ):
        return True
    endpoint = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection(
            (endpoint.hostname, endpoint.port or (443 if endpoint.scheme == "https" else 80)), timeout=timeout
        ):
            return True
    except OSError:
        return False
