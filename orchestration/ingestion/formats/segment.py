"""Segment Spec events (Segment's S3 destination layout; RudderStack writes the same spec).

One JSON object per line. The event time corrected for the device clock is computed here, once, as
Segment does: ``receivedAt - (sentAt - originalTimestamp)``; Segment itself stores the device time in
``originalTimestamp`` and the corrected time in ``timestamp``, while SDK payloads captured at a
collector only have ``timestamp`` (the device time). Either way the formula below gives the same.
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

SPEC_TYPES = ("track", "screen", "page", "identify", "group", "alias")

# Fields whose JSON kind is checked stay JSON text; the rest are read as text in the same single parse
# (a number where a string is expected comes through as its digits, as Segment itself accepts).
JSON_FIELDS = ("messageId", "type", "event", "context", "properties", "traits")
TEXT_FIELDS = ("name", "category", "userId", "anonymousId", "groupId", "previousId", "timestamp",
               "originalTimestamp", "sentAt", "receivedAt", "channel")
STRUCTURE = {**{k: "JSON" for k in JSON_FIELDS}, **{k: "VARCHAR" for k in TEXT_FIELDS}}

# The context fields every event carries (Segment Spec "Context" and the mobile SDKs' additions), typed
# once here so staging does not re-parse the context JSON of every event. `context` itself stays whole.
CONTEXT_FIELDS = {
    "context_session_id": ("sessionId",),
    "context_app_name": ("app", "name"),
    "context_app_namespace": ("app", "namespace"),
    "context_app_version": ("app", "version"),
    "context_app_build": ("app", "build"),
    "context_os_name": ("os", "name"),
    "context_os_version": ("os", "version"),
    "context_device_id": ("device", "id"),
    "context_device_model": ("device", "model"),
    "context_device_type": ("device", "type"),
    "context_device_manufacturer": ("device", "manufacturer"),
    "context_library_name": ("library", "name"),
    "context_library_version": ("library", "version"),
    "context_locale": ("locale",),
    "context_timezone": ("timezone",),
}
_context_paths = "[" + ", ".join("'$." + ".".join(f'"{k}"' for k in path) + "'" for path in CONTEXT_FIELDS.values()) + "]"
_context_columns = ",\n    ".join(f"context_values[{i + 1}] as {name}" for i, name in enumerate(CONTEXT_FIELDS))

_device_time = "coalesce(original_timestamp, timestamp)"

CHECKS = [
    (missing("j.messageId"), "missing_field", "'required field messageId is missing'"),
    (not_string("j.messageId"), "wrong_type", "'messageId must be a string, got ' || json_type(j.messageId)"),
    (missing("j.type"), "missing_field", "'required field type is missing'"),
    (not_string("j.type"), "wrong_type", "'type must be a string, got ' || json_type(j.type)"),
    (f"{missing('j.timestamp')} and {missing('j.originalTimestamp')}", "missing_field",
     "'required field timestamp is missing'"),
    (missing("j.receivedAt"), "missing_field", "'required field receivedAt is missing'"),
    (f"{missing('j.userId')} and {missing('j.anonymousId')}", "missing_field",
     "'one of userId or anonymousId is required'"),
    ("(type = 'track' and " + missing("j.event") + ")", "missing_field", "'a track call needs event'"),
    (f"(not {missing('j.event')} and {not_string('j.event')})", "wrong_type",
     "'event must be a string, got ' || json_type(j.event)"),
    (not_object("j.context"), "wrong_type", "'context must be an object, got ' || json_type(j.context)"),
    (not_object("j.properties"), "wrong_type", "'properties must be an object, got ' || json_type(j.properties)"),
    (not_object("j.traits"), "wrong_type", "'traits must be an object, got ' || json_type(j.traits)"),
    (f"{_device_time} is null", "invalid_timestamp",
     "'timestamp is not an RFC 3339 time: ' || coalesce(j.originalTimestamp, j.timestamp)"),
    ("received_at is null", "invalid_timestamp", "'receivedAt is not an RFC 3339 time: ' || j.receivedAt"),
    ("(j.sentAt is not null and sent_at is null)", "invalid_timestamp",
     "'sentAt is not an RFC 3339 time: ' || j.sentAt"),
    (f"type not in {SPEC_TYPES}", "unknown_event_type",
     "'type ' || type || ' is not a Segment Spec call (track, screen, page, identify, group, alias)'"),
    (f"occurred_at > received_at + {FUTURE_TOLERANCE}", "future_timestamp",
     "'event time ' || occurred_at || ' is more than 24 h after it was received (' || received_at || ')'"),
]

_code, _text = reason_case(CHECKS)

SQL = f"""
with {decoded_lines_cte(STRUCTURE)},
typed as (
    select
        *,
        j.messageId ->> '$' as message_id,
        j.type ->> '$' as type,
        try_cast(j.timestamp as timestamptz) as timestamp,
        try_cast(j.originalTimestamp as timestamptz) as original_timestamp,
        try_cast(j.sentAt as timestamptz) as sent_at,
        try_cast(j.receivedAt as timestamptz) as received_at
    from parsed
),
corrected as (
    select
        *,
        -- Segment's clock-skew correction; without sentAt the device time is all there is.
        case
            when sent_at is not null then received_at - (sent_at - {_device_time})
            else {_device_time}
        end as occurred_at,
        -- one parse of the context object for all its fields (a build or version may be a number)
        json_extract_string(j.context, {_context_paths}) as context_values
    from typed
)
select
    message_id,
    type,
    j.event ->> '$' as event,
    j.name as name,
    j.category as category,
    j.userId as user_id,
    j.anonymousId as anonymous_id,
    j.groupId as group_id,
    j.previousId as previous_id,
    timestamp,
    original_timestamp,
    sent_at,
    received_at,
    occurred_at,
    {_context_columns},
    j.context::VARCHAR as context,
    j.properties::VARCHAR as properties,
    -- identify traits: top level in Segment's SDKs, under context.traits in RudderStack's
    coalesce(j.traits, json_extract(j.context, '$.traits'))::VARCHAR as traits,
    j.channel as channel,
    raw_bytes as _raw_bytes,
    {LOAD_COLUMNS},
    {_code} as _reason_code,
    {_text} as _reason,
    {quarantine_text()} as _raw_text
from corrected
"""
