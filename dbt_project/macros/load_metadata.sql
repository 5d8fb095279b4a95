{#-
    load_metadata_columns(): the load metadata every raw row carries, renamed the one way staging
    exposes it (arrival partition, landing file and line, ingestion time).
-#}
{%- macro load_metadata_columns() -%}
        dt,
        _landing_path as landing_path,
        _line_no as line_no,
        _ingested_at as ingested_at
{%- endmacro -%}
