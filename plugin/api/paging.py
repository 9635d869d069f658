"""Cursor pagination shared by the list routes: opaque keyset cursors and the page-size parameter."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, TypeVar

import msgspec
from litestar.params import QueryParameter

from loyalty.errors import InvalidInput

T = TypeVar("T")
Limit = Annotated[int, QueryParameter(ge=1, le=200, description="Items per page")]
Cursor = Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page")]


def encode_cursor(position: Any) -> str:
    """An opaque cursor for a keyset position."""
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


def decode_cursor(cursor: str, kind: type[T]) -> T:
    """The keyset position inside a cursor; 422 naming `cursor` when it is not one we made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=kind)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidInput("cursor is not one this API returned", field="cursor") from None
