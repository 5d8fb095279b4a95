-- The metrics each experiment's analysis plan names (experiments/flags.yaml: primary_metric and
-- guardrail_metrics), one row per (experiment, metric, role). Its relationships test to the seed
-- experiment_metrics fails the build when a plan names a metric nobody defined: such a metric would
-- otherwise be inner-joined away with no results and no error (pitwall.flags refuses it on load too).

with

plans as (

    select distinct experiment_key, primary_metric, guardrail_metrics
    from {{ source('experiments', 'experiment_definitions') }}

)

select experiment_key, primary_metric as metric, 'primary' as metric_role
from plans
union all
select plans.experiment_key, guardrails.metric, 'guardrail' as metric_role
from plans
cross join unnest(plans.guardrail_metrics) as guardrails (metric)
