{#-
    Generic test: no two rows share the same values in the given columns (a composite key), as
    dbt_utils' test of the same name, which this project cannot download.

        data_tests:
          - unique_combination_of_columns:
              arguments:
                combination_of_columns: [trace_id, span_id]
-#}

{% test unique_combination_of_columns(model, combination_of_columns) %}
    {%- set column_list = combination_of_columns | join(', ') -%}

with validation_errors as (
    select
        {{ column_list }},
        count(*) as n_rows
    from {{ model }}
    group by {{ column_list }}
    having count(*) > 1
)

select * from validation_errors
{% endtest %}
