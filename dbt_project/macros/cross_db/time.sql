{#-
    epoch_seconds_between(start, end): seconds from `start` to `end` as a double, with sub-second
    precision. dbt.datediff is no substitute: for second/minute/hour parts it counts boundaries on some
    engines and rounds on others, so the two dialects disagree.
-#}

{%- macro epoch_seconds_between(start, end) -%}
    {{ return(adapter.dispatch('epoch_seconds_between', 'pitwall')(start, end)) }}
{%- endmacro -%}

{%- macro duckdb__epoch_seconds_between(start, end) -%}
    ((epoch_us({{ end }}) - epoch_us({{ start }})) / 1000000.0)::double
{%- endmacro -%}

{%- macro spark__epoch_seconds_between(start, end) -%}
    cast((unix_micros({{ end }}) - unix_micros({{ start }})) / 1000000.0 as double)
{%- endmacro -%}

{%- macro default__epoch_seconds_between(start, end) -%}
    cast(extract(epoch from ({{ end }} - {{ start }})) as double)
{%- endmacro -%}


{#- timestamp_from_epoch_nanos(nanos): a UTC timestamp from integer nanoseconds since the epoch (microsecond precision). -#}

{%- macro timestamp_from_epoch_nanos(nanos) -%}
    {{ return(adapter.dispatch('timestamp_from_epoch_nanos', 'pitwall')(nanos)) }}
{%- endmacro -%}

{%- macro duckdb__timestamp_from_epoch_nanos(nanos) -%}
    make_timestamp(({{ nanos }}) // 1000)::timestamptz
{%- endmacro -%}

{%- macro spark__timestamp_from_epoch_nanos(nanos) -%}
    timestamp_micros(({{ nanos }}) div 1000)
{%- endmacro -%}

{%- macro default__timestamp_from_epoch_nanos(nanos) -%}
    to_timestamp(({{ nanos }}) / 1e9)
{%- endmacro -%}


{#- days_from_to(start_date, end_date): a set-returning expression, one row per day from start to end
    (inclusive), as dates; use it in a select list (`select partner, {{ days_from_to('a', 'b') }} as day`). -#}

{%- macro days_from_to(start_date, end_date) -%}
    {{ return(adapter.dispatch('days_from_to', 'pitwall')(start_date, end_date)) }}
{%- endmacro -%}

{%- macro duckdb__days_from_to(start_date, end_date) -%}
    cast(unnest(generate_series(cast({{ start_date }} as date), cast({{ end_date }} as date), interval 1 day)) as date)
{%- endmacro -%}

{%- macro spark__days_from_to(start_date, end_date) -%}
    explode(sequence(cast({{ start_date }} as date), cast({{ end_date }} as date), interval 1 day))
{%- endmacro -%}

{%- macro default__days_from_to(start_date, end_date) -%}
    cast(generate_series(cast({{ start_date }} as date), cast({{ end_date }} as date), interval '1 day') as date)
{%- endmacro -%}


{#- epoch_micros(ts): microseconds since 1970-01-01 UTC, as a bigint. -#}
{%- macro epoch_micros(ts) -%}
    {{ return(adapter.dispatch('epoch_micros', 'pitwall')(ts)) }}
{%- endmacro -%}

{%- macro duckdb__epoch_micros(ts) -%} epoch_us({{ ts }}) {%- endmacro -%}
{%- macro spark__epoch_micros(ts) -%} unix_micros({{ ts }}) {%- endmacro -%}
{%- macro default__epoch_micros(ts) -%} cast(extract(epoch from {{ ts }}) * 1000000 as bigint) {%- endmacro -%}
