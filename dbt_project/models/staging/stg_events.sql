{{ config(**incremental_by_day('dt')) }}

-- Incremental by arrival day (macros/engine/incremental.sql): a run rebuilds the arrival partitions
-- from the latest one it already holds.

with

source as (

    select * from {{ source('raw', 'events') }}
    {%- if is_incremental() %}
    where dt >= {{ incremental_floor('dt') }}
    {%- endif %}

),

renamed as (

    select
        ----------  ids
        message_id,
        user_id,
        anonymous_id,
        context_session_id as session_id,
        context_device_id as device_id,
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
        context_app_name as app_name,
        context_app_namespace as app_namespace,
        context_app_version as app_version,
        context_app_build as app_build,
        {{ platform_from_os('context_os_name', 'context_device_type') }} as platform,
        context_os_name as os_name,
        context_os_version as os_version,
        context_device_type as device_type,
        context_device_model as device_model,
        context_device_manufacturer as device_manufacturer,
        context_library_name as library_name,
        context_library_version as library_version,
        context_locale as locale,
        context_timezone as timezone,
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

repeated_ids as (

    select message_id from renamed
    group by message_id
    having count(*) > 1

),

deduplicated as (

    -- Clients retry, so a messageId may arrive more than once: keep its first delivery (the earliest
    -- arrival day first, so a day rebuilt alone keeps what a full build keeps). Most arrive once, so
    -- only the repeated ids are ordered (a window over every event costs twice as much).
    select * from renamed
    where message_id not in (select message_id from repeated_ids)

    union all

    select * from renamed
    where message_id in (select message_id from repeated_ids)
    qualify row_number() over (
        partition by message_id
        order by dt, received_at, landing_path, line_no
    ) = 1

)

select * from deduplicated
{%- if is_incremental() %}
-- a retry delivered on a later day than its first delivery, which an earlier run kept
where not exists (
    select 1 from {{ this }} as kept
    where kept.message_id = deduplicated.message_id
        and kept.dt < {{ incremental_floor('dt') }}
)
{%- endif %}
