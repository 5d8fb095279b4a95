"""SQL pieces shared by the JSON-lines formats.

Every format's SQL reads the registered Arrow table or stream ``lines`` (line_no, raw, raw_bytes,
cut_reason) and yields one row per record with the format's typed columns plus ``_reason_code``/``_reason``
(null when the record is good) and ``_raw_text`` (a rejected record's text; see ``RAW_TEXT_PATH`` for
formats with many records per line). ``cut_reason`` is set only on the last line of a damaged file (why
the file ends early). The checks run in a fixed order so that each bad record gets exactly one reason:
truncated_file, invalid_utf8, oversized_payload, invalid_json, then the format's field checks.
The SQL reads ``lines`` once and keeps nothing across lines, so it streams over batches of lines.
"""

from __future__ import annotations

import json

MAX_PAYLOAD_BYTES = 1 << 20  # 1 MiB per line: more is a broken client, not an event
QUARANTINE_TEXT_CHARS = 1 << 16  # keep 64 KiB of a rejected line; the pointer (file, line) has the rest
FUTURE_TOLERANCE_HOURS = 24
FUTURE_TOLERANCE = f"INTERVAL {FUTURE_TOLERANCE_HOURS} HOUR"
TRUNCATED_TEXT = "cut_reason || ': the line is cut and the rest of the file is lost'"
# A helper column of formats whose record is a part of its line (an OTLP span): for a rejected record, where
# its JSON text is in the line. The source's ``rejected_sql`` turns it into ``_raw_text`` for those rows
# only, so the query over every record never touches the line's text. Neither raw nor quarantine keeps it.
RAW_TEXT_PATH = "_raw_text_path"



def load_columns(line_no: str = "line_no") -> str:
    """Load metadata every raw row carries: where it came from and when it was ingested."""
    return f"""
    $landing_path::VARCHAR as _landing_path,
    {line_no} as _line_no,
    $ingested_at::TIMESTAMPTZ as _ingested_at
"""


LOAD_COLUMNS = load_columns()


def json_struct(spec: dict) -> str:
    """A DuckDB ``from_json`` structure literal, e.g. ``{"a": "JSON"}``, quoted for SQL."""
    return "'" + json.dumps(spec).replace("'", "''") + "'"


def decoded_lines_cte(structure: dict) -> str:
    """CTE ``decoded``: the line as text, parsed once into ``j`` with the given structure.

    Fields wanted as ``JSON`` keep their JSON text so that their type can be checked (``from_json``
    silently turns a wrongly typed field into NULL, which would hide the problem).
    """
    return f"""
decoded as (
    select
        line_no,
        raw_bytes,
        cut_reason,
        try(decode(raw)) as txt
    from lines
),
parsed as (
    select
        line_no,
        raw_bytes,
        cut_reason,
        txt,
        case
            when cut_reason is not null or txt is null or raw_bytes > {MAX_PAYLOAD_BYTES} then null
            when left(ltrim(txt), 1) <> '{{' then null
            else try(from_json(txt, {json_struct(structure)}))
        end as j,
        case
            when cut_reason is not null then 'truncated_file'
            when txt is null then 'invalid_utf8'
            when raw_bytes > {MAX_PAYLOAD_BYTES} then 'oversized_payload'
            when left(ltrim(txt), 1) <> '{{' or j is null then 'invalid_json'
        end as line_reason
    from decoded
)"""


# A JSON value's kind shows in its first character, which is much cheaper to test than re-parsing
# it with json_type() on every row (json_type is used only to word the reason of rejected rows).


def missing(field_sql: str) -> str:
    """True when a JSON field (kept as JSON text) is absent or null."""
    return f"({field_sql} is null or {field_sql} = 'null')"


def not_string(field_sql: str) -> str:
    return f"(left({field_sql}, 1) <> '\"')"


def not_object(field_sql: str) -> str:
    """True when an optional JSON field is present but neither an object nor null."""
    return f"({field_sql} is not null and left({field_sql}, 1) <> '{{' and {field_sql} <> 'null')"


def reason_case(checks: list[tuple[str, str, str]], code_alias: str = "_reason_code",
                line_texts: bool = True) -> tuple[str, str]:
    """Build the reason code and reason text CASE expressions from (condition, code, text) checks.

    The line-level reason comes first; the first failing check wins. The text expression refers to
    the code by ``code_alias``, the name the code expression is selected as. Without ``line_texts`` the
    text is only the checks' (the caller words line-level reasons itself).
    """
    code = ["case when line_reason is not null then line_reason"]
    # The sentence is built only for rejected rows: good rows skip the second pass over the checks.
    text = [f"case when {code_alias} is null then null"]
    if line_texts:
        text += [
            f"when line_reason = 'truncated_file' then {TRUNCATED_TEXT}",
            "when line_reason = 'invalid_utf8' then 'line is not valid UTF-8'",
            f"when line_reason = 'oversized_payload' then 'line is ' || raw_bytes || ' bytes, over the {MAX_PAYLOAD_BYTES} byte limit'",
            "when line_reason = 'invalid_json' then 'line is not a JSON object'",
        ]
    for condition, reason_code, reason_text in checks:
        code.append(f"when {condition} then '{reason_code}'")
        text.append(f"when {condition} then {reason_text}")
    return "\n        ".join(code) + " end", "\n        ".join(text) + " end"


def quarantine_text(text: str = "rtrim(txt, chr(10) || chr(13))") -> str:
    """The rejected record's text, cut; computed for rejected rows only (CASE evaluates lazily)."""
    return f"case when _reason_code is not null then left({text}, {QUARANTINE_TEXT_CHARS}) end"
