"""Secrets kept out of what the console shows: the credentials a URL may carry and the API key a
server may echo back in its error text (some echo the whole request, Authorization header included)."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)
HIDDEN = "***"


def hide_credentials(text: str) -> str:
    """Every `scheme://user:password@host` in the text as `scheme://***@host`."""
    return _USERINFO.sub(rf"\1{HIDDEN}@", text)


def mask_secret(text: str, secret: str | None) -> str:
    """The text with the secret (a configured API key) masked wherever it appears."""
    if not secret or secret == "none" or len(secret) < 4:  # "none": the client's placeholder when no key is set
        return text
    return text.replace(secret, HIDDEN)
