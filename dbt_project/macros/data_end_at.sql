{#- The end of the data: the latest event's time. The one definition of "now" for models that describe
    the moment the data ends (scoring day, service stage, experiment windows, label completeness), so a
    rebuild of the same data gives the same tables. A scalar subquery. -#}
{% macro data_end_at() %}(select max(occurred_at) from {{ ref('stg_events') }}){% endmacro %}
