{#-
    Incremental models by day (every model whose meta names an arrival_column: stg_events, stg_spans,
    fct_sessions, fct_api_requests, int_funnel_entries, int_funnel_entry_steps, mart_funnel_daily,
    mart_api_latency_daily, mart_release_health; orchestration/dbt/assets.py incremental_models() finds them
    in the manifest the same way): a run rebuilds whole day partitions and leaves the others alone, so a
    daily run touches one day.

    partition_replace_strategy(): how a day partition is replaced — delete+insert on the day key on
    DuckDB (unique_key = the day column: the batch's days are deleted, then inserted), insert_overwrite
    on Spark (dynamic partition overwrite of the days the batch holds, partition_by = the day column).
-#}

{%- macro partition_replace_strategy() -%}
    {{ return('insert_overwrite' if target.type == 'spark' else 'delete+insert') }}
{%- endmacro -%}

{#-
    incremental_floor(column): the first day a run of an incremental model rebuilds, as a SQL date
    expression: the latest `column` already in the model (that day may have received more since, so it is
    rebuilt whole), or an earlier day from reprocess_from() (a backfill, or older days whose raw files
    changed). `dbt run --full-refresh` rebuilds everything.
-#}
{%- macro incremental_floor(column) -%}
    {%- set latest -%}
        (select coalesce(max({{ column }}), cast('1970-01-01' as date)) from {{ this }})
    {%- endset -%}
    {%- if reprocess_from() -%}
        least(cast('{{ reprocess_from() }}' as date), {{ latest }})
    {%- else -%}
        {{ latest }}
    {%- endif -%}
{%- endmacro -%}


{#-
    reprocess_from(): the day from which incremental models rebuild and their data tests test, or none:
    var reprocess_from ('YYYY-MM-DD', a backfill by hand), else env var PITWALL_REPROCESS_FROM, which the
    Dagster asset sets when ingestion changed the raw files of a day older than the newest (a landing file
    replaced or moved: orchestration/ingestion/ingest.py). The env var is read only at execution: a change of
    --vars, or of an env var read while parsing, makes dbt re-parse the whole project.
-#}
{%- macro reprocess_from() -%}
    {%- set by_hand = var('reprocess_from', none) -%}
    {%- if by_hand -%}
        {{ return(by_hand) }}
    {%- endif -%}
    {%- set noted = env_var('PITWALL_REPROCESS_FROM', '') if execute else '' -%}
    {{ return(noted or none) }}
{%- endmacro -%}


{#-
    incremental_by_day(day_column, arrival_column): the config of a model incremental by day, the one
    definition:
        {{ config(**incremental_by_day('started_on', 'last_arrival_dt')) }}
    Whole days are replaced (partition_replace_strategy), keyed and partitioned by `day_column`; a change
    of columns fails the run rather than drifting (run with --full-refresh). `arrival_column` (default the
    day column) is the arrival day of the newest data in a row, the watermark incremental_floor() reads:
    the data tests of a daily run test the days a run can have changed (macros/tests/changed_rows.sql), and
    the publish step replaces only the changed days.
-#}
{%- macro incremental_by_day(day_column, arrival_column=none) -%}
    {{ return({
        'meta': {'arrival_column': arrival_column or day_column},
        'materialized': 'incremental',
        'incremental_strategy': partition_replace_strategy(),
        'unique_key': day_column,
        'partition_by': [day_column],
        'file_format': 'parquet',
        'on_schema_change': 'fail',
    }) }}
{%- endmacro -%}
