"""Every error as `application/problem+json` (RFC 9457) with a stable `type`."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from loyalty.errors import PatronError
from plugin import database, redis_link
from plugin.logs import request_id

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:patron:problem:"
UNAVAILABLE = database.UNAVAILABLE + redis_link.UNAVAILABLE
RETRY_AFTER_SECONDS = 5
"""What a 503 asks clients to wait: PostgreSQL restarts and failovers take seconds."""

# Stable codes for the HTTP errors Litestar raises itself.
_HTTP_CODES = {
    400: ("malformed", "Malformed request"),
    401: ("unauthenticated", "Unauthenticated"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    412: ("precondition-failed", "Precondition failed"),
    413: ("too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation", "Validation failed"),
    428: ("precondition-required", "Precondition required"),
    429: ("rate-limited", "Too many requests"),
    503: ("unavailable", "Service unavailable"),
}


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An error (RFC 9457). `type` is stable: branch on it, not on `detail`."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    """Per-field validation errors: `{"field", "message"}`."""


def problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    body = Problem(
        type=PROBLEM_TYPE_BASE + code,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=request_id.get(),
        errors=errors,
    )
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _field_errors(exc: ValidationException) -> list[dict[str, Any]]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    return [
        {"field": item.get("key") or "body", "message": item.get("message", ""), "source": item.get("source")}
        for item in extra
        if isinstance(item, dict)
    ]


def _malformed(errors: list[dict[str, Any]]) -> bool:
    # Litestar reports undecodable bodies and invalid fields alike; only the latter name a field.
    return not errors or all(error["field"] == "body" and "JSON" in error["message"] for error in errors)


def problem_code(exc: Exception) -> str:
    """The code of the `type` an exception is answered with (`invalid-signature`, `not-found`, …)."""
    if isinstance(exc, PatronError):
        return exc.code
    if isinstance(exc, ValidationException):
        return "malformed" if _malformed(_field_errors(exc)) else "validation"
    if isinstance(exc, HTTPException):
        return _HTTP_CODES.get(exc.status_code, ("http-error", ""))[0]
    return "internal"


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    errors = _field_errors(exc)
    if _malformed(errors):
        detail = errors[0]["message"] if errors else exc.detail
        return problem_response(
            request, status=400, code="malformed", title="Malformed request", detail=detail
        )
    fields = ", ".join(error["field"] for error in errors)
    return problem_response(
        request,
        status=422,
        code="validation",
        title="Validation failed",
        detail=f"invalid {fields}: {errors[0]['message']}",
        errors=errors,
    )


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    code, title = _HTTP_CODES.get(exc.status_code, ("http-error", "HTTP error"))
    return problem_response(
        request, status=exc.status_code, code=code, title=title, detail=exc.detail, headers=exc.headers
    )


def handle_domain(request: Request[Any, Any, Any], exc: PatronError) -> Response[Problem]:
    errors = [{"field": exc.extra["field"], "message": exc.detail}] if "field" in exc.extra else None
    return problem_response(
        request, status=exc.status_code, code=exc.code, title=exc.title, detail=exc.detail, errors=errors
    )


def handle_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """PostgreSQL (or, where nothing stands in for it, Redis) cannot be reached: 503 with Retry-After.

    Nothing is answered 2xx unless it committed. A request cut off during its COMMIT may have
    committed all the same; its retry then finds the webhook in the inbox (or the Idempotency-Key
    stored), so it still takes effect once."""
    log.warning(
        "%s %s: a server Patron needs is unavailable (%s: %s)",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc,
    )
    return problem_response(
        request,
        status=503,
        code="unavailable",
        title="Service unavailable",
        detail="a server Patron depends on cannot be reached; retry shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _caused_by_unavailable(exc: BaseException, seen: set[int] | None = None) -> bool:
    """Whether a server's unavailability is behind `exc`: asyncpg complains that it cannot roll back
    on a connection that broke mid-transaction, and Litestar groups errors from dependency cleanup."""
    seen = seen if seen is not None else set()
    if id(exc) in seen:
        return False
    seen.add(id(exc))
    if isinstance(exc, UNAVAILABLE):
        return True
    linked = [exc.__cause__, exc.__context__]
    if isinstance(exc, BaseExceptionGroup):
        linked += exc.exceptions
    return any(link is not None and _caused_by_unavailable(link, seen) for link in linked)


def handle_recursion(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Problem]:
    """JSON nested deeper than the decoder follows is the client's fault (400); any other
    RecursionError is ours."""
    if "deserializing" not in str(exc):
        return handle_unexpected(request, exc)
    return problem_response(
        request,
        status=400,
        code="malformed",
        title="Malformed request",
        detail="the JSON is nested too deeply",
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    if _caused_by_unavailable(exc):
        return handle_unavailable(request, exc)
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request,
        status=500,
        code="internal",
        title="Internal server error",
        detail="something went wrong on our side; quote the request id when reporting it",
    )


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    ValidationException: handle_validation,
    HTTPException: handle_http,
    PatronError: handle_domain,
    **dict.fromkeys(UNAVAILABLE, handle_unavailable),
    RecursionError: handle_recursion,
    Exception: handle_unexpected,
}
