"""Webhook signatures: what a receiver checks with `verify`, and every way a header can be wrong."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacrm.runtime.webhooks import sign, verify

SECRET = "whsec_test"
BODY = b'{"event":"record.created","id":"D1"}'
NOW = 1_700_000_000


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == f"t={NOW},v1={expected}"


def test_a_fresh_signature_verifies() -> None:
    assert verify(SECRET, sign(SECRET, NOW, BODY), BODY, now=NOW + 10)


@pytest.mark.parametrize(
    "header, body, secret",
    [
        pytest.param(sign(SECRET, NOW, BODY), BODY + b" ", SECRET, id="body changed"),
        pytest.param(sign(SECRET, NOW, BODY), BODY, "whsec_other", id="other secret"),
        pytest.param(
            sign(SECRET, NOW, BODY).replace(f"t={NOW}", f"t={NOW + 1}"),
            BODY,
            SECRET,
            id="timestamp changed",
        ),
        pytest.param(sign(SECRET, NOW, BODY)[:-1] + "0", BODY, SECRET, id="digest changed"),
        pytest.param("", BODY, SECRET, id="empty"),
        pytest.param("v1=abc", BODY, SECRET, id="no timestamp"),
        pytest.param(f"t={NOW}", BODY, SECRET, id="no digest"),
        pytest.param("t=-5,v1=00", BODY, SECRET, id="negative timestamp"),
        pytest.param("t=1²,v1=00", BODY, SECRET, id="superscript digit"),
        pytest.param(f"t={NOW},v1=é", BODY, SECRET, id="non-ascii digest"),
        pytest.param("t=" + "9" * 400 + ",v1=00", BODY, SECRET, id="huge timestamp"),
    ],
)
def test_a_wrong_header_is_refused(header: str, body: bytes, secret: str) -> None:
    assert verify(secret, header, body, now=NOW) is False


def test_an_old_signature_is_refused_as_a_replay() -> None:
    header = sign(SECRET, NOW, BODY)
    assert verify(SECRET, header, BODY, now=NOW + 300)
    assert not verify(SECRET, header, BODY, now=NOW + 301)
    assert not verify(SECRET, header, BODY, now=NOW - 301)
    assert verify(SECRET, header, BODY, now=NOW + 3600, tolerance=3600)


@given(st.text(max_size=200))
def test_verify_never_raises_on_any_header(header: str) -> None:
    assert verify(SECRET, header, BODY, now=NOW) in (True, False)


@given(st.binary(max_size=500), st.text(min_size=1, max_size=50))
def test_sign_then_verify_round_trips_for_any_body_and_secret(body: bytes, secret: str) -> None:
    assert verify(secret, sign(secret, NOW, body), body, now=NOW)
