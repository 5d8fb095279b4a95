{#- url_path(url): the path of an absolute URL (no query, no fragment); null when there is none. Same regex on both engines. -#}

{%- macro url_path(url) -%}
    nullif(regexp_extract({{ url }}, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)', 1), '')
{%- endmacro -%}


{#-
    url_path_template(path): a low-cardinality route from a concrete path, as OpenTelemetry wants for
    http.route: every segment that is a number, a UUID, or a hex string of 8+ characters with a digit
    becomes {id}. '/v1/jobs/123/complete' → '/v1/jobs/{id}/complete'.
-#}

{%- macro url_path_template(path) -%}
    {{ return(adapter.dispatch('url_path_template', 'pitwall')(path)) }}
{%- endmacro -%}

{%- macro _id_segment_patterns() -%}
    {{ return({
        'number': '^[0-9]+$',
        'uuid': '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
        'hex': '^[0-9a-fA-F]{8,}$',
    }) }}
{%- endmacro -%}

{%- macro duckdb__url_path_template(path) -%}
    {%- set p = _id_segment_patterns() -%}
    array_to_string(list_transform(string_split({{ path }}, '/'), lambda seg: case
        when regexp_matches(seg, '{{ p.number }}') or regexp_matches(seg, '{{ p.uuid }}')
            or (regexp_matches(seg, '{{ p.hex }}') and regexp_matches(seg, '[0-9]')) then '{id}'
        else seg end), '/')
{%- endmacro -%}

{%- macro spark__url_path_template(path) -%}
    {%- set p = _id_segment_patterns() -%}
    array_join(transform(split({{ path }}, '/'), seg -> case
        when seg rlike '{{ p.number }}' or seg rlike '{{ p.uuid }}'
            or (seg rlike '{{ p.hex }}' and seg rlike '[0-9]') then '{id}'
        else seg end), '/')
{%- endmacro -%}
