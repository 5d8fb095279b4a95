"""Send queued alert messages to the webhook (Slack-compatible incoming webhook; URL from the env var named
in rules.yaml). httpx posts; tenacity retries 429 (honoring Retry-After), 5xx, timeouts and transport
errors with exponential backoff. Every attempt is counted on the delivery row; a delivery that runs out of
attempts is marked failed, with the last status and error, and is tried again on the next run.

No connection to the alerts file is held while a request is in flight: each state change opens and closes
its own (``store.alert_store``), so a slow or failing webhook never keeps producers from recording alerts."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from pitwall.http import RetryableStatus, is_retryable, wait_retry_after

from .store import alert_store, config

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    configured: bool = True
    delivered: int = 0
    failed: int = 0
    attempts: int = 0
    delivered_ids: list[str] = field(default_factory=list)
    message: str = ""


def webhook_url() -> str:
    return os.environ.get(config()["delivery"]["url_env"], "").strip()


def deliver_pending(*, url: str | None = None, max_attempts: int | None = None, backoff_initial: float = 0.5,
                    backoff_max: float = 10.0, timeout: float | None = None) -> DeliveryReport:
    """Post every pending or failed delivery, oldest first."""
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

    def record(sql: str, params: list) -> None:
        with alert_store() as con:
            con.execute(sql, params)

    report = DeliveryReport()
    with httpx.Client(timeout=timeout, headers={"Content-Type": "application/json"}) as client:
        for delivery_id, payload in pending:
            outcome: dict = {"status_code": None, "error": None}

            def attempt() -> None:
                report.attempts += 1
                record("update alert_deliveries set attempts = attempts + 1, last_attempt_at = ? where delivery_id = ?",
                       [datetime.now(UTC), delivery_id])
                response = client.post(url, content=payload.encode())
                outcome["status_code"] = response.status_code
                if is_retryable(response):
                    outcome["error"] = f"HTTP {response.status_code}"
                    raise RetryableStatus(response)
                if response.status_code >= 300:  # a client error will not heal by retrying
                    outcome["error"] = f"HTTP {response.status_code}: {response.text[:200]}"
                    raise PermissionError(outcome["error"])

            retrying = Retrying(stop=stop_after_attempt(max_attempts),
                                wait=wait_retry_after(wait_exponential(multiplier=backoff_initial, max=backoff_max)),
                                retry=retry_if_exception_type((RetryableStatus, httpx.TransportError)), reraise=False)
            try:
                retrying(attempt)
            except (RetryError, PermissionError) as exc:
                last = exc.last_attempt.exception() if isinstance(exc, RetryError) else exc
                error = outcome["error"] or f"{type(last).__name__}: {last}"
                record("""update alert_deliveries set status = 'failed', last_status_code = ?, last_error = ?
                          where delivery_id = ?""", [outcome["status_code"], error, delivery_id])
                report.failed += 1
                log.warning("alerts: delivery %s failed (%s); it will be retried", delivery_id, error)
                continue
            record("""update alert_deliveries set status = 'delivered', last_status_code = ?, last_error = null,
                      delivered_at = ? where delivery_id = ?""",
                   [outcome["status_code"], datetime.now(UTC), delivery_id])
            report.delivered += 1
            report.delivered_ids.append(delivery_id)
    report.message = f"alerts: {report.delivered} delivered, {report.failed} failed, {report.attempts} attempt(s)"
    log.info(report.message)
    return report
