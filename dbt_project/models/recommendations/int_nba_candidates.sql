-- Tomorrow's next-best-action candidates, before the model: every customer's primary vehicle × customer
-- action × placement where the catalog lets the action show, with the first rule that rules it out.
-- Eligibility (catalog): vehicle old enough, the service not done within its cooldown, a required
-- trouble-code family seen in the last 7 days, not an excluded fuel type. Suppression: an open OEM recall
-- on the part the action sells (the OEM network fixes it free), accepted the same action in the last 90
-- days, declined it twice in the last 30 days, the service already booked for the vehicle.
-- The weekly frequency cap needs the ranking, so the policy applies it (shown_last_7d is here for it).

with

candidates as (

    select features.*, actions.min_vehicle_age_years, actions.cooldown_days, actions.requires_dtc_family,
           actions.excluded_fuel_type, actions.suppressed_by_recall, actions.reason_hint, placement
    from {{ ref('fct_nba_features') }} as features
    inner join {{ ref('dim_actions') }} as actions
        on actions.action_id = features.action_id
    cross join unnest(actions.placements) as placements(placement)
    where features.purpose = 'scoring'

),

booked as (

    select distinct jobs.vin, jobs.service_id
    from {{ ref('stg_jobs') }} as jobs
    where jobs.completed_at is null and jobs.cancelled_at is null and jobs.scheduled_for is not null

),

-- recalls still open (published, not yet remedied) in their latest version, at the end of the data
open_recalls as (

    select distinct recalls.vin, lower(recalls.component) as component
    from {{ ref('stg_partner_oem_recall_campaigns') }} as recalls
    where recalls.remedy_status in ('open', 'remedy_available')

),

recalled as (

    select distinct candidates.vin, candidates.action_id
    from candidates
    inner join open_recalls
        on open_recalls.vin = candidates.vin
       and contains(open_recalls.component, lower(candidates.suppressed_by_recall))

),

shown_recently as (

    select exposures.user_id, count(*) as shown_last_7d
    from {{ ref('int_recommendation_exposures') }} as exposures
    cross join (select max(as_of_date) as as_of_date from {{ ref('int_nba_spine') }} where purpose = 'scoring') as scoring
    where exposures.shown_at >= cast(scoring.as_of_date as timestamptz) - interval 7 day
    group by exposures.user_id

)

select
    candidates.* exclude (min_vehicle_age_years, cooldown_days, requires_dtc_family, excluded_fuel_type,
                          suppressed_by_recall),
    coalesce(shown_recently.shown_last_7d, 0) as shown_last_7d,
    case
        when candidates.vehicle_age_years < candidates.min_vehicle_age_years then 'vehicle_too_new'
        when candidates.cooldown_days > 0 and candidates.days_since_same_service <= candidates.cooldown_days then 'service_done_recently'
        when candidates.requires_dtc_family is not null
             and not list_contains(candidates.dtc_families_7d, candidates.requires_dtc_family) then 'no_matching_trouble_code'
        when candidates.fuel_type = candidates.excluded_fuel_type then 'excluded_fuel_type'
        when recalled.vin is not null then 'open_recall_handled_by_oem'
        when candidates.accepted_same_action_90d > 0 then 'accepted_in_last_90_days'
        when candidates.declined_same_action_30d >= 2 then 'declined_twice_in_last_30_days'
        when booked.vin is not null then 'service_already_booked'
    end as ineligible_reason
from candidates
left join {{ ref('dim_actions') }} as actions
    on actions.action_id = candidates.action_id
left join booked
    on booked.vin = candidates.vin and booked.service_id = actions.service_id
left join recalled
    on recalled.vin = candidates.vin and recalled.action_id = candidates.action_id
left join shown_recently
    on shown_recently.user_id = candidates.user_id
