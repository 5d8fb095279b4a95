"""OTLP/JSON traces as the OpenTelemetry Collector's file exporter writes them.

One ``ExportTraceServiceRequest`` per line: ``resourceSpans[].resource.attributes`` and
``resourceSpans[].scopeSpans[].spans[]``. By the OTLP/JSON encoding: ids are lowercase hex, 64-bit
integers may be strings or numbers, enums are integers (names are accepted too), attributes are
``{key, value: {stringValue|intValue|doubleValue|boolValue|arrayValue|kvlistValue|bytesValue}}``.
The raw table has one row per span, with attributes flattened into a JSON object.
A record is a span; a line that cannot be read as a request at all is one record.

Each line is parsed once, into the whole nested request (resources, scopes, spans, attributes typed
by ``REQUEST``); every span is then a list element, so nothing is parsed twice. Fields whose JSON kind
is checked (ids, times, enums) are kept as JSON text. The line's text is used only at the line level
(a line holds a whole request, tens of kilobytes): span rows never carry it. The JSON text of a rejected
span (for the quarantine) is cut out of its line afterwards, by ``REJECTED_SQL``, for rejected spans
only. The query reads ``lines`` once and keeps no state across lines (no window, no union), so it
streams: a file can be fed in batches of lines.
"""

from __future__ import annotations

from .common import (
    FUTURE_TOLERANCE,
    LOAD_COLUMNS,
    MAX_PAYLOAD_BYTES,
    QUARANTINE_TEXT_CHARS,
    RAW_TEXT_PATH,
    TRUNCATED_TEXT,
    json_struct,
    missing,
    not_string,
    reason_case,
)

# An AnyValue: exactly one of these is set. Scalars come out as what they are in JSON; arrays,
# key/value lists and bytes stay JSON (kept as the value object, as before).
ANY_VALUE = {
    "stringValue": "VARCHAR", "intValue": "VARCHAR", "doubleValue": "JSON", "boolValue": "JSON",
    "arrayValue": "JSON", "kvlistValue": "JSON", "bytesValue": "JSON",
}
KEY_VALUES = [{"key": "VARCHAR", "value": ANY_VALUE}]
SPAN = {
    "traceId": "JSON", "spanId": "JSON", "parentSpanId": "VARCHAR", "traceState": "VARCHAR",
    "name": "VARCHAR", "kind": "JSON", "startTimeUnixNano": "JSON", "endTimeUnixNano": "JSON",
    "attributes": KEY_VALUES, "status": {"code": "JSON", "message": "VARCHAR"},
    # only counted: the cheapest element type that any event object converts to
    "events": [{"name": "VARCHAR"}],
}
REQUEST = {
    "resourceSpans": [{
        "resource": {"attributes": KEY_VALUES},
        "scopeSpans": [{"scope": {"name": "VARCHAR", "version": "VARCHAR"}, "spans": [SPAN]}],
    }],
}

SPAN_KINDS = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
              "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _enum(field: str, names: dict[str, int]) -> str:
    """An enum kept as JSON text: an integer, or its name as a string."""
    whens = " ".join(f"when '\"{name}\"' then {value}" for name, value in names.items())
    return (
        f"case when regexp_full_match({field}, '-?[0-9]+') then try_cast({field} as INTEGER) "
        f"else (case {field} {whens} end) end"
    )


def _any_value(v: str) -> str:
    """An OTLP AnyValue (parsed to ``ANY_VALUE``) as JSON text of a plain value (int64 strings become
    numbers); an array, key/value list or bytes value stays the value object."""
    return f"""case
        when {v}.stringValue is not null then to_json({v}.stringValue)::VARCHAR
        when {v}.intValue is not null then coalesce(try_cast({v}.intValue as BIGINT)::VARCHAR, 'null')
        when {v}.doubleValue is not null then {v}.doubleValue::VARCHAR
        when {v}.boolValue is not null then {v}.boolValue::VARCHAR
        when {v}.arrayValue is not null then '{{"arrayValue":' || {v}.arrayValue || '}}'
        when {v}.kvlistValue is not null then '{{"kvlistValue":' || {v}.kvlistValue || '}}'
        when {v}.bytesValue is not null then '{{"bytesValue":' || {v}.bytesValue || '}}'
        else '{{}}' end"""


def attributes_object(list_sql: str) -> str:
    """A parsed OTLP key/value list → the text of a JSON object {key: value} (null when absent)."""
    return f"""case when {list_sql} is not null then '{{' || array_to_string(list_transform({list_sql},
        lambda a: to_json(a.key) || ':' || {_any_value('a.value')}), ',') || '}}' end"""


def _nanos(field: str) -> str:
    return f"try_cast({field} ->> '$' as BIGINT)"


# resourceSpans parses to null when it is absent, null or not a list: only then is the line looked at again.
_RESOURCE_SPANS_TYPE = "json_type(txt, '$.resourceSpans')"
LINE_CHECKS = [
    (f"(case when j.resourceSpans is not null then false else coalesce({_RESOURCE_SPANS_TYPE}, 'NULL') = 'NULL' end)",
     "missing_field", "'required field resourceSpans is missing'"),
    ("j.resourceSpans is null", "wrong_type", f"'resourceSpans must be a list, got ' || {_RESOURCE_SPANS_TYPE}"),
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


def _line_reason_case() -> tuple[str, str]:
    """Reasons of a line that yields no spans: unreadable, cut, or not a request."""
    code = [
        "case when cut_reason is not null then 'truncated_file'",
        "when txt is null then 'invalid_utf8'",
        f"when raw_bytes > {MAX_PAYLOAD_BYTES} then 'oversized_payload'",
        "when j is null then 'invalid_json'",
    ]
    text = [
        "case when line_code is null then null",
        f"when line_code = 'truncated_file' then {TRUNCATED_TEXT}",
        "when line_code = 'invalid_utf8' then 'line is not valid UTF-8'",
        f"when line_code = 'oversized_payload' then 'line is ' || raw_bytes || ' bytes, over the {MAX_PAYLOAD_BYTES} byte limit'",
        "when line_code = 'invalid_json' then 'line is not a JSON object'",
    ]
    for condition, reason_code, reason_text in LINE_CHECKS:
        code.append(f"when {condition} then '{reason_code}'")
        text.append(f"when line_code = '{reason_code}' then {reason_text}")
    return "\n        ".join(code) + " end", "\n        ".join(text) + " end"


_line_code, _line_text = _line_reason_case()
_span_code, _span_text = reason_case(SPAN_CHECKS, line_texts=False)  # line reasons are worded per line

# The columns of a line: its text is needed only here, for the line's own checks, and for the reason and
# raw text of a line that is rejected whole. Spans never carry it (a line holds a whole request).
_LINE_COLUMNS = "line_no, raw_bytes, line_code, line_reason_text, line_raw_text"

SQL = f"""
with decoded as (
    select line_no, raw_bytes, cut_reason, try(decode(raw)) as txt
    from lines
),
parsed as (
    select
        line_no, raw_bytes, cut_reason, txt,
        case
            when cut_reason is not null or txt is null or raw_bytes > {MAX_PAYLOAD_BYTES} then null
            when left(ltrim(txt), 1) <> '{{' then null
            else try(from_json(txt, {json_struct(REQUEST)}))
        end as j
    from decoded
),
line_codes as (
    select line_no, raw_bytes, cut_reason, txt, j, {_line_code} as line_code
    from parsed
),
checked_lines as (
    select
        line_no, raw_bytes, line_code,
        case when line_code is not null then {_line_text} end as line_reason_text,
        case when line_code is not null then left(rtrim(txt, chr(10) || chr(13)), {QUARANTINE_TEXT_CHARS}) end
            as line_raw_text,
        -- A line with a reason goes through every level as the one-element list [null]: it stays one
        -- record, with no span, and no union is needed.
        case when line_code is null then j.resourceSpans else [null] end as resources,
        -- spans per resource, for each span's index in its line
        list_transform(j.resourceSpans,
                       lambda r: list_sum(list_transform(r.scopeSpans, lambda sc: len(sc.spans)))) as resource_counts
    from line_codes
),
-- One level per step (DuckDB unnests one level at a time); each level is unnested once.
resources as (
    select
        {_LINE_COLUMNS}, resource_counts,
        unnest(resources) as r, generate_subscripts(resources, 1) as ri
    from checked_lines
),
scope_lists as (
    select
        {_LINE_COLUMNS}, ri,
        -- flattened once per resource, not once per span
        {attributes_object('r.resource.attributes')} as resource_attributes,
        coalesce(list_sum(resource_counts[:ri - 1]), 0) as resource_base,
        case when line_code is null then r.scopeSpans else [null] end as scopes,
        list_transform(r.scopeSpans, lambda sc: len(sc.spans)) as scope_counts
    from resources
),
scopes as (
    select
        * exclude (scopes),
        unnest(scopes) as sc, generate_subscripts(scopes, 1) as si
    from scope_lists
),
span_lists as (
    select
        {_LINE_COLUMNS}, ri, si, resource_attributes,
        sc.scope.name as scope_name, sc.scope.version as scope_version,
        resource_base + coalesce(list_sum(scope_counts[:si - 1]), 0) as scope_base,
        case when line_code is null then sc.spans else [null] end as spans
    from scopes
),
spans as (
    select
        * exclude (spans),
        unnest(spans) as s, generate_subscripts(spans, 1) as spi
    from span_lists
),
typed as (
    select
        *,
        {_nanos("s.startTimeUnixNano")} as start_ns,
        {_nanos("s.endTimeUnixNano")} as end_ns,
        make_timestamp(start_ns // 1000)::TIMESTAMPTZ as started_at,
        case when line_code is null then (scope_base + spi - 1)::BIGINT end as record_index,
        line_code as line_reason
    from spans
),
span_rows as (
    select
        *,
        {_span_code} as _reason_code
    from typed
)
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
    case when line_code is null then coalesce({_enum("s.status.code", STATUS_CODES)}, 0) end as status_code,
    s.status.message as status_message,
    {attributes_object("s.attributes")} as attributes,
    resource_attributes,
    scope_name,
    scope_version,
    case when line_code is null then coalesce(len(s.events), 0) end::DOUBLE as event_count,
    raw_bytes as _raw_bytes,
    {LOAD_COLUMNS},
    record_index as _record_index,
    _reason_code,
    case when _reason_code is null then null
         when line_code is not null then line_reason_text
         else {_span_text} end as _reason,
    line_raw_text as _raw_text,
    -- where a rejected span is in its line (1-based resource, scope, span): REJECTED_SQL cuts its text out
    case when _reason_code is not null and line_code is null then [ri, si, spi]::INTEGER[] end as {RAW_TEXT_PATH}
from span_rows
"""

# The JSON text of rejected spans: ``rejected`` holds the rejected rows whose ``RAW_TEXT_PATH`` is set (the
# quarantine's columns), ``lines`` at least the lines they come from. Each of those lines is parsed once,
# into its spans' JSON texts (as ``json_extract`` writes them), however many of its spans were rejected.
SPAN_TEXTS = {"resourceSpans": [{"scopeSpans": [{"spans": ["JSON"]}]}]}
REJECTED_SQL = f"""
with cut as (
    select line_no, try(from_json(try(decode(raw)), {json_struct(SPAN_TEXTS)})).resourceSpans as resources
    from lines
    where line_no in (select _line_no from rejected)
)
select
    r.* exclude ({RAW_TEXT_PATH}) replace (
        left(c.resources[r.{RAW_TEXT_PATH}[1]].scopeSpans[r.{RAW_TEXT_PATH}[2]].spans[r.{RAW_TEXT_PATH}[3]]::VARCHAR,
             {QUARANTINE_TEXT_CHARS}) as _raw_text)
from rejected r
join cut c on c.line_no = r._line_no
"""
