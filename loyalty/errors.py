"""Expected business failures. Each carries an HTTP status and a stable code for problem+json."""

from __future__ import annotations

from typing import Any, ClassVar


class PatronError(Exception):
    """Base of every expected failure; `code` is stable and becomes the problem `type`."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(PatronError):
    status_code = 404
    code = "not-found"
    title = "Not found"


class Conflict(PatronError):
    status_code = 409
    code = "conflict"
    title = "Conflict"


class PreconditionFailed(PatronError):
    status_code = 412
    code = "precondition-failed"
    title = "Precondition failed"


class InvalidInput(PatronError):
    """Well-formed input that breaks a domain rule (the field is named in `extra`)."""

    status_code = 422
    code = "validation"
    title = "Validation failed"
