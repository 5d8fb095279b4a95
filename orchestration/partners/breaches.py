"""SLA breaches: after dbt has judged each partner dataset's SLAs per day (``int_partner_sla_checks``, the long form
of ``mart_partner_sla_daily``), every SLA not met becomes a row of ``partner_contract_breaches`` (one per partner,
dataset, SLA and day; a later run updates observed and last_detected_at) and a new one raises an alert.

Schema breaches are written at load time by ``loading.load_batch``; both share the table and the breach_id
(``loading.breach_id``: md5 of partner|dataset|breach_kind|rule|day).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from orchestration.alerts import resolve_alert

from . import loading

log = logging.getLogger(__name__)

SLA_CHECKS = "int_partner_sla_checks"
ALERT_RULE = "partner_sla_breach"  # orchestration/alerts/rules.yaml
# The contract's SLA (int_partner_sla_checks.sla) -> breach_kind; frequency is observed, not judged.
BREACH_KIND = {"volume": "volume", "freshness": "freshness", "latency": "latency",
               "generalAvailability": "availability", "timeOfAvailability": "delivery"}


def record_sla_breaches(con) -> tuple[int, list[str]]:
    """Upsert the breaches of every SLA check not met; returns (breaches seen, alert ids fired for new ones)."""
    loading.ensure_tables(con, [])
    now = datetime.now(UTC)
    kinds = " ".join(f"when '{sla}' then '{kind}'" for sla, kind in BREACH_KIND.items())
    con.execute("begin transaction")
    try:
        con.execute(f"""
            create or replace temp table sla_breaches as
            with failed as (
                select partner, dataset, day, sla as rule, case sla {kinds} end as breach_kind, observed::double as
                       observed, unit,
                       -- the bound that was crossed: a volume or availability below its minimum, else the maximum
                       case when threshold_min is not null and observed < threshold_min then threshold_min
                            else threshold_max end::double as threshold
                from {SLA_CHECKS}
                where is_ok = false and sla in ({", ".join(f"'{s}'" for s in BREACH_KIND)})
            )
            select md5(concat_ws('|', partner, dataset, breach_kind, rule, strftime(day, '%Y-%m-%d'))) as breach_id,
                   partner, dataset, breach_kind, rule, day::date as day, observed, threshold,
                   case when rule = 'volume' then observed::bigint end as records,
                   format('{{}} {{}} {{}} against {{}} ({{}})', rule, round(observed, 3), unit, round(threshold, 3),
                          'contract SLA') as detail
            from failed""")
        new = con.execute(f"""
            select breach_id, partner, dataset, rule, day, observed, threshold, detail from sla_breaches
            where breach_id not in (select breach_id from {loading.BREACHES_TABLE})""").fetchall()
        con.execute(f"""
            insert into {loading.BREACHES_TABLE}
            select breach_id, partner, dataset, breach_kind, rule, day, observed, threshold, records, detail, ?, ?
            from sla_breaches
            on conflict (breach_id) do update set observed = excluded.observed, threshold = excluded.threshold,
                records = excluded.records, detail = excluded.detail, last_detected_at = excluded.last_detected_at""",
                    [now, now])
        seen = con.execute("select count(*) from sla_breaches").fetchall()[0][0]
        con.execute("drop table sla_breaches")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    alerts = [{
        "rule": ALERT_RULE, "subject": f"{partner}/{dataset}/{rule}",
        "summary": f"{partner} {dataset} missed its {rule} SLA on {day}: {detail}",
        "severity": "warning", "value": observed, "threshold": threshold,
        "details": {"breach_id": breach, "partner": partner, "dataset": dataset, "sla": rule, "day": day.isoformat()},
        **loading.day_window(day),
    } for breach, partner, dataset, rule, day, observed, threshold, detail in new]
    fired = loading.raise_breach_alerts(alerts) if alerts else []
    resolved = resolve_recovered(con)
    log.info("partner SLAs: %d breach(es), %d new, %d alert(s), %d resolved", seen, len(new), len(fired), len(resolved))
    return seen, fired


def resolve_recovered(con) -> list[str]:
    """Resolve the alert of every SLA whose latest judged day met it again (a resolve message goes out)."""
    recovered = con.execute(f"""
        select partner, dataset, sla, max(day) as day from {SLA_CHECKS}
        where is_ok is not null and sla in ({", ".join(f"'{s}'" for s in BREACH_KIND)})
        group by all having arg_max(is_ok, day)""").fetchall()
    resolved = []
    for partner, dataset, sla, day in recovered:
        alert_id = resolve_alert(rule=ALERT_RULE, subject=f"{partner}/{dataset}/{sla}",
                                 summary=f"{partner} {dataset} met its {sla} SLA again on {day}")
        if alert_id:
            resolved.append(alert_id)
    return resolved
