"""One alert path for every producer: ``raise_alert`` / ``resolve_alert`` write alerts and their outbox
messages to the alerts file (``pitwall.paths.alerts_path()``); ``deliver_pending`` sends them to the
Slack-compatible webhook; ``crashes.evaluate_crash_rules`` turns the crash rules of rules.yaml into alerts."""

from .delivery import DeliveryReport, deliver_pending, webhook_url
from .store import (
                    alert_store,
                    ensure_tables,
                    open_alerts,
                    raise_alert,
                    raise_alert_in,
                    resolve_alert,
                    resolve_alert_in,
                    rule_config,
)

__all__ = ["DeliveryReport", "alert_store", "deliver_pending", "ensure_tables", "open_alerts", "raise_alert",
           "raise_alert_in", "resolve_alert", "resolve_alert_in", "rule_config", "webhook_url"]
