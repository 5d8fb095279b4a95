{#-
    Generic test on the funnel_steps seed: every funnel's steps are numbered 1, 2, … n without gaps or
    repeats (the funnel models chain step k to step k + 1).
-#}

{% test funnel_steps_are_contiguous(model, funnel_column='funnel', step_column='step_order') %}

select {{ funnel_column }}, count(*) as n_steps, count(distinct {{ step_column }}) as n_orders,
       min({{ step_column }}) as first_step, max({{ step_column }}) as last_step
from {{ model }}
group by {{ funnel_column }}
having min({{ step_column }}) <> 1
    or max({{ step_column }}) <> count(*)
    or count(distinct {{ step_column }}) <> count(*)
{% endtest %}
