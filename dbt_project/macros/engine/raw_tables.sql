{#-
    register_raw_tables(): make the raw layer's Parquet readable as dbt sources on engines that need a
    catalog entry. Runs on-run-start (dbt_project.yml).

    DuckDB needs nothing: each source reads its files in place (meta.external_location, read_parquet).
    Spark: each source the selected models read becomes an external Parquet table over the same folder,
    `<source schema>.<table>` (raw.events, ops.jobs …), partitioned by the arrival date `dt`. Its columns
    are the source's declared columns (staging/__sources.yml, which states the raw layer's exact schema),
    so a table with no data yet is still typed, and files written before a column was added read it as
    null, as DuckDB's union_by_name does. The table is re-declared on every run (metadata only) and
    `msck repair` registers the partitions that landed since.

    The raw layer's root is PITWALL_RAW_URI (an s3a:// or abfss:// URI on a cluster), else
    $PITWALL_DATA_DIR/raw.
-#}

{%- macro register_raw_tables() -%}
    {{ return(adapter.dispatch('register_raw_tables', 'pitwall')()) }}
{%- endmacro -%}

{%- macro default__register_raw_tables() -%}
{%- endmacro -%}

{%- macro spark__register_raw_tables() -%}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set root = env_var('PITWALL_RAW_URI', env_var('PITWALL_DATA_DIR') ~ '/raw') -%}
    {%- set wanted = [] -%}
    {%- for unique_id in selected_resources -%}
        {%- set node = graph.nodes.get(unique_id) -%}
        {%- if node -%}
            {%- for parent in node.depends_on.nodes if parent.startswith('source.') and parent not in wanted -%}
                {%- do wanted.append(parent) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for unique_id in wanted -%}
        {%- set source = graph.sources[unique_id] -%}
        {%- if source.meta.get('external_location') -%}
            {%- do register_raw_table(source, root ~ '/' ~ source.name) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro -%}

{%- macro register_raw_table(source, location) -%}
    {%- set relation = source.schema ~ "." ~ source.identifier -%}
    {%- set columns = [] -%}
    {%- for column in source.columns.values() if column.name != 'dt' -%}
        {%- if not column.data_type -%}
            {{ exceptions.raise_compiler_error("source " ~ relation ~ ": column " ~ column.name ~ " declares no data_type") }}
        {%- endif -%}
        {%- do columns.append('`' ~ column.name ~ '` ' ~ spark_type(column.data_type)) -%}
    {%- endfor -%}
    {%- do run_query("create database if not exists " ~ source.schema) -%}
    {%- do run_query("drop table if exists " ~ relation) -%}
    {%- do run_query(
        "create table " ~ relation ~ " (" ~ columns | join(', ') ~ ", dt date)"
        ~ " using parquet partitioned by (dt) location '" ~ location ~ "'"
    ) -%}
    {%- do run_query("msck repair table " ~ relation) -%}
{%- endmacro -%}

{#- spark_type(type): a raw column's declared type (DuckDB's names, as the source yml has them) in Spark's. -#}
{%- macro spark_type(type) -%}
    {%- set type = type | lower | trim -%}
    {%- if type.endswith('[]') -%}
        {{- return('array<' ~ spark_type(type[:-2]) ~ '>') -}}
    {%- endif -%}
    {%- set names = {
        'varchar': 'string', 'text': 'string',
        'timestamp with time zone': 'timestamp', 'timestamptz': 'timestamp', 'timestamp': 'timestamp_ntz',
        'integer': 'int', 'int': 'int', 'bigint': 'bigint', 'smallint': 'smallint',
        'double': 'double', 'float': 'float', 'real': 'float', 'boolean': 'boolean', 'date': 'date',
    } -%}
    {%- if type in names -%}
        {{- return(names[type]) -}}
    {%- elif type.startswith('decimal') -%}
        {{- return(type) -}}
    {%- endif -%}
    {{ exceptions.raise_compiler_error("spark_type: no Spark type for the raw type " ~ type) }}
{%- endmacro -%}
