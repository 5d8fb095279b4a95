{#-
    platform_from_os(os_name, device_type=none): the one definition of a device's platform, used for
    events, crashes and spans alike: 'ios' (iOS, iPadOS, "iPhone OS"), 'android', or any other name in
    lower case. The OS name wins; the device type (Segment's context.device.type) is the fallback.
    Plain SQL, the same on every engine.
-#}

{%- macro platform_from_os(os_name, device_type=none) -%}
    {%- set name = "lower(trim(" ~ (("coalesce(" ~ os_name ~ ", " ~ device_type ~ ")") if device_type else os_name) ~ "))" -%}
    case
        when {{ name }} in ('ios', 'ipados', 'iphone os') then 'ios'
        when {{ name }} = 'android' then 'android'
        else nullif({{ name }}, '')
    end
{%- endmacro -%}
