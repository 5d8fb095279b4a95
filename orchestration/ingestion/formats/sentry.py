"""Sentry events, one JSON per line (the ``event`` items of the envelopes an SDK sends).

By the Sentry event payload spec: ``timestamp`` is an RFC 3339 string or a number of epoch seconds;
``exception`` is ``{"values": [...]}`` (or, in old SDKs, the list itself) and the last value is the
exception that was raised; stack frames are ordered oldest first, so the crashing frame is the last
in-app frame (the last frame of all when none is marked in-app); ``tags`` is an object or a list of
``[key, value]`` pairs. The grouping inputs (custom fingerprint, exception type and value, crashing
frame) are extracted here; the group id itself is derived in dbt (``stg_crashes``).
"""

from __future__ import annotations

from .common import (
    FUTURE_TOLERANCE,
    LOAD_COLUMNS,
    decoded_lines_cte,
    missing,
    not_object,
    not_string,
    quarantine_text,
    reason_case,
)

STRUCTURE = {
    key: "JSON"
    for key in (
        "event_id", "timestamp", "received", "level", "platform", "release", "dist", "environment",
        "message", "logentry", "user", "tags", "contexts", "exception", "fingerprint", "sdk",
        "transaction",
    )
}

FRAME = '[{"module": "VARCHAR", "function": "VARCHAR", "filename": "VARCHAR", "abs_path": "VARCHAR", "lineno": "BIGINT", "in_app": "BOOLEAN"}]'


def _sentry_time(field: str) -> str:
    return (
        f"case when left({field}, 1) in ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9') "
        f"then to_timestamp(({field})::DOUBLE) "
        f"else try_cast({field} ->> '$' as timestamptz) end"
    )


CHECKS = [
    (missing("j.event_id"), "missing_field", "'required field event_id is missing'"),
    (not_string("j.event_id"), "wrong_type", "'event_id must be a string, got ' || json_type(j.event_id)"),
    (missing("j.timestamp"), "missing_field", "'required field timestamp is missing'"),
    ("occurred_at is null", "invalid_timestamp",
     "'timestamp is neither an RFC 3339 time nor epoch seconds: ' || j.timestamp"),
    (not_object("j.contexts"), "wrong_type", "'contexts must be an object, got ' || json_type(j.contexts)"),
    (f"(not {missing('j.exception')} and left(j.exception, 1) not in ('{{', '['))", "wrong_type",
     "'exception must be an object or a list, got ' || json_type(j.exception)"),
    (f"occurred_at > coalesce(received_at, $dt::DATE + INTERVAL 1 DAY) + {FUTURE_TOLERANCE}", "future_timestamp",
     "'crash time ' || occurred_at || ' is more than 24 h after it arrived'"),
]

_code, _text = reason_case(CHECKS)

SQL = f"""
with {decoded_lines_cte(STRUCTURE)},
typed as (
    select
        *,
        {_sentry_time("j.timestamp")} as occurred_at,
        {_sentry_time("j.received")} as received_at,
        case when json_type(j.exception) = 'ARRAY' then j.exception
             else json_extract(j.exception, '$.values') end as exception_values,
        case when json_type(j.tags) = 'ARRAY'
             then to_json(map_from_entries(list_transform(
                    try(from_json(j.tags, '[["VARCHAR"]]')), lambda p: {{'k': p[1], 'v': p[2]}})))
             else j.tags end as tags_object
    from parsed
),
main_exception as (
    select
        *,
        json_extract(exception_values, '$[#-1]') as exc,
        try(from_json(json_extract(json_extract(exception_values, '$[#-1]'), '$.stacktrace.frames'), '{FRAME}')) as frames
    from typed
),
crash_frame as (
    select
        *,
        coalesce(list_filter(frames, lambda f: f.in_app)[-1], frames[-1]) as top_frame
    from main_exception
)
select
    j.event_id ->> '$' as event_id,
    occurred_at,
    received_at,
    j.level ->> '$' as level,
    j.platform ->> '$' as sdk_platform,
    j.release ->> '$' as release,
    j.dist ->> '$' as dist,
    j.environment ->> '$' as environment,
    coalesce(json_extract_string(j.logentry, '$.formatted'), json_extract_string(j.message, '$.formatted'),
             j.message ->> '$') as message,
    coalesce(json_extract_string(j.user, '$.id'), json_extract_string(j.user, '$.username')) as user_id,
    tags_object::VARCHAR as tags,
    j.contexts::VARCHAR as contexts,
    exc ->> '$.type' as exception_type,
    exc ->> '$.value' as exception_value,
    exc ->> '$.module' as exception_module,
    json_extract_string(exc, '$.mechanism.handled')::BOOLEAN as exception_handled,
    -- Sentry names a frame by module (or file, where there are no modules) and function.
    case when top_frame is not null
         then coalesce(top_frame.module, top_frame.filename, top_frame.abs_path, '?') || '.' || coalesce(top_frame.function, '?')
    end as crash_frame,
    len(list_filter(frames, lambda f: f.in_app)) as in_app_frame_count,
    case when json_type(j.fingerprint) = 'ARRAY' then try(from_json(j.fingerprint, '["VARCHAR"]')) end as fingerprint,
    j.transaction ->> '$' as transaction,
    json_extract_string(j.sdk, '$.name') as sdk_name,
    json_extract_string(j.sdk, '$.version') as sdk_version,
    raw_bytes as _raw_bytes,
    {LOAD_COLUMNS},
    {_code} as _reason_code,
    {_text} as _reason,
    {quarantine_text()} as _raw_text
from crash_frame
"""
