"""Keyset cursors: what is encoded comes back, and anything tampered with is a 400."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest

from metacrm.platform.errors import BadRequest
from metacrm.runtime.cursor import decode_cursor, encode_cursor

SECRET = "s3cret"
PAYLOAD: dict[str, Any] = {"k": ["2024-03-01T12:00:00Z", "1500.00", None], "id": "01HX", "n": 2}


def raw(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def pack(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_cursor_round_trips() -> None:
    assert decode_cursor(SECRET, encode_cursor(SECRET, PAYLOAD)) == PAYLOAD


def test_cursor_round_trips_unicode() -> None:
    payload = {"k": ["商机 - ü"]}
    assert decode_cursor(SECRET, encode_cursor(SECRET, payload)) == payload


def test_cursor_is_url_safe_and_unpadded() -> None:
    cursor = encode_cursor(SECRET, {"k": ["???>>>~~~" * 5]})
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_cursor_does_not_depend_on_key_order() -> None:
    assert encode_cursor(SECRET, {"a": 1, "b": 2}) == encode_cursor(SECRET, {"b": 2, "a": 1})


def test_padded_cursor_is_accepted() -> None:
    cursor = encode_cursor(SECRET, {"a": 1})
    padded = cursor + "=" * (-len(cursor) % 4)
    assert decode_cursor(SECRET, padded) == {"a": 1}


def test_tampered_payload_is_refused() -> None:
    data = raw(encode_cursor(SECRET, {"id": "01HA", "n": 1}))
    forged = data.replace(b'"n":1', b'"n":9')
    assert forged != data
    with pytest.raises(BadRequest):
        decode_cursor(SECRET, pack(forged))


def test_tampered_signature_is_refused() -> None:
    data = bytearray(raw(encode_cursor(SECRET, PAYLOAD)))
    data[0] ^= 1
    with pytest.raises(BadRequest):
        decode_cursor(SECRET, pack(bytes(data)))


def test_cursor_signed_with_another_secret_is_refused() -> None:
    with pytest.raises(BadRequest):
        decode_cursor(SECRET, encode_cursor("other", PAYLOAD))


@pytest.mark.parametrize("keep", [0, 1, 5, 21, -1, -4])
def test_truncated_cursor_is_refused(keep: int) -> None:
    cursor = encode_cursor(SECRET, PAYLOAD)
    with pytest.raises(BadRequest):
        decode_cursor(SECRET, cursor[:keep])


@pytest.mark.parametrize("cursor", ["!!!!", "a", "not a cursor", "é", "\x00\x00", "%%%%%%%%"])
def test_non_base64_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(BadRequest):
        decode_cursor(SECRET, cursor)


def test_huge_cursor_is_refused_even_when_signed() -> None:
    cursor = encode_cursor(SECRET, {"k": ["x" * 5000]})
    assert len(cursor) > 4096
    with pytest.raises(BadRequest):
        decode_cursor(SECRET, cursor)


def test_huge_garbage_cursor_is_refused() -> None:
    with pytest.raises(BadRequest):
        decode_cursor(SECRET, "A" * 1_000_000)


def test_signed_body_that_is_not_json_is_refused() -> None:
    body = b"{not json"
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()[:16]
    with pytest.raises(BadRequest):
        decode_cursor(SECRET, pack(signature + body))


@pytest.mark.parametrize("payload", [[1, 2], "text", 3, None])
def test_signed_payload_that_is_not_an_object_is_refused(payload: Any) -> None:
    cursor = encode_cursor(SECRET, payload)
    with pytest.raises(BadRequest):
        decode_cursor(SECRET, cursor)


def test_refusal_is_a_400_telling_the_client_to_start_again() -> None:
    with pytest.raises(BadRequest) as caught:
        decode_cursor(SECRET, "garbage")
    assert caught.value.status == 400
    assert "start again" in caught.value.detail
