{#-
    percentile(column, p, approximate=false): the p-th quantile (0 ≤ p ≤ 1) of a column, as an
    aggregate, interpolated, as a double (DuckDB keeps a DECIMAL's scale otherwise).
    approximate=true uses the engine's sketch (t-digest on DuckDB, Greenwald-Khanna on Spark): use it
    for large groups where an exact sort is too costly.
-#}

{%- macro percentile(column, p, approximate=false) -%}
    {{ return(adapter.dispatch('percentile', 'pitwall')(column, p, approximate)) }}
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
        percentile_approx(cast({{ column }} as double), {{ p }})
    {%- else -%}
        percentile(cast({{ column }} as double), {{ p }})
    {%- endif -%}
{%- endmacro -%}

{%- macro default__percentile(column, p, approximate) -%}
    percentile_cont({{ p }}) within group (order by cast({{ column }} as double))
{%- endmacro -%}
