"""Opaque, tamper-proof keyset cursors: the sort keys of the last row, signed with HMAC."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from metacrm.platform.errors import BadRequest

_SIGNATURE_BYTES = 16


def encode_cursor(secret: str, payload: dict[str, Any]) -> str:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(signature + body).rstrip(b"=").decode()


def decode_cursor(secret: str, cursor: str) -> dict[str, Any]:
    bad = BadRequest("the cursor is not valid; start again without one")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (ValueError, TypeError):
        raise bad from None
    signature, body = raw[:_SIGNATURE_BYTES], raw[_SIGNATURE_BYTES:]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    if len(cursor) > 4096 or not hmac.compare_digest(signature, expected):
        raise bad
    try:
        payload = json.loads(body)
    except ValueError:
        raise bad from None
    if not isinstance(payload, dict):
        raise bad
    return payload
