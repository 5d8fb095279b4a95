{#- Every partner record table: its candidate volume date fields (the contract's volumeDateField picks one,
    per partner_contract_datasets), the field whose day a record's freshness counts toward and its lag,
    and when a record became available to us. Partner and dataset come from the contract by table name. -#}
{%- set record_tables = [
    {'table': 'partner_oem_service_orders', 'date_fields': ['created_at', 'updated_at', 'loaded_at'],
     'lag_from': 'updated_at', 'lag_to': 'loaded_at', 'available_at': 'loaded_at'},
    {'table': 'partner_oem_recall_campaigns', 'date_fields': ['published_at', 'updated_at', 'loaded_at'],
     'lag_from': 'updated_at', 'lag_to': 'loaded_at', 'available_at': 'loaded_at'},
    {'table': 'partner_warranty_claims', 'date_fields': ['delivery_date', 'updated_at', 'exported_at', 'loaded_at'],
     'lag_from': 'updated_at', 'lag_to': 'exported_at', 'available_at': 'exported_at'},
    {'table': 'partner_warranty_claim_status', 'date_fields': ['updated_at', 'loaded_at'],
     'lag_from': 'updated_at', 'lag_to': 'loaded_at', 'available_at': 'loaded_at'},
    {'table': 'partner_roadside_dispatch_events', 'date_fields': ['received_at', 'occurred_at', 'loaded_at'],
     'lag_from': 'occurred_at', 'lag_to': 'received_at', 'available_at': 'received_at'},
] -%}

-- Delivery of each partner dataset per day, what its SLAs are judged on (mart_partner_sla_daily):
--   records     landed records (every version) whose contract volumeDateField falls on the day, with the
--               expected range min/max ratio × the median of the 7 days before (null until the contract's
--               minHistoryDays of history), widened when the contract gives a significance to the Poisson
--               quantiles of that median: a small count is not a breach by chance (8 a day on average, 3 or fewer
--               4% of days); every day from the dataset's first record to its last counts
--               (0 included), and so does a day with API calls only; a day is judged once the data has
--               moved past it (the end of the data, data_end_at, is on a later day)
--   freshness   p95 lag of the records whose own time (updated_at; roadside occurred_at) falls on the day:
--               oem and claim status loaded_at − updated_at, warranty files exported_at − updated_at,
--               roadside received_at − occurred_at; records updated before a pulled dataset's first load
--               are its backfill and not judged (they waited for the connector, not for the partner)
--   API calls   calls, failures, error rate and p95 latency by requested_at day (partner_api_calls)
-- Records are read as landed (every version) from the sources: volume and freshness are about deliveries,
-- not about the latest state.

with

contract as (

    select * from {{ source('partners', 'partner_contract_datasets') }}

),

record_days as (

    {% for t in record_tables %}
    {% for field in t.date_fields %}
    select
        '{{ t.table }}' as physical_name,
        '{{ field }}' as date_field,
        cast({{ field }} as date) as day,
        {{ t.available_at }} as available_at
    from {{ source('partners', t.table) }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

volume as (

    -- records per volume day, and when the first of them became available (a file's export time,
    -- otherwise the load or receipt): what the warranty file's timeOfAvailability is judged on
    select
        contract.partner,
        contract.dataset,
        record_days.day,
        count(*) as records,
        min(record_days.available_at) as first_available_at
    from record_days
    inner join contract
        on record_days.physical_name = contract.physical_name
        and record_days.date_field = contract.volume_date_field
    group by contract.partner, contract.dataset, record_days.day

),

lags as (

    {% for t in record_tables %}
    select
        '{{ t.table }}' as physical_name,
        cast({{ t.lag_from }} as date) as day,
        {{ epoch_seconds_between(t.lag_from, t.lag_to) }} as lag_seconds
    from {{ source('partners', t.table) }}
    {% if t.lag_to == 'loaded_at' %}
    -- what a connector's first sync backfills was waiting for the connector, not late from the partner
    where {{ t.lag_from }} >= (select min(loaded_at) from {{ source('partners', t.table) }})
    {% endif %}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

freshness as (

    select
        contract.partner,
        contract.dataset,
        lags.day,
        count(*) as freshness_records,
        {{ percentile('lags.lag_seconds', 0.95) }} as freshness_lag_p95_seconds
    from lags
    inner join contract on lags.physical_name = contract.physical_name
    group by contract.partner, contract.dataset, lags.day

),

api_calls as (

    select
        partner,
        dataset,
        cast(requested_at as date) as day,
        count(*) as api_calls,
        count(case when outcome in ('rate_limited', 'server_error', 'timeout') then 1 end) as api_calls_failed,
        count(case when outcome <> 'ok' then 1 end) as api_calls_not_ok,
        count(distinct sync_id) as syncs,
        {{ percentile('latency_ms', 0.95) }} as api_latency_p95_ms
    from {{ source('partners', 'partner_api_calls') }}
    group by partner, dataset, cast(requested_at as date)

),

record_day_range as (

    select partner, dataset, min(day) as first_day, max(day) as last_day
    from (
        select partner, dataset, day from volume
        union all
        select partner, dataset, day from freshness
    ) as record_days_of_datasets
    group by partner, dataset

),

spine as (

    -- every day between a dataset's first and last record (a day without records counts 0), and the
    -- days with API calls (a sync runs on the clock, not on the data's days)
    select partner, dataset, {{ days_from_to('first_day', 'last_day') }} as day, true as in_record_range
    from record_day_range
    union all
    select api_calls.partner, api_calls.dataset, api_calls.day, false as in_record_range
    from api_calls
    left join record_day_range
        on api_calls.partner = record_day_range.partner and api_calls.dataset = record_day_range.dataset
    where record_day_range.first_day is null
       or api_calls.day not between record_day_range.first_day and record_day_range.last_day

),

daily as (

    select
        spine.partner,
        spine.dataset,
        spine.day,
        spine.in_record_range,
        -- the data has moved past the day (the end of the data is on a later day): its volume is final
        spine.day < cast({{ data_end_at() }} as date) as is_complete_day,
        contract.volume_date_field,
        contract.volume_min_ratio,
        contract.volume_max_ratio,
        contract.volume_min_history_days,
        contract.volume_significance,
        coalesce(volume.records, 0) as records,
        freshness.freshness_records,
        freshness.freshness_lag_p95_seconds,
        volume.first_available_at,
        coalesce(api_calls.api_calls, 0) as api_calls,
        coalesce(api_calls.api_calls_failed, 0) as api_calls_failed,
        coalesce(api_calls.api_calls_not_ok, 0) as api_calls_not_ok,
        coalesce(api_calls.syncs, 0) as syncs,
        api_calls.api_latency_p95_ms
    from spine
    inner join contract on spine.partner = contract.partner and spine.dataset = contract.dataset
    left join volume
        on spine.partner = volume.partner and spine.dataset = volume.dataset and spine.day = volume.day
    left join freshness
        on spine.partner = freshness.partner and spine.dataset = freshness.dataset and spine.day = freshness.day
    left join api_calls
        on spine.partner = api_calls.partner and spine.dataset = api_calls.dataset and spine.day = api_calls.day

),

with_history as (

    select
        *,
        count(*) over trailing_week as history_days,
        {{ percentile('records', 0.5) }} over trailing_week as trailing_median_records
    from daily
    -- the trailing week of the days with records (an API-only day outside them has no volume expectation)
    window trailing_week as (
        partition by partner, dataset, in_record_range order by day rows between 7 preceding and 1 preceding
    )

),

judged as (

    select
        *,
        in_record_range and is_complete_day and history_days >= volume_min_history_days as is_judged
    from with_history

),

final as (

    select
        partner,
        dataset,
        day,
        in_record_range,
        is_complete_day,
        volume_date_field,
        volume_min_ratio,
        volume_max_ratio,
        volume_min_history_days,
        volume_significance,
        records,
        history_days,
        cast(trailing_median_records as double) as trailing_median_records,
        case when is_judged then least(
            volume_min_ratio * trailing_median_records,
            coalesce({{ poisson_quantile('trailing_median_records', 'volume_significance') }}, cast('infinity' as double))
        ) end as expected_min_records,
        case when is_judged then greatest(
            volume_max_ratio * trailing_median_records,
            coalesce({{ poisson_quantile('trailing_median_records', '1 - volume_significance') }}, 0)
        ) end as expected_max_records,
        freshness_records,
        freshness_lag_p95_seconds,
        first_available_at,
        api_calls,
        api_calls_failed,
        api_calls_not_ok,
        syncs,
        case when api_calls > 0 then 1.0 - api_calls_failed / api_calls end as api_availability,
        case when api_calls > 0 then api_calls_not_ok / api_calls end as api_error_rate,
        api_latency_p95_ms
    from judged

)

select * from final
