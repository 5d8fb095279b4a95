with

source as (

    select * from {{ source('raw', 'events') }}

),

renamed as (

    select
        ----------  ids
        message_id,
        user_id,
        anonymous_id,
        {{ json_str('context', 'sessionId') }} as session_id,
        {{ json_str('context', ['device', 'id']) }} as device_id,
        group_id,
        previous_id,

        ----------  attributes
        type as event_type,
        case
            when type = 'track' then event
            when type in ('screen', 'page') then name
            else type
        end as event_name,
        category,
        {{ json_str('context', ['app', 'name']) }} as app_name,
        {{ json_str('context', ['app', 'namespace']) }} as app_namespace,
        {{ json_str('context', ['app', 'version']) }} as app_version,
        {{ json_str('context', ['app', 'build']) }} as app_build,
        {{ platform_from_os(json_str('context', ['os', 'name']), json_str('context', ['device', 'type'])) }} as platform,
        {{ json_str('context', ['os', 'name']) }} as os_name,
        {{ json_str('context', ['os', 'version']) }} as os_version,
        {{ json_str('context', ['device', 'type']) }} as device_type,
        {{ json_str('context', ['device', 'model']) }} as device_model,
        {{ json_str('context', ['device', 'manufacturer']) }} as device_manufacturer,
        {{ json_str('context', ['library', 'name']) }} as library_name,
        {{ json_str('context', ['library', 'version']) }} as library_version,
        {{ json_str('context', 'locale') }} as locale,
        {{ json_str('context', 'timezone') }} as timezone,
        channel,
        context,
        properties,
        traits,

        ----------  numerics
        -- how far the device clock ran ahead of the collector's (batch send time vs receive time)
        {{ epoch_seconds_between('received_at', 'sent_at') }} as clock_skew_seconds,

        ----------  timestamps
        occurred_at,
        coalesce(original_timestamp, timestamp) as device_timestamp,
        sent_at,
        received_at,

        ----------  load metadata
        {{ load_metadata_columns() }}

    from source

),

deduplicated as (

    -- clients retry: keep the first delivery of each messageId
    select * from renamed
    qualify row_number() over (
        partition by message_id
        order by received_at, landing_path, line_no
    ) = 1

)

select * from deduplicated
