-- API latency as the apps experience it. Grain: day × route × method × app_version × platform, over the
-- requests of fct_api_requests (the apps' CLIENT spans; server time from their SERVER child span).

with

requests as (

    select * from {{ ref('fct_api_requests') }}

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
    avg(overhead_ms) as mean_overhead_ms
from requests
group by all
