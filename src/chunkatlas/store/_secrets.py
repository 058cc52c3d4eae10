"""Credentials never reach a message, a log or a result: URLs and query strings masked."""

from __future__ import annotations

import re

_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
_SECRET_PARAMS = re.compile(
    r"(?P<key>[?&](?:[a-z0-9_-]*(?:token|secret|signature|password|credential|key)[a-z0-9_-]*))"
    r"=[^&\s]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with user:password@ in URLs and secret-looking query parameters masked."""
    text = _CREDENTIALS.sub(r"\g<scheme>***@", str(text))
    return _SECRET_PARAMS.sub(r"\g<key>=***", text)
