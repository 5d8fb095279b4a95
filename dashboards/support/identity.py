"""Who is using the support console: from the auth proxy's header, never from anything the user types.

In production the company's auth proxy (oauth2-proxy, IAP, ...) authenticates the agent and sets
``X-Forwarded-Email`` (name configurable with ``PITWALL_SUPPORT_IDENTITY_HEADER``) on every request it forwards.
The header is only as trustworthy as the network path: Streamlit must listen where only the proxy reaches it.
Where that cannot be guaranteed, set ``PITWALL_SUPPORT_PROXY_SECRET`` in both the proxy and the console: the proxy
adds it as ``X-Pitwall-Proxy-Secret`` and a request without the matching value is refused (compared in constant
time, so the secret cannot be guessed byte by byte from response times).

For local development only, ``PITWALL_SUPPORT_DEV_MODE=1`` with ``PITWALL_SUPPORT_DEV_USER=<email>`` stands in
for the proxy. It is ignored when a proxy secret is configured (that is a deployment) and whenever the request
carries the identity header (the proxy's word wins).
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from dashboards.support.roles import normalize_email

HEADER_ENV = "PITWALL_SUPPORT_IDENTITY_HEADER"
DEFAULT_HEADER = "X-Forwarded-Email"
PROXY_SECRET_ENV = "PITWALL_SUPPORT_PROXY_SECRET"
PROXY_SECRET_HEADER = "X-Pitwall-Proxy-Secret"
DEV_MODE_ENV = "PITWALL_SUPPORT_DEV_MODE"
DEV_USER_ENV = "PITWALL_SUPPORT_DEV_USER"

# Deliberately plain: an identity is an address the proxy vouches for, not arbitrary text to put in an audit row.
EMAIL_SHAPE = re.compile(r"^[a-z0-9._%+'-]{1,64}@[a-z0-9.-]{1,253}\.[a-z]{2,63}$")


@dataclass(frozen=True)
class Identity:
    email: str
    source: str  # "header" or "dev"


@dataclass(frozen=True)
class Unidentified:
    """No usable identity; ``claimed`` is whatever was offered (for the audit row), ``why`` says what was wrong."""

    why: str
    claimed: str | None = None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Header names are case-insensitive (st.context.headers already is; plain dicts in tests may not be).
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _dev_mode(environ: Mapping[str, str]) -> bool:
    return environ.get(DEV_MODE_ENV, "").strip().lower() in {"1", "true", "yes"}


def resolve(headers: Mapping[str, str], environ: Mapping[str, str] | None = None) -> Identity | Unidentified:
    """The console user's identity from the request headers and the server's environment."""
    environ = os.environ if environ is None else environ
    header_name = environ.get(HEADER_ENV) or DEFAULT_HEADER
    proxy_secret = environ.get(PROXY_SECRET_ENV)
    claimed = _header(headers, header_name)

    if proxy_secret:
        offered = _header(headers, PROXY_SECRET_HEADER) or ""
        if not hmac.compare_digest(offered.encode(), proxy_secret.encode()):
            return Unidentified("the request did not come through the auth proxy", _clip(claimed))

    if claimed is not None:
        return _checked(claimed, "header")
    if _dev_mode(environ) and not proxy_secret:
        dev_user = environ.get(DEV_USER_ENV)
        if dev_user:
            return _checked(dev_user, "dev")
        return Unidentified(f"dev mode is on but {DEV_USER_ENV} is not set")
    return Unidentified(f"no {header_name} header: open the console through the company's auth proxy")


def _checked(value: str, source: str) -> Identity | Unidentified:
    email = normalize_email(value)
    if not EMAIL_SHAPE.match(email):
        return Unidentified("the identity is not an email address", _clip(value))
    return Identity(email, source)


def _clip(value: str | None, limit: int = 200) -> str | None:
    """What an unknown caller claimed, short enough to record without letting them flood the audit log."""
    return None if value is None else value[:limit]


def from_streamlit() -> Identity | Unidentified:
    """The identity of the current Streamlit session (headers of the session's first request)."""
    import streamlit as st

    return resolve(st.context.headers)
