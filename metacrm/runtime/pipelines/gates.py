"""A gate's condition split into the conditions it joins with `and`, so a refused move can name
each one that is unmet rather than the whole expression."""

from __future__ import annotations

_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$.")
_OPEN, _CLOSE = "([", ")]"


def conjuncts(text: str) -> list[str]:
    """The parts of `a and b and c` at the top level; the whole text when it is anything else
    (a top-level `or` binds looser than `and`, so such a text is one condition)."""
    parts: list[str] = []
    depth, start, i, quote = 0, 0, 0, ""
    has_or = False
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
        elif depth == 0 and _keyword_at(text, i, "and"):
            parts.append(text[start:i])
            start = i + 3
        elif depth == 0 and _keyword_at(text, i, "or"):
            has_or = True
        i += 1
    parts.append(text[start:])
    parts = [p.strip() for p in parts]
    if has_or or len(parts) < 2 or not all(parts):
        return [text.strip()]
    return parts


def _keyword_at(text: str, i: int, word: str) -> bool:
    end = i + len(word)
    return (
        text.startswith(word, i)
        and (i == 0 or text[i - 1] not in _WORD)
        and (end == len(text) or text[end] not in _WORD)
    )
