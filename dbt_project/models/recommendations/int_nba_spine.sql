-- What the features are computed for: one row per (customer, vehicle, action, as-of date).
--   training: every logged exposure, as of the day it was shown;
--   scoring:  every customer's primary vehicle (their first) × every customer action, as of the day after
--             the data ends (the day the recommendations will be shown).
-- Features of a row use only data from before its as-of date (midnight UTC).

with

exposures as (

    select distinct user_id, vin, action_id, as_of_date, 'training' as purpose
    from {{ ref('int_recommendation_exposures') }}
    where vin is not null and action_id is not null

),

scoring_day as (

    select cast({{ data_end_at() }} as date) + 1 as as_of_date

),

primary_vehicles as (

    select customer_id as user_id, vin
    from {{ ref('stg_vehicles') }}
    qualify row_number() over (partition by customer_id order by created_at, vin) = 1

),

scoring as (

    select primary_vehicles.user_id, primary_vehicles.vin, actions.action_id, scoring_day.as_of_date, 'scoring' as purpose
    from primary_vehicles
    cross join scoring_day
    cross join {{ ref('dim_actions') }} as actions
    where actions.audience = 'customer'

)

select * from exposures
union all
select * from scoring
