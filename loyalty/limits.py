"""What Patron accepts from outside beyond each field's own constraints: text PostgreSQL can store,
and times and dates within the years a shop's history spans."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import msgspec

from loyalty.errors import InvalidInput

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""Times from outside are refused beyond these: nothing a shop does happened before 1970 or after
2100, and date arithmetic (expiry, windows) near the calendar's ends would overflow."""
EARLIEST_BIRTHDAY = date(1900, 1, 1)


def refuse_unstorable(value: Any, field: str) -> None:
    """InvalidInput naming the field when text holds NUL (PostgreSQL stores no `\\u0000` in text or
    jsonb), or a time or birthday is out of range. Walks Structs, lists and dicts."""
    name = field.rpartition(".")[2]
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(f"{name} must not contain NUL (\\u0000)", field=field)
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInput(f"{name} needs a time zone offset", field=field)
        if not EARLIEST <= value < LATEST:
            raise InvalidInput(f"{name} must be within {EARLIEST.year}-{LATEST.year - 1}", field=field)
    elif isinstance(value, date):
        if not EARLIEST_BIRTHDAY <= value < LATEST.date():
            years = f"{EARLIEST_BIRTHDAY.year}-{LATEST.year - 1}"
            raise InvalidInput(f"{name} must be within {years}", field=field)
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            refuse_unstorable(getattr(value, name), f"{field}.{name}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            refuse_unstorable(item, f"{field}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_unstorable(key, field)
            refuse_unstorable(item, f"{field}.{key}")
