{#-
    keep_latest_version(key): a QUALIFY clause keeping the latest version of each key of a backend
    extract (extracts are daily change sets or full snapshots, so a key arrives many times): the latest
    updated_at, then the latest arrival (dt), then the last file and row. Expects the staging names
    updated_at, dt, landing_path, line_no. QUALIFY is the same on DuckDB and Spark.
-#}

{%- macro keep_latest_version(key) -%}
    {%- set keys = [key] if key is string else key -%}
qualify row_number() over (
        partition by {{ keys | join(', ') }}
        order by updated_at desc, dt desc, landing_path desc, line_no desc
    ) = 1
{%- endmacro -%}
