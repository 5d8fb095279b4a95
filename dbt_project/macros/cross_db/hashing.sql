{#- sha256(expr): lowercase hex SHA-256 of a string (md5 is dbt.hash). -#}

{%- macro sha256(expr) -%}
    {{ return(adapter.dispatch('sha256', 'pitwall')(expr)) }}
{%- endmacro -%}

{%- macro duckdb__sha256(expr) -%}
    sha256({{ expr }})
{%- endmacro -%}

{%- macro spark__sha256(expr) -%}
    sha2({{ expr }}, 256)
{%- endmacro -%}

{%- macro default__sha256(expr) -%}
    sha256({{ expr }})
{%- endmacro -%}
