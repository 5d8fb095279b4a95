-- Logged exposures: every recommendation_shown event, with what followed it. The label of an exposure is
-- whether the same user accepted the same action within 7 days of seeing it (recommendation_accepted);
-- labels exist only for people who were shown the action. An exposure whose 7 days are not over yet at
-- the end of the data is kept with label_complete = false (training leaves it out).

with

shown as (

    select
        message_id as exposure_id,
        user_id,
        {{ json_str('properties', 'vin') }} as vin,
        {{ json_str('properties', 'action_id') }} as action_id,
        {{ json_str('properties', 'placement') }} as placement,
        {{ json_str('properties', 'model_version') }} as model_version,
        {{ json_str('properties', 'experiment_key') }} as experiment_key,
        {{ json_str('properties', 'variation_id') }} as variation_id,
        platform,
        app_version,
        occurred_at as shown_at
    from {{ ref('stg_events') }}
    where event_name = 'recommendation_shown' and user_id is not null

),

outcomes as (

    select
        event_name,
        user_id,
        {{ json_str('properties', 'action_id') }} as action_id,
        occurred_at
    from {{ ref('stg_events') }}
    where event_name in ('recommendation_clicked', 'recommendation_accepted') and user_id is not null

),

data_end as (

    select max(occurred_at) as last_event_at from {{ ref('stg_events') }}

),

followed as (

    select
        shown.exposure_id,
        min(outcomes.occurred_at) filter (where outcomes.event_name = 'recommendation_clicked') as clicked_at,
        min(outcomes.occurred_at) filter (where outcomes.event_name = 'recommendation_accepted') as accepted_at
    from shown
    inner join outcomes
        on outcomes.user_id = shown.user_id
        and outcomes.action_id = shown.action_id
        and outcomes.occurred_at >= shown.shown_at
        and outcomes.occurred_at <= shown.shown_at + interval 7 day
    group by shown.exposure_id

)

select
    shown.*,
    cast(shown.shown_at as date) as as_of_date,
    followed.clicked_at,
    followed.accepted_at,
    followed.accepted_at is not null as accepted,
    shown.shown_at + interval 7 day <= data_end.last_event_at as label_complete
from shown
cross join data_end
left join followed
    on followed.exposure_id = shown.exposure_id
