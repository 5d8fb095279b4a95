{{ config(**incremental_by_day('dt')) }}

-- Incremental by arrival day (macros/engine/incremental.sql): a run rebuilds the arrival partitions
-- from the latest one it already holds.

with

source as (

    select * from {{ source('raw', 'spans') }}
    {%- if is_incremental() %}
    where dt >= {{ incremental_floor('dt') }}
    {%- endif %}

),

renamed as (

    select
        ----------  ids
        trace_id,
        span_id,
        parent_span_id,
        coalesce(
            {{ json_str('resource_attributes', 'session.id') }},
            {{ json_str('attributes', 'session.id') }}
        ) as session_id,
        {{ json_str('resource_attributes', 'device.id') }} as device_id,

        ----------  attributes
        {{ json_str('resource_attributes', 'service.name') }} as service_name,
        {{ json_str('resource_attributes', 'service.version') }} as service_version,
        {{ json_str('resource_attributes', 'deployment.environment.name') }} as deployment_environment,
        {{ json_str('resource_attributes', 'os.name') }} as os_name,
        {{ json_str('resource_attributes', 'os.version') }} as os_version,
        {{ json_str('resource_attributes', 'device.model.identifier') }} as device_model,
        span_name,
        kind as kind_code,
        status_code as status_code_number,
        status_message,
        -- current semantic conventions first, then the legacy names older SDKs still send
        coalesce(
            {{ json_str('attributes', 'http.request.method') }},
            {{ json_str('attributes', 'http.method') }}
        ) as http_method,
        {{ json_str('attributes', 'http.route') }} as http_route_attribute,
        {{ json_str('attributes', 'url.template') }} as url_template,
        coalesce({{ json_str('attributes', 'url.full') }}, {{ json_str('attributes', 'http.url') }}) as url_full,
        {{ json_str('attributes', 'url.path') }} as url_path,
        coalesce({{ json_str('attributes', 'server.address') }}, {{ json_str('attributes', 'net.peer.name') }}) as server_address,
        coalesce({{ json_str('attributes', 'db.system.name') }}, {{ json_str('attributes', 'db.system') }}) as db_system,
        {{ json_str('attributes', 'db.operation.name') }} as db_operation,
        scope_name,
        scope_version,
        attributes,
        resource_attributes,

        ----------  numerics
        try_cast(coalesce(
            {{ json_str('attributes', 'http.response.status_code') }},
            {{ json_str('attributes', 'http.status_code') }}
        ) as integer) as http_status_code,
        duration_ms,
        cast(event_count as bigint) as event_count,

        ----------  timestamps
        started_at,
        {{ timestamp_from_epoch_nanos('end_time_unix_nano') }} as ended_at,
        start_time_unix_nano,
        end_time_unix_nano,

        ----------  load metadata
        _record_index as record_index,
        {{ load_metadata_columns() }}

    from source

),

deduplicated as (

    -- an exporter retry delivers the same span again: keep its first delivery
    select * from renamed
    qualify row_number() over (
        partition by trace_id, span_id
        order by dt, landing_path, line_no, record_index
    ) = 1

),

new_spans as (

    select * from deduplicated
    {%- if is_incremental() %}
    -- a retry delivered on a later day than its first delivery, which an earlier run kept
    where not exists (
        select 1 from {{ this }} as kept
        where kept.trace_id = deduplicated.trace_id
            and kept.span_id = deduplicated.span_id
            and kept.dt < {{ incremental_floor('dt') }}
    )
    {%- endif %}

),

server_routes as (

    -- the route the server matched for a request, keyed by the client span that made it
    select
        trace_id,
        parent_span_id as client_span_id,
        min(http_route_attribute) as server_route
    from new_spans
    where kind_code = 2
        and parent_span_id is not null
        and http_route_attribute is not null
    group by trace_id, parent_span_id

),

derived as (

    select
        spans.*,
        case spans.kind_code
            when 1 then 'internal'
            when 2 then 'server'
            when 3 then 'client'
            when 4 then 'producer'
            when 5 then 'consumer'
            else 'unspecified'
        end as kind,
        case spans.status_code_number
            when 1 then 'ok'
            when 2 then 'error'
            else 'unset'
        end as status_code,
        -- OpenTelemetry: http.route is a server attribute; a mobile client span may carry it, or
        -- url.template (opt-in), or its server child knows it; failing all, template the URL path.
        coalesce(
            spans.http_route_attribute,
            spans.url_template,
            server_routes.server_route,
            {{ url_path_template("coalesce(" ~ url_path('spans.url_full') ~ ", spans.url_path)") }}
        ) as http_route,
        -- app version and platform exist only for mobile resources (those that report an OS)
        case when spans.os_name is not null then spans.service_version end as app_version,
        {{ platform_from_os('spans.os_name') }} as platform
    from new_spans as spans
    left join server_routes
        on spans.trace_id = server_routes.trace_id
        and spans.span_id = server_routes.client_span_id

),

final as (

    select
        trace_id,
        span_id,
        parent_span_id,
        service_name,
        service_version,
        deployment_environment,
        span_name,
        kind,
        http_method,
        http_route,
        url_full,
        server_address,
        http_status_code,
        status_code,
        status_message,
        status_code = 'error' or coalesce(http_status_code >= 500, false) as is_error,
        started_at,
        ended_at,
        duration_ms,
        session_id,
        device_id,
        device_model,
        app_version,
        platform,
        os_name,
        os_version,
        db_system,
        db_operation,
        scope_name,
        scope_version,
        event_count,
        attributes,
        resource_attributes,
        dt,
        landing_path,
        line_no,
        record_index,
        ingested_at
    from derived

)

select * from final
