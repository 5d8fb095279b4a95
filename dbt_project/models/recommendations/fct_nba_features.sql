-- Point-in-time features for next-best-action. Grain: one row per int_nba_spine row (customer, vehicle,
-- action, as-of date). Every feature uses only data observed before the as-of date (midnight UTC):
-- telemetry readings, jobs and invoices, recommendation exposures and outcomes, sessions. Missing
-- telemetry (an unconnected vehicle) stays null: the model treats missing as its own case.
-- rules_score is the rules-only ordering (due-now flags, then value): the baseline and the fallback.
-- The due-now rules are the action catalog's due_* columns (dim_actions), the one definition that
-- models_ml/nba/spec.py reads too: due when the reading named by due_reading is below due_below or at
-- least due_at_least, or when a trouble code of due_dtc_family was seen in the last 7 days.

-- the features a due-now rule may read (the seed's accepted_values test on due_reading names the same)
{%- set due_readings = ['battery_voltage', 'oil_life_pct', 'min_tire_pressure_kpa', 'vehicle_age_years',
                        'daily_km_30d', 'odometer_km'] %}

with

spine as (

    select spine.*, cast(spine.as_of_date as timestamptz) as cutoff
    from {{ ref('int_nba_spine') }} as spine

),

actions as (

    select * from {{ ref('dim_actions') }}

),

vehicle_days as (

    select distinct vin, as_of_date, cutoff from spine

),

vehicle_condition as (

    {{ vehicle_condition_as_of('vehicle_days') }}

),

customer_days as (

    select distinct user_id, as_of_date, cutoff from spine

),

jobs as (

    select jobs.customer_id, jobs.vin, jobs.job_id, jobs.service_id, jobs.completed_at, invoices.amount
    from {{ ref('stg_jobs') }} as jobs
    left join {{ ref('stg_invoices') }} as invoices
        on invoices.job_id = jobs.job_id and invoices.status <> 'void'
    where jobs.completed_at is not null

),

history as (

    select
        customer_days.user_id,
        customer_days.as_of_date,
        count(jobs.job_id) filter (where jobs.completed_at >= customer_days.cutoff - interval 365 day) as visits_365d,
        coalesce(sum(jobs.amount) filter (where jobs.completed_at >= customer_days.cutoff - interval 365 day), 0) as spend_365d,
        max(jobs.completed_at) as last_visit_at
    from customer_days
    left join jobs
        on jobs.customer_id = customer_days.user_id
        and jobs.completed_at < customer_days.cutoff
    group by customer_days.user_id, customer_days.as_of_date

),

same_service as (

    select spine.user_id, spine.vin, spine.action_id, spine.as_of_date, max(jobs.completed_at) as last_same_service_at
    from spine
    inner join actions on actions.action_id = spine.action_id
    inner join jobs
        on jobs.vin = spine.vin
        and jobs.service_id = actions.service_id
        and jobs.completed_at < spine.cutoff
    group by all

),

exposures as (

    select
        exposures.user_id,
        exposures.action_id,
        actions.kind,
        exposures.shown_at,
        exposures.accepted_at
    from {{ ref('int_recommendation_exposures') }} as exposures
    inner join actions on actions.action_id = exposures.action_id

),

offers as (

    -- what the customer did with earlier offers, as known before the as-of date: an offer counts as
    -- accepted only if the acceptance itself happened before it
    select
        spine.user_id,
        spine.action_id,
        spine.as_of_date,
        count(*) filter (where exposures.action_id = spine.action_id
                         and exposures.shown_at >= spine.cutoff - interval 90 day) as shown_same_action_90d,
        count(*) filter (where exposures.action_id = spine.action_id
                         and exposures.accepted_at < spine.cutoff
                         and exposures.shown_at >= spine.cutoff - interval 90 day) as accepted_same_action_90d,
        count(*) filter (where exposures.action_id = spine.action_id
                         and (exposures.accepted_at is null or exposures.accepted_at >= spine.cutoff)
                         and exposures.shown_at >= spine.cutoff - interval 30 day) as declined_same_action_30d,
        count(*) filter (where exposures.kind = actions.kind
                         and exposures.accepted_at < spine.cutoff
                         and exposures.shown_at >= spine.cutoff - interval 90 day) as accepted_same_kind_90d
    from spine
    inner join actions on actions.action_id = spine.action_id
    inner join exposures
        on exposures.user_id = spine.user_id
        and exposures.shown_at < spine.cutoff
        and exposures.shown_at >= spine.cutoff - interval 90 day
    group by all

),

last_session as (

    select customer_days.user_id, customer_days.as_of_date, arg_max(sessions.platform, sessions.started_at) as platform
    from customer_days
    inner join {{ ref('fct_sessions') }} as sessions
        on sessions.user_id = customer_days.user_id
        and sessions.started_at < customer_days.cutoff
        and sessions.started_at >= customer_days.cutoff - interval 90 day
    group by customer_days.user_id, customer_days.as_of_date

),

joined as (

    select
        spine.user_id,
        spine.vin,
        spine.action_id,
        spine.as_of_date,
        spine.purpose,
        actions.kind as action_kind,
        actions.action_value,
        customers.region,
        customers.segment,
        last_session.platform,
        vehicles.fuel_type,
        year(spine.as_of_date) - vehicles.model_year as vehicle_age_years,
        vehicle_condition.odometer_km,
        vehicle_condition.oil_life_pct,
        vehicle_condition.battery_voltage,
        vehicle_condition.battery_voltage_trend_7d,
        vehicle_condition.min_tire_pressure_kpa,
        vehicle_condition.daily_km_30d,
        {{ epoch_seconds_between('vehicle_condition.last_reading_at', 'spine.cutoff') }} / 86400.0 as days_since_telemetry,
        coalesce(vehicle_condition.dtc_battery_7d, false) as dtc_battery_7d,
        coalesce(vehicle_condition.dtc_brakes_7d, false) as dtc_brakes_7d,
        coalesce(vehicle_condition.dtc_codes_7d, 0) as dtc_codes_7d,
        coalesce(vehicle_condition.dtc_families_7d, []) as dtc_families_7d,
        history.visits_365d,
        history.spend_365d,
        {{ epoch_seconds_between('history.last_visit_at', 'spine.cutoff') }} / 86400.0 as days_since_last_visit,
        {{ epoch_seconds_between('same_service.last_same_service_at', 'spine.cutoff') }} / 86400.0 as days_since_same_service,
        coalesce(offers.shown_same_action_90d, 0) as shown_same_action_90d,
        coalesce(offers.accepted_same_action_90d, 0) as accepted_same_action_90d,
        coalesce(offers.declined_same_action_30d, 0) as declined_same_action_30d,
        coalesce(offers.accepted_same_kind_90d, 0) as accepted_same_kind_90d
    from spine
    inner join actions on actions.action_id = spine.action_id
    left join {{ ref('stg_customers') }} as customers on customers.customer_id = spine.user_id
    left join {{ ref('stg_vehicles') }} as vehicles on vehicles.vin = spine.vin
    left join vehicle_condition
        on vehicle_condition.vin = spine.vin and vehicle_condition.as_of_date = spine.as_of_date
    left join history
        on history.user_id = spine.user_id and history.as_of_date = spine.as_of_date
    left join same_service
        on same_service.user_id = spine.user_id and same_service.vin = spine.vin
        and same_service.action_id = spine.action_id and same_service.as_of_date = spine.as_of_date
    left join offers
        on offers.user_id = spine.user_id and offers.action_id = spine.action_id
        and offers.as_of_date = spine.as_of_date
    left join last_session
        on last_session.user_id = spine.user_id and last_session.as_of_date = spine.as_of_date

),

due as (

    select
        joined.*,
        case actions.due_reading
            {%- for reading in due_readings %}
            when '{{ reading }}' then cast(joined.{{ reading }} as double)
            {%- endfor %}
        end as due_reading_value,
        actions.due_below,
        actions.due_at_least,
        actions.due_dtc_family
    from joined
    inner join actions on actions.action_id = joined.action_id

)

select
    due.* exclude (due_reading_value, due_below, due_at_least, due_dtc_family),
    -- the rules-only ordering: is the action due now by its catalog rule, then its value
    coalesce(due.due_reading_value < due.due_below, false)
    or coalesce(due.due_reading_value >= due.due_at_least, false)
    or coalesce(list_contains(due.dtc_families_7d, due.due_dtc_family), false) as due_by_rule,
    case when due_by_rule then 1000 else 0 end + coalesce(due.action_value, 0) as rules_score
from due
