"""What an endpoint promises: the OpenAPI operation each handler of the route table carries.

The route table in `app.py` is the one list of what the API serves; the OpenAPI document is
generated from it, so a route without its operation, or an operation without its route, can't
happen. A handler declares its operation where it is written:

    @operation("list_webhooks", "webhooks", "Webhook subscriptions", response=page(ref("Webhook")))
    async def list_webhooks(request: Request) -> Response: ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

Schema = dict[str, Any]
Handler = Callable[[Request], Awaitable[Response]]

# Under this path segment an operation is about one entity's records: the document repeats it
# for every entity the caller may use, with that entity's record schemas.
ENTITY_SEGMENT = "{entity}"
# In a schema of such an operation, this stands for the entity's schema name ("Account"); for
# the entity-independent reference it becomes "Record".
ENTITY_SCHEMA = "{Entity}"
# Under this segment too (a record action's name), the document also repeats the operation for
# each of the entity's actions, with the action's input schema as the body.
ACTION_SEGMENT = "{action}"


def ref(name: str) -> Schema:
    """A reference to a named schema of the document (components/schemas)."""
    return {"$ref": f"#/components/schemas/{name}"}


def page(items: Schema, required: tuple[str, ...] = (), **extra: Schema) -> Schema:
    """`{"data": [items]}`, the shape of every list the API returns, plus `extra` properties
    (those named in `required` always there)."""
    return {
        "type": "object",
        "required": ["data", *required],
        "properties": {"data": {"type": "array", "items": items}, **extra},
    }


@dataclass(frozen=True)
class Param:
    """A query or header parameter (path parameters come from the path itself)."""

    name: str
    schema: Schema
    description: str
    where: str = "query"
    required: bool = False


@dataclass(frozen=True)
class Body:
    """A JSON request body."""

    schema: Schema
    required: bool = True
    example: Any = None


@dataclass(frozen=True)
class Reply:
    """One more success response besides the main one (such as 200 for a dry run)."""

    status: int
    schema: Schema
    description: str


@dataclass(frozen=True)
class Operation:
    """One method on one path, as the OpenAPI document describes it.

    `response` is the success body's schema (None: no body, as with 204); `errors` adds
    problem statuses to those every operation of its kind may answer (see openapi.py)."""

    id: str
    tag: str
    summary: str
    description: str = ""
    status: int = 200
    response: Schema | None = None
    body: Body | None = None
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    headers: tuple[str, ...] = ()
    also: tuple[Reply, ...] = ()
    media: str = "application/json"
    public: bool = False


class Endpoint:
    """A request handler with the operation it promises; called like the handler itself."""

    def __init__(self, handler: Handler, described: Operation) -> None:
        self.handler = handler
        self.operation = described
        self.__name__ = getattr(handler, "__name__", described.id)
        self.__doc__ = handler.__doc__

    async def __call__(self, request: Request) -> Response:
        return await self.handler(request)

    def __repr__(self) -> str:
        return f"Endpoint({self.operation.id})"


def operation(
    operation_id: str, tag: str, summary: str, **details: Any
) -> Callable[[Handler], Endpoint]:
    """Declare a handler's OpenAPI operation (the fields of `Operation`)."""
    described = Operation(operation_id, tag, summary, **details)

    def attach(handler: Handler) -> Endpoint:
        return Endpoint(handler, described)

    return attach
