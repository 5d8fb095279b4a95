"""OTLP/JSON traces as the OpenTelemetry Collector's file exporter writes them.

One ``ExportTraceServiceRequest`` per line: ``resourceSpans[].resource.attributes`` and
``resourceSpans[].scopeSpans[].spans[]``. By the OTLP/JSON encoding: ids are lowercase hex, 64-bit
integers may be strings or numbers, enums are integers (names are accepted too), attributes are
``{key, value: {stringValue|intValue|doubleValue|boolValue|arrayValue|kvlistValue|bytesValue}}``.
The raw table has one row per span, with attributes flattened into a JSON object.
A record is a span; a line that cannot be read as a request at all is one record.
"""

from __future__ import annotations

from .common import (
    FUTURE_TOLERANCE,
    LOAD_COLUMNS,
    decoded_lines_cte,
    json_struct,
    missing,
    not_string,
    quarantine_text,
    reason_case,
)

SPAN_STRUCTURE = {
    "traceId": "JSON", "spanId": "JSON", "parentSpanId": "VARCHAR", "traceState": "VARCHAR",
    "name": "VARCHAR", "kind": "JSON", "startTimeUnixNano": "JSON", "endTimeUnixNano": "JSON",
    "attributes": "JSON", "status": {"code": "JSON", "message": "VARCHAR"}, "events": "JSON",
    "links": "JSON", "flags": "JSON",
}

SPAN_KINDS = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
              "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _enum(field: str, names: dict[str, int]) -> str:
    whens = " ".join(f"when '{name}' then {value}" for name, value in names.items())
    return (
        f"case when json_type({field}) in ('UBIGINT', 'BIGINT') then ({field})::INTEGER "
        f"else (case {field} ->> '$' {whens} end) end"
    )


def _any_value(v: str) -> str:
    """An OTLP AnyValue as a plain JSON value (int64 strings become numbers)."""
    return f"""case
        when json_exists({v}, '$.stringValue') then to_json({v} ->> '$.stringValue')
        when json_exists({v}, '$.intValue') then to_json(try_cast({v} ->> '$.intValue' as BIGINT))
        when json_exists({v}, '$.doubleValue') then json_extract({v}, '$.doubleValue')
        when json_exists({v}, '$.boolValue') then json_extract({v}, '$.boolValue')
        else {v} end"""


def attributes_object(list_sql: str) -> str:
    """OTLP key/value attribute list → JSON object {key: value}."""
    return f"""to_json(map_from_entries(list_transform(
        try(from_json({list_sql}, '[{{"key": "VARCHAR", "value": "JSON"}}]')),
        lambda a: {{'k': a.key, 'v': {_any_value('a.value')}}})))"""


def _nanos(field: str) -> str:
    return f"try_cast({field} ->> '$' as BIGINT)"


LINE_CHECKS = [
    (missing("j.resourceSpans"), "missing_field", "'required field resourceSpans is missing'"),
    ("json_type(j.resourceSpans) <> 'ARRAY'", "wrong_type",
     "'resourceSpans must be a list, got ' || json_type(j.resourceSpans)"),
]

SPAN_CHECKS = [
    (missing("s.traceId"), "missing_field", "'span field traceId is missing'"),
    (f"{not_string('s.traceId')} or not regexp_full_match(s.traceId ->> '$', '[0-9a-fA-F]{{32}}')",
     "wrong_type", "'traceId must be 32 hex digits, got ' || s.traceId"),
    (missing("s.spanId"), "missing_field", "'span field spanId is missing'"),
    (f"{not_string('s.spanId')} or not regexp_full_match(s.spanId ->> '$', '[0-9a-fA-F]{{16}}')",
     "wrong_type", "'spanId must be 16 hex digits, got ' || s.spanId"),
    (f"{missing('s.startTimeUnixNano')} or {missing('s.endTimeUnixNano')}", "missing_field",
     "'span start or end time is missing'"),
    ("start_ns is null or end_ns is null", "invalid_timestamp",
     "'span times must be integers of nanoseconds, got ' || s.startTimeUnixNano || ' and ' || s.endTimeUnixNano"),
    (f"started_at > $dt::DATE + INTERVAL 1 DAY + {FUTURE_TOLERANCE}", "future_timestamp",
     "'span start ' || started_at || ' is more than 24 h after the day it arrived'"),
]

_line_code, _line_text = reason_case(LINE_CHECKS, code_alias="line_code")
_span_code, _span_text = reason_case(SPAN_CHECKS)

SQL = f"""
with {decoded_lines_cte({"resourceSpans": "JSON"})},
checked_lines as (
    select *, {_line_code} as line_code, {_line_text} as line_text
    from parsed
),
resources as (
    select line_no, raw_bytes, r, ri
    from checked_lines,
         unnest(from_json(j.resourceSpans, '["JSON"]')) with ordinality as u(r, ri)
    where line_code is null
),
scopes as (
    select line_no, raw_bytes, ri, json_extract(r, '$.resource.attributes') as resource_attributes, sc, si
    from resources,
         unnest(coalesce(try(from_json(json_extract(r, '$.scopeSpans'), '["JSON"]')), [])) with ordinality as u(sc, si)
),
spans as (
    select
        line_no, raw_bytes, resource_attributes,
        json_extract_string(sc, '$.scope.name') as scope_name,
        json_extract_string(sc, '$.scope.version') as scope_version,
        sp, ri, si, spi
    from scopes,
         unnest(coalesce(try(from_json(json_extract(sc, '$.spans'), '["JSON"]')), [])) with ordinality as u(sp, spi)
),
span_structs as (
    select *, try(from_json(sp, {json_struct(SPAN_STRUCTURE)})) as s
    from spans
),
typed as (
    select
        *,
        {_nanos("s.startTimeUnixNano")} as start_ns,
        {_nanos("s.endTimeUnixNano")} as end_ns,
        make_timestamp(start_ns // 1000)::TIMESTAMPTZ as started_at,
        row_number() over (partition by line_no order by ri, si, spi) - 1 as record_index,
        null as line_reason
    from span_structs
),
span_rows as (
    select
        lower(s.traceId ->> '$') as trace_id,
        lower(s.spanId ->> '$') as span_id,
        lower(nullif(s.parentSpanId, '')) as parent_span_id,
        s.traceState as trace_state,
        s.name as span_name,
        {_enum("s.kind", SPAN_KINDS)} as kind,
        start_ns as start_time_unix_nano,
        end_ns as end_time_unix_nano,
        started_at,
        (end_ns - start_ns) / 1e6 as duration_ms,
        coalesce({_enum("s.status.code", STATUS_CODES)}, 0) as status_code,
        s.status.message as status_message,
        {attributes_object("s.attributes")}::VARCHAR as attributes,
        {attributes_object("resource_attributes")}::VARCHAR as resource_attributes,
        scope_name,
        scope_version,
        coalesce(json_array_length(s.events), 0) as event_count,
        raw_bytes as _raw_bytes,
        {LOAD_COLUMNS},
        record_index as _record_index,
        {_span_code} as _reason_code,
        {_span_text} as _reason,
        {quarantine_text('sp')} as _raw_text
    from typed
),
line_rows as (
    select
        null::VARCHAR as trace_id, null::VARCHAR as span_id, null::VARCHAR as parent_span_id,
        null::VARCHAR as trace_state, null::VARCHAR as span_name, null::INTEGER as kind,
        null::BIGINT as start_time_unix_nano, null::BIGINT as end_time_unix_nano,
        null::TIMESTAMPTZ as started_at, null::DOUBLE as duration_ms, null::INTEGER as status_code,
        null::VARCHAR as status_message, null::VARCHAR as attributes,
        null::VARCHAR as resource_attributes, null::VARCHAR as scope_name, null::VARCHAR as scope_version,
        null::BIGINT as event_count,
        raw_bytes as _raw_bytes,
        {LOAD_COLUMNS},
        null::BIGINT as _record_index,
        line_code as _reason_code,
        line_text as _reason,
        {quarantine_text()} as _raw_text
    from checked_lines
    where line_code is not null
)
select * from span_rows
union all by name
select * from line_rows
"""
