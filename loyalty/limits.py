"""What Patron accepts from outside beyond each field's own constraints: text PostgreSQL can store,
and times and dates within the years a shop's history spans."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import msgspec
import msgspec.inspect as mi

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


def refuse_unstorable_json(raw: bytes, value: Any, field: str) -> None:
    """`refuse_unstorable` for `value` just decoded from the JSON text `raw`, without walking every
    string: JSON refuses a raw NUL byte in text, so decoded text holds NUL only where `raw` has the
    escape `\\u0000`. Without one, only the times and dates are walked (the fields whose type can
    hold them); with one, or with a time out of range, the full walk names the field."""
    if b"\\u0000" in raw or not _times_storable(value):
        refuse_unstorable(value, field)


def _times_storable(value: Any) -> bool:
    # Loops rather than all(...): this runs for every event of a backfill.
    if isinstance(value, datetime):
        return value.tzinfo is not None and EARLIEST <= value < LATEST
    if isinstance(value, date):
        return EARLIEST_BIRTHDAY <= value < LATEST.date()
    if isinstance(value, msgspec.Struct):
        for name in _timed_fields(type(value)):
            if not _times_storable(getattr(value, name)):
                return False
    elif isinstance(value, list | tuple):
        for item in value:
            if not _times_storable(item):
                return False
    elif isinstance(value, dict):
        for key, item in value.items():
            if not (_times_storable(key) and _times_storable(item)):
                return False
    return True


_TIMELESS = (mi.StrType, mi.IntType, mi.FloatType, mi.BoolType, mi.NoneType, mi.LiteralType, mi.EnumType)


@cache
def _timed_fields(cls: type[msgspec.Struct]) -> tuple[str, ...]:
    """The fields of a Struct whose type can hold a time or a date, however deep."""
    fields = mi.type_info(cls).fields  # type: ignore[attr-defined]
    return tuple(f.name for f in fields if _may_hold_time(f.type, set()))


def _may_hold_time(kind: mi.Type, seen: set[type]) -> bool:
    """Conservative: any type not known to hold no time (Any, custom types) may hold one."""
    if isinstance(kind, _TIMELESS):
        return False
    if isinstance(kind, mi.UnionType):
        return any(_may_hold_time(member, seen) for member in kind.types)
    if isinstance(kind, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return _may_hold_time(kind.item_type, seen)
    if isinstance(kind, mi.TupleType):
        return any(_may_hold_time(item, seen) for item in kind.item_types)
    if isinstance(kind, mi.DictType):
        return _may_hold_time(kind.key_type, seen) or _may_hold_time(kind.value_type, seen)
    if isinstance(kind, mi.StructType):
        if kind.cls in seen:
            return False  # a recursive Struct: its other fields are being looked at already
        seen.add(kind.cls)
        return any(_may_hold_time(f.type, seen) for f in kind.fields)
    return True
