-- One row per partner, dataset, day and SLA: the observed value in the SLA's unit, its threshold and
-- whether it was met (null when there is nothing to judge that day). The SLAs are the contracts'
-- slaProperties (partner_contract_slas) plus the volumePerDay expectation (partner_contract_datasets):
--   volume              records within [expected_min, expected_max] (int_partner_dataset_daily)
--   freshness           p95 lag ≤ value (h or min)
--   latency             ms: p95 API latency ≤ value; min: p95 delivery lag (webhooks) ≤ value
--   generalAvailability share of API calls not failed (429, 5xx, timeout) ≥ value
--   timeOfAvailability  the day's delivery available by value_text (HH:MM UTC) of the next day (none: breached)
--   frequency           syncs that day (observed only: the cadence is the schedule's to keep, not judged)

with

daily as (

    select * from {{ ref('int_partner_dataset_daily') }}

),

slas as (

    select * from {{ source('partners', 'partner_contract_slas') }}

),

volume as (

    select
        partner,
        dataset,
        day,
        'volume' as sla,
        cast(records as double) as observed,
        expected_min_records as threshold_min,
        expected_max_records as threshold_max,
        'records' as unit,
        case when expected_min_records is not null
            then records >= expected_min_records and records <= expected_max_records end as is_ok
    from daily
    where volume_min_ratio is not null or volume_max_ratio is not null

),

contract_slas as (

    select
        daily.partner,
        daily.dataset,
        daily.day,
        slas.property as sla,
        case
            when slas.property in ('freshness', 'latency') and slas.unit = 'h' then daily.freshness_lag_p95_seconds / 3600.0
            when slas.property in ('freshness', 'latency') and slas.unit = 'min' then daily.freshness_lag_p95_seconds / 60.0
            when slas.property in ('freshness', 'latency') and slas.unit = 's' then daily.freshness_lag_p95_seconds
            when slas.property = 'latency' and slas.unit = 'ms' then daily.api_latency_p95_ms
            when slas.property = 'generalAvailability' then daily.api_availability
            when slas.property = 'timeOfAvailability'
                then {{ epoch_seconds_between('cast(' ~ dbt.dateadd('day', 1, 'daily.day') ~ ' as timestamptz)', 'daily.first_available_at') }} / 3600.0
            when slas.property = 'frequency' then cast(daily.syncs as double)
        end as observed,
        case when slas.property = 'generalAvailability' then slas.value end as threshold_min,
        case
            when slas.property = 'timeOfAvailability'
                then cast(split_part(slas.value_text, ':', 1) as double) + cast(split_part(slas.value_text, ':', 2) as double) / 60.0
            when slas.property in ('freshness', 'latency') then slas.value
        end as threshold_max,
        case when slas.property = 'timeOfAvailability' then 'h after midnight UTC' else slas.unit end as unit
    from daily
    inner join slas on daily.partner = slas.partner and daily.dataset = slas.dataset

),

judged as (

    select
        partner,
        dataset,
        day,
        sla,
        observed,
        threshold_min,
        threshold_max,
        unit,
        case
            when sla = 'frequency' then null
            -- a day of the dataset's deliveries with no delivery at all is late, not unjudged
            when sla = 'timeOfAvailability' and observed is null then false
            when observed is null then null
            when threshold_min is not null then observed >= threshold_min
            when threshold_max is not null then observed <= threshold_max
        end as is_ok
    from contract_slas

),

final as (

    select * from volume
    union all
    select * from judged

)

select * from final
