"""CSRF defence of HTML forms: every POST carries a token the page got from the server, compared
in constant time with the session's (signed in) or with a cookie's (the sign-in form itself,
before any session: double submit). A cross-site Origin is refused outright as well."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

FIELD = "csrf_token"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(expected: str | None, given: str | None) -> bool:
    if not expected or not given or len(given) > 100:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def same_origin(origin: str | None, referer: str | None, host: str | None) -> bool:
    """False when the browser says the form came from another site. Browsers send Origin on
    every POST; a missing one (old clients, privacy settings) falls back to Referer, and with
    neither the token alone decides."""
    source = origin if origin and origin != "null" else referer
    if origin == "null":
        return False
    if not source:
        return True
    return bool(host) and urlsplit(source).netloc.lower() == (host or "").lower()
