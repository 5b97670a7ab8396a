"""The API reference at /api/docs: the OpenAPI document rendered server-side as a readable page.

The page needs no token and no JavaScript to read: it shows every operation of the route table
(records operations once, under `/api/v1/records/{entity}`), grouped by tag, with parameters,
request and response schemas as nested field lists, examples and a curl line. Entities are
metadata, which only signed-in callers may see, so their record schemas come as a fragment
(`/api/docs/entities`) that the page's script fetches with the token the reader pastes. The same
token signs the "try it" forms. Nothing is loaded from another host.
"""

from __future__ import annotations

import gzip
import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

import metacrm
from metacrm.runtime.api.context import runtime_of
from metacrm.runtime.api.openapi import build_openapi, routes_of, visible_entities
from metacrm.runtime.api.operation import Schema, operation

# A body's own schema is shown in full, and the small named schemas inside it (a label, the
# webhooks of a list); bigger or deeper ones are links to their entry under Schemas, so that a
# page of operations stays readable.
EXPAND_NAMED = 2
SMALL = 12
RESPONSE_LEVELS = 0
EXAMPLE_DEPTH = 8
METHOD_ORDER = {"get": 0, "post": 1, "put": 2, "patch": 3, "delete": 4}
STRING_EXAMPLES = {
    "date": "2030-01-31",
    "date-time": "2030-01-31T09:30:00Z",
    "email": "ann@example.com",
    "uri": "https://example.com/",
}
NAME_PATTERN = "^[a-z][a-z0-9_]{0,62}$"
AN_ID = "01JB3M0Q8X2V5R7T9W1Y3Z5A7C"


@dataclass
class SchemaView:
    """A schema as the page shows it: a one-line type, facts, and what it holds."""

    type: str
    link: str | None = None
    description: str = ""
    facts: list[str] = field(default_factory=list)
    fields: list[FieldView] = field(default_factory=list)
    items: SchemaView | None = None
    values: SchemaView | None = None
    choices: list[SchemaView] = field(default_factory=list)


@dataclass
class FieldView:
    name: str
    required: bool
    schema: SchemaView


@dataclass
class ParamView:
    name: str
    where: str
    required: bool
    type: str
    description: str
    # The values a "try it" form offers (a boolean's or an enum's); empty: free text.
    choices: list[str] = field(default_factory=list)


@dataclass
class BodyView:
    media: str
    schema: SchemaView
    example: str | None


@dataclass
class ReplyView:
    status: str
    description: str
    body: BodyView | None
    problem: bool


@dataclass
class OperationView:
    id: str
    method: str
    path: str
    summary: str
    description: str
    public: bool
    params: list[ParamView]
    body: BodyView | None
    replies: list[ReplyView]
    curl: str


@dataclass
class TagView:
    name: str
    description: str
    operations: list[OperationView]


class Reader:
    """Turns the schemas of one document into views and examples."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.components: dict[str, Schema] = document.get("components", {}).get("schemas", {})

    def _named(self, schema: Schema) -> str | None:
        target = schema.get("$ref")
        prefix = "#/components/schemas/"
        if isinstance(target, str) and target.startswith(prefix):
            return target[len(prefix) :]
        return None

    def view(
        self,
        schema: Any,
        expanded: int = 0,
        trail: tuple[str, ...] = (),
        levels: int | None = None,
    ) -> SchemaView:
        """`expanded`: how many named schemas are shown in full on the way here; `trail`: which
        (a schema inside itself is a link); `levels`: how many levels of fields to show (None:
        all there are)."""
        if not isinstance(schema, dict) or not schema:
            return SchemaView("any JSON value", description=_text(schema))
        if levels is not None and levels < 0:
            inner = self.view(schema, EXPAND_NAMED, trail)
            return SchemaView(inner.type, inner.link, inner.description, inner.facts)
        name = self._named(schema)
        if name is not None:
            target = self.components.get(name, {})
            small = len(target.get("properties") or ()) <= SMALL
            if expanded >= EXPAND_NAMED or name in trail or (expanded and not small):
                found = SchemaView(name, link=name, description=target.get("description", ""))
                found.facts = [_kind(target)] if _kind(target) else []
                return found
            shown = self.view(target, expanded + 1, (*trail, name), levels)
            shown.link = name
            shown.type = f"{name} ({shown.type})" if shown.type != name else name
            return shown
        found = SchemaView(_type_of(schema), description=schema.get("description", ""))
        found.facts = _facts(schema)
        for key in ("anyOf", "oneOf"):
            alternatives = [s for s in schema.get(key, ()) if s.get("type") != "null"]
            if len(alternatives) < len(schema.get(key, ())):
                found.facts.insert(0, "may be null")
            if len(alternatives) == 1:
                inner = self.view(alternatives[0], expanded, trail, levels)
                inner.facts = [*found.facts, *inner.facts]
                inner.description = found.description or inner.description
                return inner
            found.choices += [self.view(s, expanded, trail, _less(levels)) for s in alternatives]
            if alternatives:
                found.type = "one of"
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        for prop, sub in properties.items():
            shown = self.view(sub, expanded, trail, _less(levels))
            found.fields.append(FieldView(prop, prop in required, shown))
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            found.values = self.view(extra, expanded, trail, _less(levels))
        items = schema.get("items")
        if isinstance(items, dict):
            found.items = self.view(items, expanded, trail, levels)
            found.type = f"array of {found.items.type}"
            if not (found.items.link or found.items.fields):
                found.facts += [f"each {fact}" for fact in found.items.facts]
        return found

    def example(self, schema: Any, depth: int = 0, name: str = "") -> Any:
        """A plausible value of the schema, for reading (not a promise that it is valid)."""
        if not isinstance(schema, dict) or depth > EXAMPLE_DEPTH:
            return None
        if "example" in schema:
            return schema["example"]
        named = self._named(schema)
        if named is not None:
            return self.example(self.components.get(named, {}), depth + 1, name)
        if "const" in schema:
            return schema["const"]
        enum = [v for v in schema.get("enum", ()) if v is not None]
        if enum:
            return enum[0]
        for key in ("anyOf", "oneOf", "allOf"):
            alternatives = [s for s in schema.get(key, ()) if s.get("type") != "null"]
            if alternatives:
                return self.example(alternatives[0], depth, name)
        kinds = schema.get("type")
        kind = next((k for k in kinds if k != "null"), "null") if isinstance(kinds, list) else kinds
        if kind == "object" or "properties" in schema:
            return self._object_example(schema, depth)
        if kind == "array":
            item = self.example(schema.get("items"), depth + 1, name)
            return [] if item is None else [item]
        if kind == "integer":
            return schema.get("minimum", 1)
        if kind == "number":
            return schema.get("minimum", 1.5)
        if kind == "boolean":
            return True
        if kind == "string" or "pattern" in schema:
            return _string_example(schema, name)
        return None

    def _object_example(self, schema: Schema, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for prop, sub in (schema.get("properties") or {}).items():
            # Properties a client may not send (read-only) or that are ignored have no example.
            if isinstance(sub, dict) and sub and "not" not in sub:
                value = self.example(sub, depth + 1, prop)
                if value is not None:  # None: too deep to write out here
                    out[prop] = value
        extra = schema.get("additionalProperties")
        if not out and isinstance(extra, dict):
            value = self.example(extra, depth + 1)
            if value is not None:
                out = {key: value for key in schema.get("required") or ["key"]}
        return out


def _less(levels: int | None) -> int | None:
    return None if levels is None else levels - 1


def _text(schema: Any) -> str:
    return schema.get("description", "") if isinstance(schema, dict) else ""


def _kind(schema: Schema) -> str:
    if schema.get("properties"):
        return "object"
    if isinstance(schema.get("additionalProperties"), dict):
        return "map"
    kinds = schema.get("type")
    return kinds if isinstance(kinds, str) else ""


def _type_of(schema: Schema) -> str:
    kinds = schema.get("type")
    names = [kinds] if isinstance(kinds, str) else [k for k in kinds or () if k != "null"]
    if "const" in schema:
        return f"the value {json.dumps(schema['const'])}"
    if "enum" in schema and not names:
        values = [v for v in schema["enum"] if v is not None]
        if values and all(isinstance(v, str) for v in values):
            return "string"
        return "value"
    if not names:
        if schema.get("properties") or "additionalProperties" in schema:
            return "object"
        return "one of" if ("anyOf" in schema or "oneOf" in schema) else "any JSON value"
    if names == ["object"] and not schema.get("properties"):
        return "map" if isinstance(schema.get("additionalProperties"), dict) else "object"
    shown = " or ".join(names)
    return f"{shown} ({schema['format']})" if "format" in schema else shown


def _facts(schema: Schema) -> list[str]:
    facts = []
    kinds = schema.get("type")
    if isinstance(kinds, list) and "null" in kinds:
        facts.append("may be null")
    enum = schema.get("enum")
    if enum:
        facts.append("one of: " + ", ".join(json.dumps(v) for v in enum))
    bounds = [
        ("minLength", "at least {} character"),
        ("maxLength", "at most {} character"),
        ("minimum", "at least {}"),
        ("maximum", "at most {}"),
        ("exclusiveMinimum", "more than {}"),
        ("minItems", "at least {} item"),
        ("maxItems", "at most {} item"),
    ]
    for key, text in bounds:
        if key in schema:
            plural = "s" if text.endswith(("character", "item")) and schema[key] != 1 else ""
            facts.append(text.format(schema[key]) + plural)
    if schema.get("uniqueItems"):
        facts.append("no repeats")
    if schema.get("pattern") and schema["pattern"] != NAME_PATTERN:
        facts.append(f"pattern {schema['pattern']}")
    elif schema.get("pattern"):
        facts.append("a name: a-z, 0-9 and _, starting with a letter")
    if schema.get("additionalProperties") is False and schema.get("properties"):
        facts.append("no other properties")
    if schema.get("writeOnly"):
        facts.append("never returned")
    if schema.get("not") == {}:
        facts.append("read-only: never accepted")
    return facts


def _string_example(schema: Schema, name: str) -> str:
    if schema.get("format") in STRING_EXAMPLES:
        return STRING_EXAMPLES[schema["format"]]
    if schema.get("pattern") == NAME_PATTERN:
        return name if name and name.isidentifier() and name.islower() else "a_name"
    if "\\d" in schema.get("pattern", ""):
        return "1200.50"
    if name == "id" or name.endswith("_id") or schema.get("maxLength") == 26:
        return AN_ID
    return "text"


def _choices(schema: Schema) -> list[str]:
    if schema.get("type") == "boolean":
        return ["true", "false"]
    return [str(v) for v in schema.get("enum", ()) if v is not None]


def _param_type(schema: Schema) -> str:
    shown = _type_of(schema)
    facts = [f for f in _facts(schema) if not f.startswith("pattern")]
    return f"{shown}; {'; '.join(facts)}" if facts else shown


def _body(reader: Reader, media: str, content: Schema, levels: int | None = None) -> BodyView:
    schema = content.get("schema", {})
    if media != "application/json":
        return BodyView(media, SchemaView(f"{media} text"), None)
    example = content.get("example", reader.example(schema))
    shown = json.dumps(example, indent=2, ensure_ascii=False) if example is not None else None
    return BodyView(media, reader.view(schema, levels=levels), shown)


def _curl(method: str, path: str, body: BodyView | None, public: bool, base: str) -> str:
    parts = ["curl"]
    if method != "GET":
        parts += ["-X", method]
    if not public:
        parts += ["-H", '"Authorization: Bearer $T"']
    if body is not None and body.example is not None:
        compact = json.dumps(json.loads(body.example), ensure_ascii=False)
        parts += ["-H", "'Content-Type: application/json'", "-d", shlex.quote(compact)]
    parts.append(shlex.quote(f"{base}{path}"))
    return " ".join(parts)


def operation_view(
    reader: Reader, path: str, method: str, found: dict[str, Any], base: str
) -> OperationView:
    public = found.get("security") == []
    params = [
        ParamView(
            p["name"],
            p["in"],
            bool(p.get("required")),
            _param_type(p.get("schema", {})),
            p.get("description", ""),
            _choices(p.get("schema", {})),
        )
        for p in found.get("parameters", ())
    ]
    body = None
    request = found.get("requestBody")
    if request:
        media, content = next(iter(request["content"].items()))
        body = _body(reader, media, content)
    replies = []
    for status, response in found.get("responses", {}).items():
        content = response.get("content") or {}
        reply_body = None
        problem = "application/problem+json" in content
        if content and not problem:
            media, inner = next(iter(content.items()))
            # What a write answers is mostly what was sent: its first level of fields is
            # enough here (the whole shape is under Schemas).
            levels = RESPONSE_LEVELS if request else None
            reply_body = _body(reader, media, inner, levels)
        replies.append(ReplyView(status, response.get("description", ""), reply_body, problem))
    return OperationView(
        id=found["operationId"],
        method=method.upper(),
        path=path,
        summary=found.get("summary", ""),
        description=found.get("description", ""),
        public=public,
        params=params,
        body=body,
        replies=replies,
        curl=_curl(method.upper(), path, body, public, base),
    )


def tag_views(document: dict[str, Any], base: str) -> list[TagView]:
    """The document's operations by tag, tags in the order the document lists them."""
    reader = Reader(document)
    described = {t["name"]: t.get("description", "") for t in document.get("tags", ())}
    grouped: dict[str, list[OperationView]] = {name: [] for name in described}
    for path, item in document["paths"].items():
        for method in sorted(item, key=lambda m: METHOD_ORDER.get(m, 9)):
            found = item[method]
            if not isinstance(found, dict) or "responses" not in found:
                continue
            tag = (found.get("tags") or ["other"])[0]
            grouped.setdefault(tag, []).append(operation_view(reader, path, method, found, base))
    return [TagView(name, described.get(name, ""), ops) for name, ops in grouped.items() if ops]


def schema_views(document: dict[str, Any]) -> list[tuple[str, SchemaView]]:
    reader = Reader(document)
    return [
        (name, reader.view(schema, expanded=1, trail=(name,)))
        for name, schema in sorted(document["components"]["schemas"].items())
    ]


def _sendable(view: SchemaView) -> SchemaView:
    """An entity's input without the system fields it accepts and ignores (any value)."""
    view.fields = [f for f in view.fields if f.schema.type != "any JSON value"]
    return view


def _html(request: Request, text: str, headers: dict[str, str] | None = None) -> Response:
    """HTML, gzipped when the client takes it: the reference is large, and mostly markup."""
    headers = dict(headers or {})
    headers["Vary"] = ", ".join(filter(None, [headers.get("Vary"), "Accept-Encoding"]))
    body = text.encode()
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        body = gzip.compress(body, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@operation(
    "docs",
    "platform",
    "This reference, as a web page",
    description="Every operation with its parameters, schemas and examples; needs no token. "
    "Pasting a token shows the caller's entities and lets each operation be tried.",
    media="text/html",
    response={"type": "string"},
    public=True,
)
async def docs_page(request: Request) -> Response:
    document = build_openapi(routes_of(request), None)
    page = request.app.state.templates.get_template("docs.html").render(
        version=metacrm.__version__,
        tags=tag_views(document, _base(request)),
        schemas=schema_views(document),
    )
    return _html(request, page)


@operation(
    "docs_entities",
    "platform",
    "The caller's entities, for the reference page",
    description="An HTML fragment: each entity the caller may use, with its record as they see "
    "it and what they may send. /api/docs loads it with the token pasted there.",
    media="text/html",
    response={"type": "string"},
)
async def entity_reference(request: Request) -> Response:
    routes = routes_of(request)
    document = await runtime_of(request).run(
        request,
        lambda w: build_openapi(routes, visible_entities(w.catalog, w.records().permissions)),
    )
    reader = Reader(document)
    entities = []
    for tag in document.get("tags", ()):
        schema_name, name = tag.get("x-schema"), tag.get("x-entity")
        if not schema_name:
            continue
        record = document["components"]["schemas"][schema_name]
        accepted = document["components"]["schemas"][f"{schema_name}Input"]
        entities.append(
            {
                "name": name,
                "label": tag.get("description", ""),
                "record": reader.view(record, trail=(schema_name,)),
                "input": _sendable(reader.view(accepted, trail=(f"{schema_name}Input",))),
                "example": json.dumps(reader.example(accepted), indent=2, ensure_ascii=False),
                "paths": sorted(
                    p for p in document["paths"] if f"{p}/".startswith(f"/api/v1/records/{name}/")
                ),
            }
        )
    fragment = request.app.state.templates.get_template("_entities.html").render(entities=entities)
    return _html(request, fragment, {"Cache-Control": "no-store", "Vary": "Authorization"})
