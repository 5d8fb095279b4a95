with

source as (

    select * from {{ source('raw', 'crashes') }}

),

renamed as (

    select
        ----------  ids
        event_id,
        user_id,
        {{ json_str('tags', 'session_id') }} as session_id,
        {{ json_str('contexts', ['device', 'id']) }} as device_id,
        {{ json_str('contexts', ['trace', 'trace_id']) }} as trace_id,

        ----------  attributes
        exception_type,
        exception_value,
        exception_module,
        crash_frame,
        fingerprint,
        message,
        release,
        dist,
        {{ json_str('contexts', ['app', 'app_version']) }} as context_app_version,
        {{ json_str('contexts', ['app', 'app_build']) }} as context_app_build,
        {{ json_str('contexts', ['app', 'app_identifier']) }} as context_app_identifier,
        {{ json_str('tags', 'platform') }} as tag_platform,
        {{ json_str('contexts', ['device', 'model']) }} as device_model,
        {{ json_str('contexts', ['os', 'name']) }} as os_name,
        {{ json_str('contexts', ['os', 'version']) }} as os_version,
        level,
        exception_handled as handled,
        environment,
        transaction,
        sdk_platform,
        sdk_name,
        sdk_version,
        tags,
        contexts,

        ----------  numerics
        in_app_frame_count,

        ----------  timestamps
        occurred_at,
        received_at,

        ----------  load metadata
        {{ load_metadata_columns() }}

    from source

),

deduplicated as (

    -- an SDK may send a cached event again: keep the first delivery of each event_id
    select * from renamed
    qualify row_number() over (
        partition by event_id
        order by dt, landing_path, line_no
    ) = 1

),

grouped as (

    -- Sentry's default grouping (macros/crash_grouping.sql: the one definition, shared with the crash alerts)
    select
        *,
        {{ crash_default_grouping_key() }} as default_grouping_key
    from deduplicated

),

keyed as (

    select
        *,
        {{ crash_grouping_key(list_length('fingerprint'), list_join('fingerprint', "'|'")) }} as grouping_key
    from grouped

),

final as (

    select
        event_id,
        {{ dbt.hash('grouping_key') }} as group_id,
        grouping_key,
        exception_type,
        exception_value,
        exception_module,
        crash_frame,
        message,
        release,
        case when release like '%@%' then split_part(release, '@', 1) end as app_id,
        coalesce(
            case when release like '%@%' then nullif(split_part(split_part(release, '@', 2), '+', 1), '') end,
            context_app_version
        ) as app_version,
        coalesce(
            case when release like '%+%' then nullif(split_part(release, '+', 2), '') end,
            context_app_build
        ) as build,
        {{ platform_from_os('tag_platform', 'os_name') }} as platform,
        occurred_at,
        received_at,
        session_id,
        user_id,
        device_id,
        device_model,
        os_name,
        os_version,
        level,
        handled,
        environment,
        transaction,
        trace_id,
        in_app_frame_count,
        sdk_platform,
        sdk_name,
        sdk_version,
        tags,
        contexts,
        dt,
        landing_path,
        line_no,
        ingested_at
    from keyed

)

select * from final
