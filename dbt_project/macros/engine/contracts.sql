{#-
    Model contracts on Spark. Contracts (and source columns) declare their types once, in DuckDB's names
    (varchar, timestamp with time zone, varchar[] …). dbt checks a contract by casting nulls to the
    declared types and comparing the result's schema with the model's: on Spark the declared types are
    first translated (spark_type, macros/engine/raw_tables.sql), so one contract holds on both engines.
-#}
{% macro spark__get_empty_schema_sql(columns) %}
    {%- set translated = {} -%}
    {%- for name, column in columns.items() -%}
        {%- set copy = column.copy() if column is mapping else column.to_dict() -%}
        {%- if copy.get('data_type') -%}
            {%- do copy.update({'data_type': spark_type(copy['data_type'])}) -%}
        {%- endif -%}
        {%- do translated.update({name: copy}) -%}
    {%- endfor -%}
    {{ return(default__get_empty_schema_sql(translated)) }}
{% endmacro %}
