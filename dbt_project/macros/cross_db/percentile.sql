{#-
    percentile(column, p, approximate=none): the p-th quantile (0 ≤ p ≤ 1) of a column, as an aggregate,
    as a double (DuckDB keeps a DECIMAL's scale otherwise).

    Exact (interpolated, as quantile_cont / percentile_cont) unless approximate. approximate=none takes the
    engine's default, var approximate_percentiles: exact on DuckDB, approximate on Spark, where an exact
    percentile collects every value of a group in one task's memory. Spark's percentile_approx
    (Greenwald-Khanna) returns a value of the column whose rank is within n / percentile_accuracy of
    p × n (var percentile_accuracy, Spark's default 10000): the tolerance the engine-equivalence test
    holds it to. DuckDB's approximate is approx_quantile (a t-digest).
-#}

{%- macro percentile(column, p, approximate=none) -%}
    {%- if approximate is none -%}
        {%- set approximate = var('approximate_percentiles', target.type != 'duckdb') -%}
    {%- endif -%}
    {{ return(adapter.dispatch('percentile', 'pitwall')(column, p, approximate in (true, 'true', 'True', 1, '1'))) }}
{%- endmacro -%}

{%- macro duckdb__percentile(column, p, approximate) -%}
    {%- if approximate -%}
        approx_quantile(cast({{ column }} as double), {{ p }})
    {%- else -%}
        quantile_cont(cast({{ column }} as double), {{ p }})
    {%- endif -%}
{%- endmacro -%}

{%- macro spark__percentile(column, p, approximate) -%}
    {%- if approximate -%}
        percentile_approx(cast({{ column }} as double), {{ p }}, {{ var('percentile_accuracy', 10000) }})
    {%- else -%}
        percentile(cast({{ column }} as double), {{ p }})
    {%- endif -%}
{%- endmacro -%}

{%- macro default__percentile(column, p, approximate) -%}
    percentile_cont({{ p }}) within group (order by cast({{ column }} as double))
{%- endmacro -%}
