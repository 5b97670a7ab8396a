"""Finding text UTF-8 can't carry (lone surrogates) in a JSON document, each at its place."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from metacrm.platform.text import unencodable_text


def places(document: object) -> list[str]:
    return [e.field for e in unencodable_text(document)]


def test_a_lone_surrogate_is_found_at_the_pointer_of_its_value() -> None:
    document = json.loads(
        '{"label": {"en": "A\\ud800"}, "fields": [{"n": "ok"}, {"n": "\\udc00"}]}'
    )
    found = list(unencodable_text(document))
    assert [(e.field, e.code) for e in found] == [
        ("/label/en", "unicode"),
        ("/fields/1/n", "unicode"),
    ]
    assert "(U+D800) at character 2" in found[0].message


def test_a_bad_key_is_reported_at_its_object_and_what_is_under_it_is_not_searched() -> None:
    document = {"label": {"en": "x", "e\ud800n": {"deeper": "\ud800"}}, "a/b~": ["\udfff"]}
    found = list(unencodable_text(document))
    assert [e.field for e in found] == ["/label", "/a~1b~0/0"]
    assert '"e\\ud800n"' in found[0].message
    # The message itself can be sent.
    assert all(e.message.encode("utf-8") for e in found)


def test_a_surrogate_pair_and_other_odd_text_are_fine() -> None:
    document = json.loads('{"x": "\\ud83d\\ude00", "y": ["\\u0000", "\\u200f\\ufeff\\uffff"]}')
    assert document["x"] == "😀"
    assert places(document) == []
    assert places(["a", 1, None, True, 2.5, {"k": []}]) == []


def test_a_reversed_pair_is_two_lone_surrogates() -> None:
    assert places(json.loads('["\\udc00\\ud800"]')) == ["/0"]


ODD_TEXT = st.text(st.sampled_from(["a", "é", "😀", "\x00", "\ud800", "\udbff", "\udc00"]))
DOCUMENTS = st.recursive(
    ODD_TEXT | st.integers() | st.none(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=12,
)


@given(DOCUMENTS)
def test_bad_text_is_found_exactly_when_utf8_cannot_encode_the_document(document: object) -> None:
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
        encodable = True
    except UnicodeEncodeError:
        encodable = False
    assert (places(document) == []) == encodable
