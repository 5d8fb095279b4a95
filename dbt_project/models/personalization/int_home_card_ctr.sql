-- What similar users click on their home screen: per role × region × card, clicks per view of the app's
-- home screen (Home in the customer app, Jobs in the technician app), shrunk toward the role's rate over all regions by {{ var('card_ctr_prior_views', 50) }} pseudo-views
-- so a thin region does not reorder layouts on a handful of clicks.

{% set prior_views = var('card_ctr_prior_views', 50) %}

with

views as (

    select users.role, users.region, count(*) as home_views
    from {{ ref('stg_events') }} as events
    inner join {{ ref('dim_users') }} as users on users.user_id = events.user_id
    where events.event_name in ('Home', 'Jobs')  -- screen views: event_name is the screen's name
    group by all

),

clicks as (

    select users.role, users.region, {{ json_str('events.properties', 'card_id') }} as card_id, count(*) as clicks
    from {{ ref('stg_events') }} as events
    inner join {{ ref('dim_users') }} as users on users.user_id = events.user_id
    where events.event_name = 'home_card_clicked'
    group by all

),

cards as (

    select distinct role, card_id from {{ ref('ui_layout_rules') }}

),

segments as (

    select cards.role, views.region, cards.card_id, views.home_views, coalesce(clicks.clicks, 0) as clicks
    from cards
    inner join views on views.role = cards.role
    left join clicks on clicks.role = cards.role and clicks.region = views.region and clicks.card_id = cards.card_id

),

role_rates as (

    select role, card_id, sum(clicks) / nullif(sum(home_views), 0) as role_ctr
    from segments
    group by all

)

select
    segments.role,
    segments.region,
    segments.card_id,
    segments.home_views,
    segments.clicks,
    role_rates.role_ctr,
    (segments.clicks + {{ prior_views }} * coalesce(role_rates.role_ctr, 0)) / (segments.home_views + {{ prior_views }})
        as ctr_smoothed
from segments
inner join role_rates on role_rates.role = segments.role and role_rates.card_id = segments.card_id
