"""What every HTTP client of Pitwall (partner connectors, alert delivery) shares: which answers are worth
retrying, a tenacity wait that honors the server's ``Retry-After``, and reading a streamed body without
letting the server choose how much memory it takes."""

from __future__ import annotations

import email.utils
import math
from datetime import UTC, datetime

import httpx
from tenacity.wait import wait_base

MAX_RETRY_AFTER = 60.0  # never sleep longer than this on a server's say-so


class RetryableStatus(Exception):
    """A 429 or 5xx answer: the request may succeed if tried again."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class ResponseTooLarge(Exception):
    """A body larger than the caller's cap; ``head`` is its start, for the record."""

    def __init__(self, max_bytes: int, received: int, head: bytes, *, declared: bool = False):
        how = "declares" if declared else "sent more than"
        super().__init__(f"the response {how} {received} bytes; the cap is {max_bytes}")
        self.max_bytes, self.received, self.head, self.declared = max_bytes, received, head, declared


def is_retryable(response: httpx.Response) -> bool:
    return response.status_code == 429 or response.status_code >= 500


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), capped to [0, MAX_RETRY_AFTER], or None
    when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 5322's "-0000" zone: a UTC time whose source zone is unknown
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds):
        return None
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


HEAD_BYTES = 4096  # of a refused body, what is kept to show what it was


def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """The body of a streamed response (``client.stream(...)``), refused with ResponseTooLarge as soon as it
    declares or passes ``max_bytes``: at most ``max_bytes`` plus one network chunk is ever held."""
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(max_bytes, int(declared), b"", declared=True)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            head = b"".join(chunks)[:HEAD_BYTES] if chunks else chunk[:HEAD_BYTES]
            raise ResponseTooLarge(max_bytes, size, head)
        chunks.append(chunk)
    return b"".join(chunks)


def read_head(response: httpx.Response, max_bytes: int = HEAD_BYTES) -> bytes:
    """At most the first ``max_bytes`` of a streamed response's body (an error page, a webhook's answer)."""
    head = b""
    for chunk in response.iter_bytes():
        head += chunk
        if len(head) >= max_bytes:
            break
    return head[:max_bytes]
