"""What every HTTP client of Pitwall (partner connectors, alert delivery) shares: which answers are worth
retrying, and a tenacity wait that honors the server's ``Retry-After``."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

import httpx
from tenacity.wait import wait_base

MAX_RETRY_AFTER = 60.0  # never sleep longer than this on a server's say-so


class RetryableStatus(Exception):
    """A 429 or 5xx answer: the request may succeed if tried again."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def is_retryable(response: httpx.Response) -> bool:
    return response.status_code == 429 or response.status_code >= 500


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), capped, or None."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


class wait_retry_after(wait_base):
    """Exponential backoff, but never less than the server's ``Retry-After`` on a 429."""

    def __init__(self, fallback: wait_base):
        self.fallback = fallback

    def __call__(self, retry_state) -> float:
        backoff = self.fallback(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, RetryableStatus) and exc.response.status_code == 429:
            seconds = retry_after_seconds(exc.response)
            if seconds is not None:
                return max(seconds, backoff)
        return backoff
