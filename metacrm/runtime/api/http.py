"""HTTP plumbing shared by the endpoints: reading JSON bodies safely, JSON responses, ETags."""

from __future__ import annotations

import json
import re
from itertools import islice
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.platform.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from metacrm.platform.preconditions import IfMatch
from metacrm.platform.text import unencodable_text

MAX_BODY_BYTES = 1_048_576
MAX_DEPTH = 32
# A body with more bad strings than this lists only the first ones.
MAX_TEXT_ERRORS = 20
# One element of an If-Match list (RFC 9110, 8.8.3 and 5.6.1): an entity tag, or nothing
# (empty elements are allowed), then a comma or the end.
_LIST_ELEMENT = re.compile(r'[ \t]*(?:(W/)?"([\x21\x23-\x7e\x80-\xff]*)")?[ \t]*(?:,|$)')
_VERSION_TAG = re.compile(r"[1-9][0-9]{0,17}")


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
    # Only a \u escape can spell a lone surrogate: the UTF-8 decoding above refuses the rest.
    if b"\\u" in body:
        _refuse_unencodable_text(document)
    return document


def _refuse_unencodable_text(document: Any) -> None:
    found = list(islice(unencodable_text(document), MAX_TEXT_ERRORS + 1))
    if not found:
        return
    detail = "the body holds text that is not valid Unicode (a lone surrogate such as \\ud800)"
    if len(found) > MAX_TEXT_ERRORS:
        detail += f"; the first {MAX_TEXT_ERRORS} places are listed"
    raise BadRequest(detail, errors=found[:MAX_TEXT_ERRORS])


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
        text = json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=_default)
        try:
            return text.encode()
        except UnicodeEncodeError:
            # Only a document stored before bodies were checked can hold a lone surrogate;
            # escaped, it can still be read (and fixed) instead of failing every request.
            return json.dumps(
                content, ensure_ascii=True, separators=(",", ":"), default=_default
            ).encode()


def etag(version: int) -> str:
    return f'"{version}"'


def if_match(request: Request) -> IfMatch | None:
    header = request.headers.get("if-match")
    if header is None:
        return None
    header = header.strip(" \t")
    if header == "*":
        return IfMatch(header, any=True)
    versions: set[int] = set()
    tags, weak, position = 0, False, 0
    while position < len(header):
        element = _LIST_ELEMENT.match(header, position)
        if element is None or element.end() == position:
            break
        is_weak, opaque = element.groups()
        if opaque is not None:
            tags += 1
            weak = weak or bool(is_weak)
            if not is_weak and _VERSION_TAG.fullmatch(opaque):
                versions.add(int(opaque))
        position = element.end()
    if position < len(header) or not tags:
        raise BadRequest('If-Match must be "*" or ETags such as "3", separated by commas')
    return IfMatch(header, versions=frozenset(versions), tags=tags, weak=weak)


def record_response(record: dict[str, Any], status: int = 200, **headers: str) -> JSONResponse:
    return JSONResponse(
        record, status_code=status, headers={"ETag": etag(record["version"]), **headers}
    )
