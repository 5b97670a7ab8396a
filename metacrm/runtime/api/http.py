"""HTTP plumbing shared by the endpoints: reading JSON bodies safely, JSON responses, ETags."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.platform.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

MAX_BODY_BYTES = 1_048_576
MAX_DEPTH = 32
_ETAG = re.compile(r'^\s*(?:W/)?"(\d{1,18})"\s*$')


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: Request) -> Any:
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"send JSON (application/json), not {media or 'nothing'}")
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        document = json.loads(bytes(body).decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if _depth_exceeds(document, MAX_DEPTH):
        raise BadRequest(f"the body nests deeper than {MAX_DEPTH} levels")
    return document


def _depth_exceeds(document: Any, limit: int) -> bool:
    """Iterative, so a pathological body can't exhaust the stack while being measured."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return False


def _default(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, separators=(",", ":"), default=_default
        ).encode()


def etag(version: int) -> str:
    return f'"{version}"'


def if_match(request: Request) -> int | None:
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    match = _ETAG.match(header)
    if not match:
        raise BadRequest('If-Match must be an ETag such as "3"')
    return int(match.group(1))


def record_response(record: dict[str, Any], status: int = 200, **headers: str) -> JSONResponse:
    return JSONResponse(
        record, status_code=status, headers={"ETag": etag(record["version"]), **headers}
    )
