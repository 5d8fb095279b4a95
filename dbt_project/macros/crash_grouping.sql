{#-
    The one definition of a crash group, as Sentry's default grouping has it. stg_crashes calls these macros, and
    the near-real-time crash rules (orchestration/alerts/crashes.py) render the same file with plain Jinja to
    group raw crashes the same way. So they use no dbt context (no adapter, no other macros): a caller passes its
    own dialect's length and join of the fingerprint list.
-#}

{#- The default grouping key, in Sentry's order of precedence: the exception and its crashing in-app frame,
    else the exception alone, else the message; an event with nothing to group on is a group of its own. -#}
{%- macro crash_default_grouping_key(exception_type='exception_type', exception_value='exception_value',
                                    crash_frame='crash_frame', message='message', event_id='event_id') -%}
    case
        when {{ exception_type }} is not null and {{ crash_frame }} is not null
            then {{ exception_type }} || '|' || {{ crash_frame }}
        when {{ exception_type }} is not null or {{ exception_value }} is not null
            then coalesce({{ exception_type }}, '') || '|' || coalesce({{ exception_value }}, '')
        when {{ message }} is not null then {{ message }}
        else 'event:' || {{ event_id }}
    end
{%- endmacro -%}

{#- The grouping key: a custom fingerprint wins; Sentry's marker "{{ default }}" inside it stands for the default
    grouping key. -#}
{%- macro crash_grouping_key(fingerprint_length, fingerprint_joined, default_grouping_key='default_grouping_key') -%}
    {%- set default_marker = "'{{ default }}'" -%}
    case
        when {{ fingerprint_length }} > 0 and {{ fingerprint_joined }} <> {{ default_marker }}
            then replace({{ fingerprint_joined }}, {{ default_marker }}, {{ default_grouping_key }})
        else {{ default_grouping_key }}
    end
{%- endmacro -%}
