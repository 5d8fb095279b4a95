-- Jobs × the parts they may use, with what was known before each job: the parts model's training rows
-- (past jobs, labelled with whether the job used the part) and scoring rows (jobs still open and
-- scheduled in the 7 days from the scoring day). models_ml/parts turns the scoring rows into the
-- probabilities of parts_suggestions.
--
-- Grain: one row per (job, candidate part). Candidates: the service's catalog parts, every part an earlier
-- job of the same service used, and every part used on at least 1% of earlier jobs of other services
-- than its own (a battery or brake pads may be needed whatever the booked service).
-- Point in time: a past job's vehicle condition is as of the day it was scheduled; an upcoming job's as of
-- the scoring day (vehicle_condition_as_of: readings strictly before that day's midnight UTC).

with

scoring_day as (

    select max(as_of_date) as as_of_date, cast(max(as_of_date) as timestamptz) as cutoff
    from {{ ref('int_nba_spine') }}
    where purpose = 'scoring'

),

job_days as (

    select jobs.job_id, jobs.vin, 'training' as purpose, cast(jobs.scheduled_for as date) as as_of_date
    from {{ ref('stg_jobs') }} as jobs
    cross join scoring_day
    where jobs.completed_at < scoring_day.cutoff

    union all

    select jobs.job_id, jobs.vin, 'scoring' as purpose, scoring_day.as_of_date
    from {{ ref('stg_jobs') }} as jobs
    cross join scoring_day
    where jobs.completed_at is null and jobs.cancelled_at is null
        and jobs.scheduled_for >= scoring_day.cutoff
        and jobs.scheduled_for < scoring_day.cutoff + interval 7 day

),

vehicle_days as (

    select distinct vin, as_of_date, cast(as_of_date as timestamptz) as cutoff from job_days

),

vehicle_condition as (

    {{ vehicle_condition_as_of('vehicle_days') }}

),

used as (

    select job_id, part_id, sum(quantity) as quantity from {{ ref('stg_job_parts') }} group by all

),

past_uses as (

    select jobs.service_id, used.part_id, count(*) as jobs_used
    from used
    inner join job_days on job_days.job_id = used.job_id and job_days.purpose = 'training'
    inner join {{ ref('stg_jobs') }} as jobs on jobs.job_id = used.job_id
    group by all

),

common_parts as (

    -- parts used beyond their own service (counted on other services' jobs only)
    select past_uses.part_id
    from past_uses
    inner join {{ ref('stg_parts_catalog') }} as catalog on catalog.part_id = past_uses.part_id
    where past_uses.service_id <> catalog.service_id
    group by past_uses.part_id
    having sum(past_uses.jobs_used) >= 0.01 * (select count(*) from job_days where purpose = 'training')

),

service_parts as (

    select distinct services.service_id, parts.part_id
    from (select service_id, part_id from {{ ref('stg_parts_catalog') }}
          union all
          select service_id, part_id from past_uses) as parts
    cross join (select distinct service_id from {{ ref('stg_jobs') }}) as services
    where parts.service_id = services.service_id
        or parts.part_id in (select part_id from common_parts)

)

select
    job_days.job_id,
    job_days.purpose,
    job_days.as_of_date,
    jobs.technician_id,
    jobs.customer_id,
    jobs.vin,
    jobs.service_id,
    jobs.scheduled_for,
    service_parts.part_id,
    parts.part_name,
    parts.category as part_category,
    parts.service_id as part_service_id,
    coalesce(parts.service_id = jobs.service_id, false) as part_in_service_catalog,
    vehicles.fuel_type,
    year(job_days.as_of_date) - vehicles.model_year as vehicle_age_years,
    vehicle_condition.odometer_km,
    vehicle_condition.oil_life_pct,
    vehicle_condition.battery_voltage,
    vehicle_condition.battery_voltage_trend_7d,
    vehicle_condition.min_tire_pressure_kpa,
    coalesce(vehicle_condition.dtc_battery_7d, false) as dtc_battery_7d,
    coalesce(vehicle_condition.dtc_brakes_7d, false) as dtc_brakes_7d,
    case when job_days.purpose = 'training' then used.job_id is not null end as used,
    case when job_days.purpose = 'training' then coalesce(used.quantity, 0) end as quantity
from job_days
inner join {{ ref('stg_jobs') }} as jobs on jobs.job_id = job_days.job_id
inner join service_parts on service_parts.service_id = jobs.service_id
left join {{ ref('stg_parts_catalog') }} as parts on parts.part_id = service_parts.part_id
left join {{ ref('stg_vehicles') }} as vehicles on vehicles.vin = jobs.vin
left join vehicle_condition
    on vehicle_condition.vin = job_days.vin and vehicle_condition.as_of_date = job_days.as_of_date
left join used on used.job_id = job_days.job_id and used.part_id = service_parts.part_id
