-- API latency as the apps experience it. Grain: day × route × method × app_version × platform, over the
-- requests of fct_api_requests (the apps' CLIENT spans; server time from their SERVER child span).

{{ config(**incremental_by_day('day', 'last_arrival_dt')) }}

-- Incremental by day (macros/engine/incremental.sql): a run re-aggregates the days of the requests that
-- arrived since the previous run.

with
{% if is_incremental() %}
rebuild as (

    select min(day) as from_day
    from {{ ref('fct_api_requests') }}
    where dt >= {{ incremental_floor('last_arrival_dt') }}

),
{% endif %}
requests as (

    select * from {{ ref('fct_api_requests') }}
    {%- if is_incremental() %}
    where day >= (select from_day from rebuild)
    {%- endif %}

)

select
    day,
    route,
    method,
    app_version,
    platform,
    cast(count(*) as bigint) as requests,
    cast(count_if(is_error) as bigint) as errors,
    count_if(is_error) / count(*) as error_rate,
    {{ percentile('duration_ms', 0.5) }} as p50_ms,
    {{ percentile('duration_ms', 0.9) }} as p90_ms,
    {{ percentile('duration_ms', 0.95) }} as p95_ms,
    {{ percentile('duration_ms', 0.99) }} as p99_ms,
    cast(count(server_ms) as bigint) as requests_with_server_span,
    avg(case when server_ms is not null then duration_ms end) as mean_client_ms_with_server_span,
    avg(server_ms) as mean_server_ms,
    -- network + device: what the client waited beyond the server's own time
    avg(overhead_ms) as mean_overhead_ms,
    max(dt) as last_arrival_dt
from requests
group by all
