"""The cloud's domain errors: what a service raises when a request cannot be done.

Services raise these (or their own subclasses); `cloud.api.errors` turns every one into an RFC 9457
problem-details response. Pure: no HTTP framework here, so services and CLIs use them alike.
`status` is the HTTP status the API answers with, `code` a stable machine-readable name
(`problem.type` is `urn:aquacis:problem:<code>`), `field` the input the error is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class FieldError:
    """One invalid input: `field` is its dotted name (e.g. `service_point.route_order`)."""

    field: str
    message: str
    type: str = "invalid"


class DomainError(Exception):
    """Base of every error the API answers with a 4xx. Subclasses fix the status and code."""

    status: int = 400
    code: str = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, *, code: str | None = None, field: str | None = None,
                 errors: list[FieldError] | None = None, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
            if code is None:
                self.code = CODES.get(status, self.code)
        self.field = field
        self.errors = list(errors or ([FieldError(field, detail, self.code)] if field else []))
        self.headers = headers


class Invalid(DomainError):
    """The request is well-formed but a value is not acceptable (422)."""

    status = 422
    code = "invalid"
    title = "Invalid input"


class Unauthorized(DomainError):
    """No, malformed or unknown credential (401)."""

    status = 401
    code = "unauthorized"
    title = "Not authenticated"


class Forbidden(DomainError):
    """The caller's role or municipality may not do this (403)."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(DomainError):
    """No such resource, or one of another municipality (which does not exist for the caller) (404)."""

    status = 404
    code = "not_found"
    title = "Not found"

    @classmethod
    def of(cls, what: str, key: object) -> NotFound:
        return cls(f"{what} {key!r} not found")


class Conflict(DomainError):
    """The request conflicts with the resource's current state or existing data (409)."""

    status = 409
    code = "conflict"
    title = "Conflict"


CODES: dict[int, str] = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid", 429: "too_many_requests",
    500: "internal", 503: "unavailable",
}
STATUS_OF: dict[str, int] = {code: status for status, code in CODES.items()}
TITLES: dict[int, str] = {
    400: "Bad request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 413: "Request too large", 415: "Unsupported media type",
    422: "Invalid input", 429: "Too many requests", 500: "Internal error", 503: "Service unavailable",
}
