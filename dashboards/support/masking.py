"""Personal data the console shows only to roles allowed to see it.

Each column that can hold personal data is tagged with a PII kind (the kinds ``roles.yaml`` grants). Every table
the console shows passes through ``mask_frame`` with the viewer's role: a column of a kind the role does not see
is replaced by a mask that keeps just enough to tell two values apart in a conversation ("O. C.", "…4821"),
never enough to recover the value. A column that is not tagged is shown as is, so a new personal column must be
added here: the tests fail on any published column whose name suggests PII but has no kind.
"""

from __future__ import annotations

import polars as pl

from dashboards.support.roles import Role

# column name -> PII kind. Raw emails never reach the published file (stg_customers keeps a hash and a mask), so
# "email" here is that stored mask; phone and precise location are listed for the sources that will carry them.
PII_COLUMNS: dict[str, str] = {
    "full_name": "name",
    "email": "email",
    "email_masked": "email",
    "phone": "phone",
    "phone_number": "phone",
    "latitude": "location",
    "longitude": "location",
    "ip_address": "location",
    "street_address": "location",
    "vin": "vehicle",
}
HIDDEN = "•••"


def mask_value(kind: str, value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    if kind == "name":
        # initials only: enough to confirm "am I talking about the right person" with the caller
        return " ".join(f"{part[0]}." for part in text.split() if part) or HIDDEN
    if kind == "email":
        domain = text.rpartition("@")[2] if "@" in text else ""
        return f"{HIDDEN}@{domain}" if domain else HIDDEN
    if kind in {"phone", "vehicle"}:
        # the last four characters, as on a card statement: the caller can read them out to confirm
        return f"…{text[-4:]}" if len(text) > 6 else HIDDEN
    return HIDDEN  # location and anything else: nothing partial is safe


def mask_frame(frame: pl.DataFrame, role: Role) -> pl.DataFrame:
    """``frame`` with every PII column the role may not see replaced by its mask (as text)."""
    masked = []
    for column in frame.columns:
        kind = PII_COLUMNS.get(column)
        if kind and not role.sees(kind):
            masked.append(pl.col(column).map_elements(lambda v, k=kind: mask_value(k, v), return_dtype=pl.String,
                                                      skip_nulls=True))
    return frame.with_columns(masked) if masked else frame


def mask_record(record: dict, role: Role) -> dict:
    return {key: (mask_value(PII_COLUMNS[key], value) if key in PII_COLUMNS and not role.sees(PII_COLUMNS[key])
                  else value) for key, value in record.items()}
