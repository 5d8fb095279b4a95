{#-
    json_str(column, key): the value at `key` of a JSON object held as text, as a string
    (objects and arrays come back as their JSON text; a missing key gives null).

    `key` is either one key, taken literally even when it contains dots (OpenTelemetry attribute names
    such as 'http.route'), or a list of keys for a nested path: json_str('context', ['app', 'name']).
-#}

{%- macro json_str(column, key) -%}
    {%- set keys = [key] if key is string else (key | list) -%}
    {%- for k in keys if ("'" in k or '"' in k or '\\' in k) -%}
        {{ exceptions.raise_compiler_error("json_str: quotes and backslashes in JSON keys are not supported: " ~ k) }}
    {%- endfor -%}
    {{ return(adapter.dispatch('json_str', 'pitwall')(column, keys)) }}
{%- endmacro -%}

{#- DuckDB: JSONPath with every key double-quoted: $."http.route", $."app"."name". -#}
{%- macro duckdb__json_str(column, keys) -%}
    json_extract_string({{ column }}, '${% for k in keys %}."{{ k }}"{% endfor %}')
{%- endmacro -%}

{#- Spark (and Hive): get_json_object with bracket notation, so dots inside keys stay literal: $['http.route']. -#}
{%- macro default__json_str(column, keys) -%}
    get_json_object({{ column }}, '${% for k in keys %}[\'{{ k }}\']{% endfor %}')
{%- endmacro -%}
