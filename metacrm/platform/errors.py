"""One hierarchy for every error a client can cause, rendered once as problem+json (RFC 9457).

Each error says where (a field, a JSON Pointer, a line and column) and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One problem with one place: a field name, or a JSON Pointer into a metadata document."""

    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class MetacrmError(Exception):
    status = 500
    title = "Internal error"
    type_slug = "internal"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.extra = extra or {}

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://metacrm.dev/problems/{self.type_slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


class BadRequest(MetacrmError):
    status, title, type_slug = 400, "Bad request", "bad-request"


class Unauthorized(MetacrmError):
    status, title, type_slug = 401, "Unauthorized", "unauthorized"


class Forbidden(MetacrmError):
    status, title, type_slug = 403, "Forbidden", "forbidden"


class NotFound(MetacrmError):
    status, title, type_slug = 404, "Not found", "not-found"


class Conflict(MetacrmError):
    status, title, type_slug = 409, "Conflict", "conflict"


class PreconditionFailed(MetacrmError):
    status, title, type_slug = 412, "Precondition failed", "precondition-failed"


class PayloadTooLarge(MetacrmError):
    status, title, type_slug = 413, "Payload too large", "payload-too-large"


class UnsupportedMediaType(MetacrmError):
    status, title, type_slug = 415, "Unsupported media type", "unsupported-media-type"


class Unprocessable(MetacrmError):
    status, title, type_slug = 422, "Unprocessable content", "invalid"


class Locked(MetacrmError):
    status, title, type_slug = 423, "Locked", "locked"


class ServiceUnavailable(MetacrmError):
    """The server lacks something the metadata needs (a validator a removed plugin provided):
    nothing the client sent is wrong, and the same request succeeds once the server has it."""

    status, title, type_slug = 503, "Service unavailable", "unavailable"


class TooManyRequests(MetacrmError):
    """Rate limited: `retry_after` seconds until the next attempt may be made (Retry-After)."""

    status, title, type_slug = 429, "Too many requests", "rate-limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, extra={"retry_after": retry_after})
        self.retry_after = retry_after


@dataclass(frozen=True)
class Position:
    line: int
    column: int


@dataclass
class RuleError(BadRequest):
    """A rule-language expression that does not parse or does not check.

    Raised as a 400 when it comes from a request parameter; metadata validation turns it into a
    422 entry with a JSON Pointer.
    """

    message: str
    position: Position | None = None
    suggestions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        text = self.message
        if self.position:
            text = f"{text} (line {self.position.line}, column {self.position.column})"
        if self.suggestions:
            text = f"{text}; did you mean {', '.join(self.suggestions)}?"
        BadRequest.__init__(self, text)
        self.type_slug = "bad-expression"

    def problem(self) -> dict[str, Any]:
        body = super().problem()
        if self.position:
            body["position"] = {"line": self.position.line, "column": self.position.column}
        if self.suggestions:
            body["suggestions"] = self.suggestions
        return body
