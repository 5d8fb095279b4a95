-- Who entered which experiment, and when: GrowthBook's "Experiment Viewed" events (experiment_id,
-- variation_id), one row per (experiment, user). A user counts from their first exposure within the
-- experiment's dates. A user exposed to more than one variation (a changed assignment, a shared device)
-- is kept with multiple_variations = true and left out of the analysis, as GrowthBook does.

with

viewed as (

    select
        {{ json_str('properties', 'experiment_id') }} as experiment_key,
        {{ json_str('properties', 'variation_id') }} as variation_id,
        user_id,
        occurred_at
    from {{ ref('stg_events') }}
    where event_name = 'Experiment Viewed' and user_id is not null

),

dated as (

    select viewed.*
    from viewed
    inner join (select distinct experiment_key, start_date, end_date
                from {{ source('experiments', 'experiment_definitions') }}) as experiments
        on experiments.experiment_key = viewed.experiment_key
        and viewed.occurred_at >= cast(experiments.start_date as timestamptz)
        and viewed.occurred_at < cast(experiments.end_date as timestamptz) + interval 1 day

)

select
    experiment_key,
    user_id,
    arg_min(variation_id, occurred_at) as variation_id,
    min(occurred_at) as first_exposed_at,
    count(*) as exposures,
    count(distinct variation_id) > 1 as multiple_variations
from dated
group by experiment_key, user_id
