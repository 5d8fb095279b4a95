-- Logged exposures: every recommendation_shown event, with what followed it. The label of an exposure is
-- whether the same user accepted the same action within 7 days of seeing it (recommendation_accepted),
-- credited to the last exposure before the acceptance (last touch: an offer seen three times and accepted
-- at the third was declined twice); labels exist only for people who were shown the action. An exposure
-- whose 7 days are not over yet at the end of the data is kept with label_complete = false (training
-- leaves it out). policy and propensity_logged are what the app logged with the exposure (explore | model |
-- rules_fallback, and the probability the policy had of showing that action there); older app versions log
-- neither, so both are null for their exposures.
-- purchased_at: the customer booked the action's service for the same vehicle (a job in the ops extracts)
-- within 7 days, credited last-touch like an acceptance. It is kept beside the label, not in it: a booking
-- also happens without the recommendation, so it measures what followed, not what the prompt caused.

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
        {{ json_str('properties', 'policy') }} as policy,
        try_cast({{ json_str('properties', 'propensity_logged') }} as double) as propensity_logged,
        platform,
        app_version,
        occurred_at as shown_at
    from {{ ref('stg_events') }}
    where event_name = 'recommendation_shown' and user_id is not null

),

outcomes as (

    select
        message_id,
        event_name,
        user_id,
        {{ json_str('properties', 'action_id') }} as action_id,
        occurred_at
    from {{ ref('stg_events') }}
    where event_name in ('recommendation_clicked', 'recommendation_accepted') and user_id is not null

),

purchases as (

    select
        'job:' || jobs.job_id as message_id,
        'service_booked' as event_name,
        jobs.customer_id as user_id,
        jobs.vin,
        actions.action_id,
        jobs.created_at as occurred_at
    from {{ ref('stg_jobs') }} as jobs
    inner join {{ ref('dim_actions') }} as actions
        on actions.service_id = jobs.service_id and actions.audience = 'customer'
    where jobs.created_at is not null

),

purchase_credit as (

    select
        purchases.message_id,
        purchases.action_id,
        any_value(purchases.occurred_at) as occurred_at,
        max_by(shown.exposure_id, shown.shown_at) as exposure_id
    from purchases
    inner join shown
        on shown.user_id = purchases.user_id
        and shown.vin = purchases.vin
        and shown.action_id = purchases.action_id
        and shown.shown_at <= purchases.occurred_at
        and shown.shown_at >= purchases.occurred_at - interval 7 day
    group by purchases.message_id, purchases.action_id

),

purchased as (

    select exposure_id, min(occurred_at) as purchased_at from purchase_credit group by exposure_id

),

data_end as (

    select {{ data_end_at() }} as last_event_at

),

credited as (

    -- each click or acceptance goes to the latest exposure of that action to that user in the 7 days before it
    select
        outcomes.message_id,
        any_value(outcomes.event_name) as event_name,
        any_value(outcomes.occurred_at) as occurred_at,
        max_by(shown.exposure_id, shown.shown_at) as exposure_id
    from outcomes
    inner join shown
        on shown.user_id = outcomes.user_id
        and shown.action_id = outcomes.action_id
        and shown.shown_at <= outcomes.occurred_at
        and shown.shown_at >= outcomes.occurred_at - interval 7 day
    group by outcomes.message_id

),

followed as (

    select
        exposure_id,
        min(occurred_at) filter (where event_name = 'recommendation_clicked') as clicked_at,
        min(occurred_at) filter (where event_name = 'recommendation_accepted') as accepted_at
    from credited
    group by exposure_id

)

select
    shown.*,
    cast(shown.shown_at as date) as as_of_date,
    followed.clicked_at,
    followed.accepted_at,
    followed.accepted_at is not null as accepted,
    purchased.purchased_at,
    shown.shown_at + interval 7 day <= data_end.last_event_at as label_complete
from shown
cross join data_end
left join followed
    on followed.exposure_id = shown.exposure_id
left join purchased
    on purchased.exposure_id = shown.exposure_id
