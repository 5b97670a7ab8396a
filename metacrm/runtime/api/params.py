"""Parsers for the list query parameters, one per parameter; each says exactly what is wrong."""

from __future__ import annotations

import re

from starlette.datastructures import QueryParams

from metacrm.platform.errors import BadRequest
from metacrm.runtime.listing import DEFAULT_LIMIT, MAX_LIMIT, ListQuery, SortKey

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_PARAM_LENGTH = 10_000
KNOWN = frozenset({"filter", "sort", "limit", "cursor", "fields", "expand", "q", "count"})


def parse_names(raw: str, param: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    for name in names:
        if not _NAME.match(name):
            raise BadRequest(f"{param}: {name!r} is not a field name")
    return names


def parse_sort(raw: str | None) -> tuple[SortKey, ...]:
    if not raw:
        return ()
    keys = []
    for part in raw.split(","):
        part = part.strip()
        descending = part.startswith("-")
        name = part.lstrip("-+")
        if not _NAME.match(name):
            raise BadRequest(f"sort: {part!r} is not a field name (use name or -name)")
        if name == "id":
            continue  # always the last key
        keys.append(SortKey(name, descending))
    if len({k.field for k in keys}) != len(keys):
        raise BadRequest("sort: a field appears twice")
    return tuple(keys)


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def parse_bool(raw: str | None, param: str) -> bool:
    if raw is None:
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest(f"{param} must be true or false")


def parse_list_query(params: QueryParams) -> ListQuery:
    for key, value in params.multi_items():
        if len(value) > MAX_PARAM_LENGTH:
            raise BadRequest(f"{key} is longer than {MAX_PARAM_LENGTH} characters")
        if "\x00" in value:
            raise BadRequest(f"{key} contains a NUL character")
    fields = params.get("fields")
    expand = params.get("expand")
    return ListQuery(
        filter=params.get("filter") or None,
        sort=parse_sort(params.get("sort")),
        limit=parse_limit(params.get("limit")),
        cursor=params.get("cursor") or None,
        fields=parse_names(fields, "fields") if fields else None,
        expand=parse_names(expand, "expand") if expand else (),
        q=params.get("q") or None,
        count=parse_bool(params.get("count"), "count"),
    )
