"""One alert path for every producer: ``raise_alert`` / ``resolve_alert`` write alerts and their outbox
messages; ``deliver_pending`` sends them to the Slack-compatible webhook."""

from .delivery import DeliveryReport, deliver_pending, webhook_url
from .store import ensure_tables, raise_alert, resolve_alert, rule_config

__all__ = ["DeliveryReport", "deliver_pending", "ensure_tables", "raise_alert", "resolve_alert", "rule_config",
           "webhook_url"]
