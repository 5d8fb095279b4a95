-- One row per API request the apps made: the apps' CLIENT spans with an http.route template. Where the
-- request reached our backend, its SERVER child span gives the server's share; the rest of the client's
-- time is network and device overhead. The one definition of a request: mart_api_latency_daily and the
-- dashboards' exact percentiles over any filter both read this table.

{{ config(**incremental_by_day('dt')) }}

-- Incremental by the client span's arrival day (macros/engine/incremental.sql), reading server spans from
-- the day before too (a server span may land a day before its client's).

with

spans as (

    select trace_id, span_id, parent_span_id, kind, http_route, http_method, http_status_code, app_version,
           platform, session_id, started_at, duration_ms, is_error, dt
    from {{ ref('stg_spans') }}
    {%- if is_incremental() %}
    where dt >= {{ dbt.dateadd('day', -1, incremental_floor('dt')) }}
    {%- endif %}

),

requests as (

    select * from spans
    where kind = 'client' and http_route is not null
    {%- if is_incremental() %}
        and dt >= {{ incremental_floor('dt') }}
    {%- endif %}

),

server_children as (

    -- a retried request can have several server children: take the longest
    select trace_id, parent_span_id as client_span_id, max(duration_ms) as server_ms
    from spans
    where kind = 'server' and parent_span_id is not null
    group by all

)

select
    requests.trace_id,
    requests.span_id,
    cast(requests.started_at as date) as day,
    requests.started_at,
    requests.http_route as route,
    requests.http_method as method,
    requests.http_status_code as status_code,
    requests.app_version,
    requests.platform,
    requests.session_id,
    requests.duration_ms,
    requests.is_error,
    server_children.server_ms,
    requests.duration_ms - server_children.server_ms as overhead_ms,
    requests.dt
from requests
left join server_children
    on server_children.trace_id = requests.trace_id
    and server_children.client_span_id = requests.span_id
