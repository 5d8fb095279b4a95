"""Who is using the support console: proven by a sign-in or by the auth proxy's secret, never by what a request
merely claims.

Three set-ups, chosen by configuration (docs/support-console.md shows each):

- **Sign-in (recommended in production).** Streamlit's own ``st.login`` against the company's OpenID Connect
  provider, configured by an ``[auth]`` section in ``.streamlit/secrets.toml``. The identity is the ``email`` claim
  of the identity token Streamlit verified (``st.user``); request headers are ignored. A token whose
  ``email_verified`` claim is false is refused. ``PITWALL_SUPPORT_OIDC_PROVIDER`` names an ``[auth.<name>]``
  provider when there are several.
- **Auth proxy.** The company's proxy (oauth2-proxy, IAP, ...) authenticates the agent and sets
  ``X-Forwarded-Email`` (name: ``PITWALL_SUPPORT_IDENTITY_HEADER``). The header is believed only when the request
  also carries ``X-Pitwall-Proxy-Secret`` equal to ``PITWALL_SUPPORT_PROXY_SECRET``, a value only the proxy knows:
  without the secret anyone who reaches Streamlit could claim any role.
- **Development.** ``PITWALL_SUPPORT_DEV_MODE=1`` with ``PITWALL_SUPPORT_DEV_USER=<email>`` on a laptop. Headers
  are ignored; dev mode itself is ignored as soon as a proxy secret or a sign-in is configured.

With none of these every request is refused: the console does not fall back to trusting a header. A proxy secret,
when set, is required on every request in the sign-in set-up too (the proxy in front of Streamlit proves the path,
the sign-in proves the person). An identity or secret header sent twice is refused rather than read first-wins:
a proxy sets it once, so a second copy is someone else's.
"""

from __future__ import annotations

import hmac
import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dashboards.support.roles import normalize_email

HEADER_ENV = "PITWALL_SUPPORT_IDENTITY_HEADER"
DEFAULT_HEADER = "X-Forwarded-Email"
PROXY_SECRET_ENV = "PITWALL_SUPPORT_PROXY_SECRET"
PROXY_SECRET_HEADER = "X-Pitwall-Proxy-Secret"
MIN_PROXY_SECRET_CHARS = 16  # a shorter secret is guessable over enough requests
DEV_MODE_ENV = "PITWALL_SUPPORT_DEV_MODE"
DEV_USER_ENV = "PITWALL_SUPPORT_DEV_USER"
OIDC_PROVIDER_ENV = "PITWALL_SUPPORT_OIDC_PROVIDER"

HEADER, SIGN_IN, DEV = "header", "sign-in", "dev"

# Deliberately plain: an identity is an address someone vouches for, not arbitrary text to put in an audit row.
EMAIL_SHAPE = re.compile(r"[a-z0-9._%+'-]{1,64}@[a-z0-9.-]{1,253}\.[a-z]{2,63}")


@dataclass(frozen=True)
class Identity:
    email: str
    source: str  # HEADER (proxy with secret), SIGN_IN (st.login) or DEV


@dataclass(frozen=True)
class Unidentified:
    """No usable identity; ``claimed`` is whatever was offered (for the audit row), ``why`` says what was wrong.
    ``sign_in_required``: sign-in is configured and this browser has not signed in yet (the page offers the
    button; nothing was asked of the console, so nothing is refused)."""

    why: str
    claimed: str | None = None
    sign_in_required: bool = False


def header_values(headers: Mapping[str, Any], name: str) -> list[str]:
    """Every value the request carries for one header. Streamlit's ``st.context.headers`` keeps repeated headers
    (``get_all``) but answers ``headers[name]`` with the first; a plain mapping (tests) may hold the name in
    several spellings, or a list."""
    get_all = getattr(headers, "get_all", None)
    if callable(get_all):
        return [str(value) for value in get_all(name)]
    wanted, values = name.lower(), []
    for key, value in headers.items():
        if str(key).lower() != wanted:
            continue
        if isinstance(value, list | tuple):
            values.extend(str(v) for v in value)
        else:
            values.append(str(value))
    return values


def secrets_match(offered: str, expected: str) -> bool:
    """Constant-time comparison of bytes. Non-ASCII input cannot be the secret (which is ASCII): refused, not an
    error, whatever it is (a lone surrogate would make ``str.encode`` raise)."""
    if not (offered.isascii() and expected.isascii()):
        return False
    return hmac.compare_digest(offered.encode("ascii"), expected.encode("ascii"))


def dev_mode(environ: Mapping[str, str]) -> bool:
    return environ.get(DEV_MODE_ENV, "").strip().lower() in {"1", "true", "yes"}


def configured_proxy_secret(environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The proxy secret, or the reason the configured one cannot be used (so nobody is let in)."""
    secret = environ.get(PROXY_SECRET_ENV)
    if not secret:
        return None, None
    if not (secret.isascii() and secret.isprintable()) or any(c.isspace() for c in secret) \
            or len(secret) < MIN_PROXY_SECRET_CHARS:
        return None, (f"{PROXY_SECRET_ENV} is not usable (it must be at least {MIN_PROXY_SECRET_CHARS} printable "
                      "ASCII characters without spaces): the console lets nobody in until it is fixed")
    return secret, None


def resolve(headers: Mapping[str, Any], environ: Mapping[str, str] | None = None,
            sign_in: Mapping[str, Any] | None = None) -> Identity | Unidentified:
    """The console user's identity.

    ``headers``: the request's headers. ``environ``: the server's environment (default ``os.environ``).
    ``sign_in``: None when sign-in (``st.login``) is not configured; otherwise the claims Streamlit holds for this
    browser (``st.user``), empty or ``is_logged_in`` false when it has not signed in."""
    environ = os.environ if environ is None else environ
    header_name = environ.get(HEADER_ENV) or DEFAULT_HEADER
    claimed_values = header_values(headers, header_name)
    claimed = _clip(claimed_values[0]) if claimed_values else None

    secret, secret_problem = configured_proxy_secret(environ)
    if secret_problem:
        return Unidentified(secret_problem, claimed)
    if secret is not None:
        offered = header_values(headers, PROXY_SECRET_HEADER)
        if len(offered) != 1 or not secrets_match(offered[0], secret):
            return Unidentified("the request did not come through the auth proxy", claimed)

    if sign_in is not None:
        return _signed_in(sign_in)

    if secret is not None:
        if len(claimed_values) > 1:
            return Unidentified(f"the {header_name} header was sent {len(claimed_values)} times", claimed)
        if not claimed_values:
            return Unidentified(f"no {header_name} header: open the console through the company's auth proxy")
        return _checked(claimed_values[0], HEADER)

    if dev_mode(environ):
        dev_user = environ.get(DEV_USER_ENV)
        if dev_user:
            return _checked(dev_user, DEV)
        return Unidentified(f"dev mode is on but {DEV_USER_ENV} is not set")
    return Unidentified("the support console has no sign-in configured (st.login in secrets.toml, or "
                        f"{PROXY_SECRET_ENV} behind the auth proxy), so it trusts no one; "
                        f"{DEV_MODE_ENV}=1 is for a laptop", claimed)


def _signed_in(claims: Mapping[str, Any]) -> Identity | Unidentified:
    if claims.get("is_logged_in") is not True:
        return Unidentified("sign in with the company's identity provider", sign_in_required=True)
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        return Unidentified("the identity provider did not send an email claim (add the `email` scope)")
    if claims.get("email_verified") is False:
        return Unidentified("the identity provider says this email is not verified", _clip(email))
    return _checked(email, SIGN_IN)


def _checked(value: str, source: str) -> Identity | Unidentified:
    # ASCII first: a look-alike (the Kelvin sign lowers to "k") must not normalize onto someone's address.
    email = normalize_email(value) if value.isascii() else value
    if not value.isascii() or not EMAIL_SHAPE.fullmatch(email):
        return Unidentified("the identity is not an email address", _clip(value))
    return Identity(email, source)


def _clip(value: str | None, limit: int = 200) -> str | None:
    """What an unknown caller claimed, short enough to record without letting them flood the audit log."""
    return None if value is None else value[:limit]


# --- Streamlit ----------------------------------------------------------------------------------------------------

def oidc_provider(environ: Mapping[str, str] | None = None) -> str | None:
    """The ``[auth.<name>]`` provider to sign in with; None: the ``[auth]`` section itself."""
    return (os.environ if environ is None else environ).get(OIDC_PROVIDER_ENV) or None


def authlib_installed() -> bool:
    """``st.login`` needs Authlib (``streamlit[auth]``); without it the sign-in button would only raise."""
    return importlib.util.find_spec("authlib") is not None


def streamlit_sign_in() -> Mapping[str, Any] | None:
    """None when ``st.login`` is not configured (no ``[auth]`` in the secrets), else this browser's claims."""
    import streamlit as st

    if not st.secrets.load_if_toml_exists() or not st.secrets.get("auth"):
        return None
    return st.user.to_dict()


def from_streamlit() -> Identity | Unidentified:
    """The identity of the current Streamlit session (headers of the session's first request, or its sign-in)."""
    import streamlit as st

    return resolve(st.context.headers, sign_in=streamlit_sign_in())
