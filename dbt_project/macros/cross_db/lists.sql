{#-
    Lists (DuckDB) / arrays (Spark). Mind the silent difference: Spark indexes arrays from 0 with [],
    DuckDB from 1; these macros never use [] so callers need not care.
-#}

{#- list_length(list): number of elements, a bigint (null for a null list). -#}
{%- macro list_length(list) -%}
    {{ return(adapter.dispatch('list_length', 'pitwall')(list)) }}
{%- endmacro -%}

{%- macro duckdb__list_length(list) -%} len({{ list }}) {%- endmacro -%}
{%- macro spark__list_length(list) -%} cast(size({{ list }}) as bigint) {%- endmacro -%}
{%- macro default__list_length(list) -%} cardinality({{ list }}) {%- endmacro -%}


{#- list_last(list): the last element (null for an empty or null list). -#}
{%- macro list_last(list) -%}
    {{ return(adapter.dispatch('list_last', 'pitwall')(list)) }}
{%- endmacro -%}

{%- macro duckdb__list_last(list) -%} list_extract({{ list }}, -1) {%- endmacro -%}
{%- macro spark__list_last(list) -%} try_element_at({{ list }}, -1) {%- endmacro -%}
{%- macro default__list_last(list) -%} {{ list }}[cardinality({{ list }})] {%- endmacro -%}


{#- list_join(list, separator): the string elements joined by a separator. -#}
{%- macro list_join(list, separator) -%}
    {{ return(adapter.dispatch('list_join', 'pitwall')(list, separator)) }}
{%- endmacro -%}

{%- macro duckdb__list_join(list, separator) -%} array_to_string({{ list }}, {{ separator }}) {%- endmacro -%}
{%- macro spark__list_join(list, separator) -%} array_join({{ list }}, {{ separator }}) {%- endmacro -%}
{%- macro default__list_join(list, separator) -%} array_to_string({{ list }}, {{ separator }}) {%- endmacro -%}


{#- list_min(list): the smallest element. -#}
{%- macro list_min(list) -%}
    {{ return(adapter.dispatch('list_min', 'pitwall')(list)) }}
{%- endmacro -%}

{%- macro duckdb__list_min(list) -%} list_min({{ list }}) {%- endmacro -%}
{%- macro spark__list_min(list) -%} array_min({{ list }}) {%- endmacro -%}
{%- macro default__list_min(list) -%} array_min({{ list }}) {%- endmacro -%}


{#- split_to_list(expr, separator): a string cut at every occurrence of a literal separator, as a list.
    Spark's split takes a regular expression: the separator is quoted (\Q…\E) so '|' means '|'. -#}
{%- macro split_to_list(expr, separator) -%}
    {{ return(adapter.dispatch('split_to_list', 'pitwall')(expr, separator)) }}
{%- endmacro -%}

{%- macro duckdb__split_to_list(expr, separator) -%} string_split({{ expr }}, '{{ separator }}') {%- endmacro -%}
{%- macro spark__split_to_list(expr, separator) -%} split({{ expr }}, '\\Q{{ separator }}\\E') {%- endmacro -%}
{%- macro default__split_to_list(expr, separator) -%} string_to_array({{ expr }}, '{{ separator }}') {%- endmacro -%}
