{#-
    Generic test: none of the given columns holds a null. One test per model instead of dbt's `not_null` on
    each column: dbt's cost per test node (compiling, a query, a result, a Dagster asset check), about 0.1 s on
    2 cores, made the 269 one-column tests the biggest part of a day's build (docs/benchmarks.md); the data
    work is the same (one single-column scan per column, which a columnar engine reads apart). A failure
    names the column: each failing row is one null cell, with the column's name in `null_column`.

        data_tests:
          - not_null_columns:
              arguments:
                column_names: [trace_id, span_id, started_at]
-#}

{% test not_null_columns(model, column_names) %}
{%- for column in column_names %}
select '{{ column }}' as null_column from {{ model }} where {{ column }} is null
{%- if not loop.last %}
union all
{%- endif %}
{%- endfor %}
{% endtest %}
