-- Each partner's SLAs per day (int_partner_sla_checks, one column group per SLA): the observed value, its
-- threshold and whether it was met; sla_met when no SLA was breached that day (an SLA with nothing to judge
-- is not a breach), breached_slas the names of those breached (comma-separated, sorted). Each SLA belongs to
-- one dataset of the partner (its contract's element). partner_contract_breaches is written from the
-- breaches here (orchestration/partners).

with

checks as (

    select * from {{ ref('int_partner_sla_checks') }}

),

final as (

    select
        partner,
        day,

        max(case when sla = 'volume' then observed end) as volume_records,
        max(case when sla = 'volume' then threshold_min end) as volume_expected_min,
        max(case when sla = 'volume' then threshold_max end) as volume_expected_max,
        bool_and(case when sla = 'volume' then is_ok end) as volume_ok,

        max(case when sla = 'freshness' then observed end) as freshness_observed,
        max(case when sla = 'freshness' then threshold_max end) as freshness_threshold,
        max(case when sla = 'freshness' then unit end) as freshness_unit,
        bool_and(case when sla = 'freshness' then is_ok end) as freshness_ok,

        max(case when sla = 'latency' then observed end) as latency_observed,
        max(case when sla = 'latency' then threshold_max end) as latency_threshold,
        max(case when sla = 'latency' then unit end) as latency_unit,
        bool_and(case when sla = 'latency' then is_ok end) as latency_ok,

        max(case when sla = 'generalAvailability' then observed end) as availability_observed,
        max(case when sla = 'generalAvailability' then threshold_min end) as availability_threshold,
        bool_and(case when sla = 'generalAvailability' then is_ok end) as availability_ok,

        max(case when sla = 'timeOfAvailability' then observed end) as time_of_availability_hours,
        max(case when sla = 'timeOfAvailability' then threshold_max end) as time_of_availability_threshold_hours,
        bool_and(case when sla = 'timeOfAvailability' then is_ok end) as time_of_availability_ok,

        max(case when sla = 'frequency' then observed end) as syncs,

        count(case when is_ok is not null then 1 end) as slas_judged,
        count(case when not is_ok then 1 end) as slas_breached,
        count(case when not is_ok then 1 end) = 0 as sla_met,
        {{ dbt.listagg("case when not is_ok then sla end", "','", "order by sla") }} as breached_slas

    from checks
    group by partner, day

)

select * from final
