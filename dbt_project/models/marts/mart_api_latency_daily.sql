-- API latency as the apps experience it. Grain: day × route × method × app_version × platform, over
-- the apps' CLIENT spans (one per request). Where the request reached our backend, its SERVER child
-- span gives the server's share; the rest of the client's time is network and device overhead.

with

spans as (

    select trace_id, span_id, parent_span_id, kind, http_route, http_method, app_version, platform,
           started_at, duration_ms, is_error
    from {{ ref('stg_spans') }}

),

requests as (

    select * from spans
    where kind = 'client' and http_route is not null

),

server_children as (

    -- a retried request can have several server children: take the longest
    select trace_id, parent_span_id as client_span_id, max(duration_ms) as server_ms
    from spans
    where kind = 'server' and parent_span_id is not null
    group by all

),

joined as (

    select
        cast(requests.started_at as date) as day,
        requests.http_route as route,
        requests.http_method as method,
        requests.app_version,
        requests.platform,
        requests.duration_ms,
        requests.is_error,
        server_children.server_ms
    from requests
    left join server_children
        on server_children.trace_id = requests.trace_id
        and server_children.client_span_id = requests.span_id

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
    avg(duration_ms - server_ms) as mean_overhead_ms
from joined
group by all
