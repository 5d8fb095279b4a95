"""Send queued alert messages to the webhook (Slack-compatible incoming webhook; URL from the env var named
in rules.yaml). httpx posts; tenacity retries 429 (honoring Retry-After), 5xx, timeouts and transport
errors with exponential backoff. Every attempt is counted on the delivery row; a delivery that runs out of
attempts is marked failed, with the last status and error, and is tried again on the next run.

Delivery is at least once. A POST whose answer never came (a receiver slower than the timeout, a dropped
connection) may have been accepted, and is sent again: every copy carries the delivery's id as its
idempotency key, in the ``Idempotency-Key`` header and in the body (``pitwall.idempotency_key``), so the
receiver keeps the first and drops the rest. Two senders never post the same delivery at once: a sender
claims a delivery (status ``sending``, with a token and a deadline) before its first POST; a sender killed
mid-delivery leaves a claim that expires, and the delivery is then sent again, under the same key.

No connection to the alerts file is held while a request is in flight: each state change opens and closes
its own (``store.alert_store``), so a slow or failing webhook never keeps producers from recording alerts."""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import httpx
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from pitwall.http import MAX_RETRY_AFTER, RetryableStatus, is_retryable, read_head, wait_retry_after

from .store import alert_store, config

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass
class DeliveryReport:
    configured: bool = True
    delivered: int = 0
    failed: int = 0
    attempts: int = 0
    claimed_elsewhere: int = 0  # deliveries another sender holds a live claim on: left to it
    delivered_ids: list[str] = field(default_factory=list)
    message: str = ""


def webhook_url_env() -> str:
    """The environment variable that names the alert webhook (rules.yaml ``delivery.url_env``)."""
    return config()["delivery"]["url_env"]


def webhook_url() -> str:
    return os.environ.get(webhook_url_env(), "").strip()


def _record(sql: str, params: list) -> list[tuple]:
    with alert_store() as con:
        return con.execute(sql, params).fetchall()


def _claim(delivery_id: str, token: str, lease: timedelta) -> bool:
    """Take the delivery for this sender, unless another holds a claim that has not expired."""
    now = datetime.now(UTC)
    try:
        return bool(_record("""update alert_deliveries set status = 'sending', claim_token = ?, claimed_until = ?
                               where delivery_id = ? and (status in ('pending', 'failed')
                                     or (status = 'sending' and (claimed_until is null or claimed_until < ?)))
                               returning delivery_id""", [token, now + lease, delivery_id, now]))
    except duckdb.TransactionException:  # another connection of this process claimed it in the same instant
        return False


def _body(payload: str, delivery_id: str) -> bytes:
    """The stored message with its idempotency key (queued before the key was written into it: added)."""
    message = json.loads(payload)
    meta = message.setdefault("pitwall", {})
    if meta.get("idempotency_key") == delivery_id:
        return payload.encode()
    meta["idempotency_key"] = delivery_id
    return json.dumps(message, sort_keys=True).encode()


def _post(client: httpx.Client, url: str, body: bytes, key: str) -> tuple[httpx.Response, str]:
    """POST; the answer (status, headers) and at most the first HEAD_BYTES of its body: a receiver cannot make
    the sender hold a body of its choosing."""
    with client.stream("POST", url, content=body, headers={IDEMPOTENCY_HEADER: key}) as response:
        return response, read_head(response).decode("utf-8", "replace")


def deliver_pending(*, url: str | None = None, max_attempts: int | None = None, backoff_initial: float = 0.5,
                    backoff_max: float = 10.0, timeout: float | None = None) -> DeliveryReport:
    """Post every pending or failed delivery (and every expired claim), oldest first."""
    spec = config()["delivery"]
    url = url if url is not None else webhook_url()
    with alert_store() as con:
        pending = con.execute("""select delivery_id, payload from alert_deliveries where status <> 'delivered'
                                 order by created_at, delivery_id""").fetchall()
    if not url:
        message = f"alerts: {spec['url_env']} is not set; {len(pending)} delivery(ies) wait in alert_deliveries"
        log.info(message)
        return DeliveryReport(configured=False, message=message)
    max_attempts = max_attempts or int(spec["max_attempts"])
    timeout = timeout or float(spec["timeout_seconds"])
    # Longer than this sender can spend on one delivery (every attempt timing out after the longest wait), so
    # a live sender never loses its claim; a dead one's claim frees the delivery after it.
    lease = timedelta(seconds=max_attempts * (timeout + max(backoff_max, MAX_RETRY_AFTER)))
    token = uuid.uuid4().hex

    report = DeliveryReport()
    with httpx.Client(timeout=timeout, headers={"Content-Type": "application/json"}) as client:
        for delivery_id, payload in pending:
            if not _claim(delivery_id, token, lease):
                report.claimed_elsewhere += 1
                continue
            outcome: dict = {"status_code": None, "error": None}

            def attempt() -> None:
                report.attempts += 1
                _record("""update alert_deliveries set attempts = attempts + 1, last_attempt_at = ?
                           where delivery_id = ? and claim_token = ?""", [datetime.now(UTC), delivery_id, token])
                response, answer = _post(client, url, body, delivery_id)
                outcome["status_code"] = response.status_code
                if is_retryable(response):
                    outcome["error"] = f"HTTP {response.status_code}"
                    raise RetryableStatus(response)
                if response.status_code >= 300:  # a client error will not heal by retrying
                    outcome["error"] = f"HTTP {response.status_code}: {answer[:200]}"
                    raise PermissionError(outcome["error"])

            retrying = Retrying(stop=stop_after_attempt(max_attempts),
                                wait=wait_retry_after(wait_exponential(multiplier=backoff_initial, max=backoff_max)),
                                retry=retry_if_exception_type((RetryableStatus, httpx.TransportError)), reraise=False)
            try:
                body = _body(payload, delivery_id)
                retrying(attempt)
            except Exception as exc:  # noqa: BLE001 - one delivery's failure, whatever it is, never stops the others
                last = exc.last_attempt.exception() if isinstance(exc, RetryError) else exc
                error = outcome["error"] or f"{type(last).__name__}: {last}"
                _record("""update alert_deliveries set status = 'failed', last_status_code = ?, last_error = ?,
                               claim_token = null, claimed_until = null
                           where delivery_id = ? and claim_token = ?""",
                        [outcome["status_code"], error[:1000], delivery_id, token])
                report.failed += 1
                log.warning("alerts: delivery %s failed (%s); it will be retried", delivery_id, error)
                continue
            _record("""update alert_deliveries set status = 'delivered', last_status_code = ?, last_error = null,
                           delivered_at = ?, claim_token = null, claimed_until = null
                       where delivery_id = ? and claim_token = ?""",
                    [outcome["status_code"], datetime.now(UTC), delivery_id, token])
            report.delivered += 1
            report.delivered_ids.append(delivery_id)
    report.message = (f"alerts: {report.delivered} delivered, {report.failed} failed, {report.attempts} attempt(s)"
                      + (f", {report.claimed_elsewhere} held by another sender" if report.claimed_elsewhere else ""))
    log.info(report.message)
    return report
