{#-
    Data tests on what a run changed. Every generic test reads the model it tests through
    get_where_subquery (dbt wraps the `model` argument in it); this override keeps dbt's own `where`
    config and, for a model incremental by day (macros/engine/incremental.sql) named in env var
    PITWALL_TESTS_CHANGED_SINCE (JSON {model: 'YYYY-MM-DD', ...}: the model's arrival watermark before this
    run, set by the Dagster asset on a run over an existing warehouse; an env var read only at execution,
    because a change of --vars makes dbt re-parse the whole project), tests only the rows the run can have changed:
    the days on and after the earliest day of a row holding data that arrived since the watermark. A model
    missing from the var (first build, a model new to the warehouse) and every other model are tested whole;
    so are all models on a run without it (a full build, `dbt build` by hand). A backfill
    (reprocess_from(), macros/engine/incremental.sql) tests from that day at the latest.
-#}
{% macro default__get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set changed = changed_rows_condition(relation) -%}
    {%- if changed -%}
        {%- do conditions.append(changed) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ conditions | join(' and ') }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{% macro changed_rows_condition(relation) -%}
    {#- The condition selecting the rows of the tested model a run over new days can have changed; '' when
        the model is to be tested whole. -#}
    {%- if not execute or model is not mapping or not model.get('attached_node') -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- set since_by_model = fromjson(env_var('PITWALL_TESTS_CHANGED_SINCE', '{}')) -%}
    {%- if not since_by_model -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- set node = graph.nodes.get(model.attached_node) -%}
    {%- if node is none or node.name not in since_by_model or relation.identifier != node.alias -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- set day_column = (node.config.get('partition_by') or [none])[0] -%}
    {%- set arrival_column = (node.config.get('meta') or {}).get('arrival_column') -%}
    {%- if node.config.get('materialized') != 'incremental' or not day_column or not arrival_column -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- set since = since_by_model[node.name] -%}
    {%- if reprocess_from() and reprocess_from() < since -%}
        {%- set since = reprocess_from() -%}
    {%- endif -%}
    {%- set condition -%}
        {{ day_column }} >= (
            select min({{ day_column }}) from {{ relation }}
            where {{ arrival_column }} >= cast('{{ since }}' as date)
        )
    {%- endset -%}
    {%- do return(condition) -%}
{%- endmacro %}
