"""Text that can be stored and served: every string and object key of a JSON document must be
Unicode that UTF-8 can encode.

JSON can spell a lone UTF-16 surrogate (`"\\ud800"`); Python decodes it into a string that no
database driver, response encoder or JSON column can take, so it is refused where it comes in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from metacrm.platform.errors import FieldError

CODE = "unicode"
# How much of a bad key a message repeats.
SHOWN_KEY_LENGTH = 40


def unencodable_text(document: Any) -> Iterator[FieldError]:
    """Each string and key that UTF-8 can't encode, in document order, at its JSON Pointer.

    A bad key is reported at the object that holds it (a pointer can't spell the key without
    repeating the bad text), and what is under it is not searched: the member goes as a whole.
    """
    # Iterative, so no nesting can exhaust the stack; a found error waits on it in its turn.
    stack: list[tuple[str, Any] | FieldError] = [("", document)]
    while stack:
        top = stack.pop()
        if isinstance(top, FieldError):
            yield top
            continue
        at, value = top
        if isinstance(value, str):
            position = _first_unencodable(value)
            if position is not None:
                yield FieldError(at, CODE, _message("the text", value, position))
        elif isinstance(value, dict):
            members: list[tuple[str, Any] | FieldError] = []
            for key, item in value.items():
                position = _first_unencodable(key) if isinstance(key, str) else None
                if position is not None:
                    shown = f"the key {_shown(key)}"
                    members.append(FieldError(at, CODE, _message(shown, key, position)))
                else:
                    members.append((f"{at}/{_escape(str(key))}", item))
            stack.extend(reversed(members))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{at}/{i}", item) for i, item in enumerate(value)]))


def _first_unencodable(text: str) -> int | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start
    return None


def _message(what: str, text: str, position: int) -> str:
    return (
        f"{what} holds a lone surrogate (U+{ord(text[position]):04X}) at character "
        f"{position + 1}, which is not Unicode text; send the characters themselves, or "
        "surrogate pairs only in pairs"
    )


def _shown(key: str) -> str:
    """The key as text a response can carry: surrogates spelled \\uXXXX, a long key cut short."""
    safe = key.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(safe) > SHOWN_KEY_LENGTH:
        safe = safe[:SHOWN_KEY_LENGTH] + "…"
    return f'"{safe}"'


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
